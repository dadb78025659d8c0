//! Freshness as CloudWatch metrics: one Embedded Metric Format line on stdout per refresh, which
//! CloudWatch Logs turns into metrics — no API call, no added latency. Operators alarm on
//! `Stale` (see `template.yaml`), or on `SnapshotAge`.
//!
//! Format: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use flags::wire::Status;
use serde::Serialize;

/// Default `SSM_FLAGS_METRICS_NAMESPACE` (experiment metrics share it).
pub use flags::experiment::DEFAULT_NAMESPACE;

/// The freshness of the served flags after one refresh.
#[derive(Debug, Clone, PartialEq)]
pub struct Freshness {
    /// The status served.
    pub status: Status,
    /// Seconds since the last successful fetch, if any.
    pub age_seconds: Option<f64>,
    /// Flags served.
    pub flags: usize,
    /// Flags whose value is invalid.
    pub invalid: usize,
    /// SSM calls this refresh made (0 when it failed before any answer counted).
    pub ssm_calls: u32,
    /// Whether this refresh failed.
    pub failed: bool,
}

/// Where and under which names the metrics go.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emf {
    namespace: String,
    function: String,
}

/// One EMF document: the `_aws` metadata and the values at the root, as the format requires.
#[derive(Serialize)]
struct Document<'a> {
    #[serde(rename = "_aws")]
    aws: Metadata<'a>,
    #[serde(rename = "FunctionName")]
    function: &'a str,
    /// Not a metric: a property CloudWatch Logs Insights can query.
    #[serde(rename = "Status")]
    status: Status,
    #[serde(rename = "Stale")]
    stale: u8,
    #[serde(rename = "Degraded")]
    degraded: u8,
    #[serde(rename = "SnapshotAge", skip_serializing_if = "Option::is_none")]
    age: Option<f64>,
    #[serde(rename = "Flags")]
    flags: usize,
    #[serde(rename = "InvalidFlags")]
    invalid: usize,
    #[serde(rename = "SsmCalls")]
    ssm_calls: u32,
    #[serde(rename = "RefreshFailed")]
    failed: u8,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metadata<'a> {
    timestamp: u64,
    cloud_watch_metrics: [Directive<'a>; 1],
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Directive<'a> {
    namespace: &'a str,
    dimensions: [[&'static str; 1]; 1],
    metrics: Vec<Metric>,
}

#[derive(Serialize)]
#[serde(rename_all = "PascalCase")]
struct Metric {
    name: &'static str,
    unit: &'static str,
}

const METRICS: [(&str, &str); 7] = [
    ("Stale", "Count"),
    ("Degraded", "Count"),
    ("SnapshotAge", "Seconds"),
    ("Flags", "Count"),
    ("InvalidFlags", "Count"),
    ("SsmCalls", "Count"),
    ("RefreshFailed", "Count"),
];

impl Emf {
    /// Metrics in `namespace`, with the dimension `FunctionName` = `function`.
    pub fn new(namespace: impl Into<String>, function: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            function: function.into(),
        }
    }

    /// The EMF line for `freshness` at `at`.
    pub fn line(&self, freshness: &Freshness, at: SystemTime) -> String {
        let flag = |on: bool| u8::from(on);
        let document = Document {
            aws: Metadata {
                timestamp: at
                    .duration_since(UNIX_EPOCH)
                    .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX)),
                cloud_watch_metrics: [Directive {
                    namespace: &self.namespace,
                    dimensions: [["FunctionName"]],
                    // A declared metric must have a value: no age before the first fetch.
                    metrics: METRICS
                        .iter()
                        .filter(|(name, _)| {
                            *name != "SnapshotAge" || freshness.age_seconds.is_some()
                        })
                        .map(|&(name, unit)| Metric { name, unit })
                        .collect(),
                }],
            },
            function: &self.function,
            status: freshness.status,
            stale: flag(freshness.status == Status::Stale),
            // No flags from the source: none at all, or only the deployed fallback file.
            degraded: flag(matches!(
                freshness.status,
                Status::Degraded | Status::Fallback
            )),
            age: freshness.age_seconds,
            flags: freshness.flags,
            invalid: freshness.invalid,
            ssm_calls: freshness.ssm_calls,
            failed: flag(freshness.failed),
        };
        // Strings and numbers always serialize.
        serde_json::to_string(&document).unwrap_or_default()
    }

    /// Writes the line for `freshness` to stdout, where Lambda sends it to CloudWatch Logs.
    pub fn emit(&self, freshness: &Freshness) {
        let line = self.line(freshness, SystemTime::now());
        let mut out = std::io::stdout().lock();
        // A closed stdout only loses a metric; the flags are served regardless.
        let _ = writeln!(out, "{line}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::Value;

    #[test]
    fn a_line_is_an_emf_document_with_every_metric_at_the_root() {
        let emf = Emf::new("ssm-flags", "payment");
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_764_000_000_123);
        let line = emf.line(
            &Freshness {
                status: Status::Stale,
                age_seconds: Some(75.5),
                flags: 32,
                invalid: 1,
                ssm_calls: 0,
                failed: true,
            },
            at,
        );
        assert!(!line.contains('\n'), "one line");
        let doc: Value = serde_json::from_str(&line).expect("JSON");
        assert_eq!(doc["_aws"]["Timestamp"], 1_764_000_000_123u64);
        let directive = &doc["_aws"]["CloudWatchMetrics"][0];
        assert_eq!(directive["Namespace"], "ssm-flags");
        assert_eq!(
            directive["Dimensions"],
            serde_json::json!([["FunctionName"]])
        );
        assert_eq!(doc["FunctionName"], "payment");
        // Every declared metric has a numeric value at the root (the spec requires it), except
        // an age that does not exist yet.
        for metric in directive["Metrics"].as_array().expect("metrics") {
            let name = metric["Name"].as_str().expect("name");
            assert!(doc[name].is_number(), "{name} missing: {line}");
        }
        assert_eq!(
            (doc["Stale"].clone(), doc["RefreshFailed"].clone()),
            (1.into(), 1.into())
        );
        assert_eq!(doc["Status"], "stale");
        let degraded = emf.line(
            &Freshness {
                status: Status::Degraded,
                age_seconds: None,
                flags: 0,
                invalid: 0,
                ssm_calls: 1,
                failed: true,
            },
            at,
        );
        let doc: Value = serde_json::from_str(&degraded).expect("JSON");
        assert_eq!(doc["Degraded"], 1);
        assert!(doc.get("SnapshotAge").is_none(), "no age before any fetch");
        let declared = doc["_aws"]["CloudWatchMetrics"][0]["Metrics"].to_string();
        assert!(!declared.contains("SnapshotAge"), "{declared}");
    }
}
