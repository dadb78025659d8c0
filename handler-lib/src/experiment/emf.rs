//! [`Emitter`]: experiment counts as CloudWatch Embedded Metric Format lines. An EMF line
//! carries one value per dimension, so each (flag, variant) — or (flag, variant, event) — is a
//! line of its own, with its counts.
//!
//! Format: <https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>

use std::io::Write;
use std::time::{SystemTime, UNIX_EPOCH};

use serde_json::{Map, Value, json};

use super::{
    CONVERSION_VALUE, CONVERSIONS, Counts, DEFAULT_NAMESPACE, EVENT, EXPOSURES, FLAG, SERVICE,
    VARIANT,
};

/// The most values one metric may carry in an EMF line (the specification's limit).
pub const MAX_VALUES_PER_LINE: usize = 100;
/// The longest service name (a CloudWatch dimension value).
const MAX_SERVICE_LEN: usize = 255;

/// `SSM_FLAGS_METRICS`: `emf` (the default) writes freshness and experiment metrics as EMF
/// lines; `off` writes none.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum MetricsSetting {
    /// EMF lines on stdout.
    Emf,
    /// No metrics.
    Off,
}

impl MetricsSetting {
    /// Reads `SSM_FLAGS_METRICS` (`None`: unset): `emf` or `off`, in any case.
    pub fn parse(value: Option<&str>) -> Result<Self, String> {
        match value.map(|v| v.trim().to_ascii_lowercase()).as_deref() {
            None | Some("" | "emf") => Ok(Self::Emf),
            Some("off") => Ok(Self::Off),
            Some(_) => Err(format!(
                "SSM_FLAGS_METRICS={:?}: use emf or off",
                value.unwrap_or_default()
            )),
        }
    }
}

/// Where experiment metrics go: their namespace and the `Service` dimension.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Emitter {
    namespace: String,
    service: String,
}

impl Emitter {
    /// Metrics in `namespace`, with `Service` = `service`.
    pub fn new(namespace: impl Into<String>, service: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            service: service.into(),
        }
    }

    /// From the environment: `None` when `SSM_FLAGS_METRICS=off`; the namespace from
    /// `SSM_FLAGS_METRICS_NAMESPACE`; the service from [`Emitter::service_from`].
    pub fn from_env() -> Result<Option<Self>, String> {
        let var = |name: &str| std::env::var(name).ok();
        if MetricsSetting::parse(var("SSM_FLAGS_METRICS").as_deref())? == MetricsSetting::Off {
            return Ok(None);
        }
        let namespace = var("SSM_FLAGS_METRICS_NAMESPACE")
            .filter(|n| !n.trim().is_empty())
            .unwrap_or_else(|| DEFAULT_NAMESPACE.to_owned());
        let service = Self::service_from(
            var("SSM_FLAGS_SERVICE").as_deref(),
            var("AWS_LAMBDA_FUNCTION_NAME").as_deref(),
        )?;
        Ok(Some(Self::new(namespace, service)))
    }

    /// The `Service` dimension: `SSM_FLAGS_SERVICE`, else the function's name
    /// (`AWS_LAMBDA_FUNCTION_NAME`), else this executable's file name.
    pub fn service_from(service: Option<&str>, function: Option<&str>) -> Result<String, String> {
        if let Some(service) = service.map(str::trim).filter(|s| !s.is_empty()) {
            return if super::dimension_value(service, MAX_SERVICE_LEN).is_ok() {
                Ok(service.to_owned())
            } else {
                Err(format!(
                    "SSM_FLAGS_SERVICE={service:?}: use at most {MAX_SERVICE_LEN} printable ASCII characters (a CloudWatch dimension value)"
                ))
            };
        }
        if let Some(function) = function.filter(|f| !f.trim().is_empty()) {
            return Ok(function.to_owned());
        }
        Ok(std::env::current_exe()
            .ok()
            .and_then(|exe| exe.file_name()?.to_str().map(str::to_owned))
            .unwrap_or_else(|| "unknown".to_owned()))
    }

    /// The service dimension's value.
    pub fn service(&self) -> &str {
        &self.service
    }

    /// The namespace.
    pub fn namespace(&self) -> &str {
        &self.namespace
    }

    /// The EMF lines for `counts` at `at`: one per (flag, variant) with `Exposures`, one per
    /// (flag, variant, event) with `Conversions` and up to 100 `ConversionValue` samples (more
    /// values go on further lines that carry only them).
    pub fn lines(&self, counts: &Counts, at: SystemTime) -> Vec<String> {
        let timestamp = at
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
        let mut lines = Vec::with_capacity(counts.exposures.len() + counts.conversions.len());
        for ((flag, variant), n) in &counts.exposures {
            let mut root = self.root(timestamp, &[FLAG, VARIANT], &[(EXPOSURES, "Count")]);
            root.insert(FLAG.into(), flag.as_str().into());
            root.insert(VARIANT.into(), variant.as_str().into());
            root.insert(EXPOSURES.into(), (*n).into());
            lines.push(Value::Object(root).to_string());
        }
        for ((flag, variant, event), conversions) in &counts.conversions {
            let mut chunks = conversions.values.chunks(MAX_VALUES_PER_LINE);
            let first = chunks.next();
            let mut metrics = vec![(CONVERSIONS, "Count")];
            if first.is_some() {
                metrics.push((CONVERSION_VALUE, "None"));
            }
            let line = |metrics: &[(&str, &str)], count: Option<u64>, values: Option<&[f64]>| {
                let mut root = self.root(timestamp, &[FLAG, VARIANT, EVENT], metrics);
                root.insert(FLAG.into(), flag.as_str().into());
                root.insert(VARIANT.into(), variant.as_str().into());
                root.insert(EVENT.into(), event.as_str().into());
                if let Some(count) = count {
                    root.insert(CONVERSIONS.into(), count.into());
                }
                if let Some(values) = values {
                    root.insert(CONVERSION_VALUE.into(), values.into());
                }
                Value::Object(root).to_string()
            };
            lines.push(line(&metrics, Some(conversions.count), first));
            for values in chunks {
                lines.push(line(&[(CONVERSION_VALUE, "None")], None, Some(values)));
            }
        }
        lines
    }

    /// The `_aws` metadata and `Service`, for metrics `metrics` under dimensions `Service` +
    /// `dimensions`.
    fn root(
        &self,
        timestamp: u64,
        dimensions: &[&str],
        metrics: &[(&str, &str)],
    ) -> Map<String, Value> {
        let mut set = vec![SERVICE];
        set.extend_from_slice(dimensions);
        let metrics: Vec<Value> = metrics
            .iter()
            .map(|(name, unit)| json!({"Name": name, "Unit": unit}))
            .collect();
        let mut root = Map::new();
        root.insert(
            "_aws".into(),
            json!({
                "Timestamp": timestamp,
                "CloudWatchMetrics": [{
                    "Namespace": self.namespace,
                    "Dimensions": [set],
                    "Metrics": metrics,
                }],
            }),
        );
        root.insert(SERVICE.into(), self.service.as_str().into());
        root
    }

    /// Writes the lines for `counts` to stdout, each whole (one write under the lock), where
    /// Lambda sends them to CloudWatch Logs.
    pub fn write(&self, counts: &Counts) {
        let mut text = String::new();
        for line in self.lines(counts, SystemTime::now()) {
            text.push_str(&line);
            text.push('\n');
        }
        // A closed stdout only loses metrics; the handler goes on.
        let _ = std::io::stdout().lock().write_all(text.as_bytes());
    }
}

#[cfg(test)]
mod tests {
    use super::super::Conversions;
    use super::*;

    #[test]
    fn each_series_is_a_line_with_its_dimensions_and_values_at_the_root() {
        let emitter = Emitter::new("ssm-flags", "checkout");
        let mut counts = Counts::default();
        counts
            .exposures
            .insert(("flow".into(), "one-page".into()), 40);
        counts.conversions.insert(
            ("flow".into(), "one-page".into(), "paid".into()),
            Conversions {
                count: 3,
                values: (0..150).map(f64::from).collect(),
            },
        );
        counts.conversions.insert(
            ("flow".into(), "classic".into(), "paid".into()),
            Conversions {
                count: 2,
                values: Vec::new(),
            },
        );
        let at = UNIX_EPOCH + std::time::Duration::from_millis(1_764_000_000_123);
        let lines = emitter.lines(&counts, at);
        assert_eq!(lines.len(), 4, "{lines:#?}");
        let docs: Vec<Value> = lines
            .iter()
            .map(|l| serde_json::from_str(l).expect("JSON"))
            .collect();
        for doc in &docs {
            assert_eq!(doc["_aws"]["Timestamp"], 1_764_000_000_123u64);
            let directive = &doc["_aws"]["CloudWatchMetrics"][0];
            assert_eq!(directive["Namespace"], "ssm-flags");
            assert_eq!(doc["Service"], "checkout");
            for dimension in directive["Dimensions"][0].as_array().expect("one set") {
                assert!(doc[dimension.as_str().expect("name")].is_string(), "{doc}");
            }
            for metric in directive["Metrics"].as_array().expect("metrics") {
                assert!(
                    !doc[metric["Name"].as_str().expect("name")].is_null(),
                    "{doc}"
                );
            }
        }
        assert_eq!(docs[0]["Exposures"], 40);
        assert_eq!(
            docs[0]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Service", "Flag", "Variant"]])
        );
        // classic sorts first: a count, no values declared.
        assert_eq!(docs[1]["Conversions"], 2);
        assert!(docs[1].get("ConversionValue").is_none());
        assert_eq!(
            docs[1]["_aws"]["CloudWatchMetrics"][0]["Dimensions"],
            json!([["Service", "Flag", "Variant", "Event"]])
        );
        assert_eq!(docs[2]["Conversions"], 3);
        assert_eq!(
            docs[2]["ConversionValue"].as_array().map(Vec::len),
            Some(100)
        );
        assert!(docs[3].get("Conversions").is_none(), "values only");
        assert_eq!(
            docs[3]["ConversionValue"].as_array().map(Vec::len),
            Some(50)
        );
    }

    #[test]
    fn the_setting_and_the_service_are_checked() {
        assert_eq!(MetricsSetting::parse(None), Ok(MetricsSetting::Emf));
        assert_eq!(MetricsSetting::parse(Some("OFF")), Ok(MetricsSetting::Off));
        assert!(MetricsSetting::parse(Some("prometheus")).is_err());
        assert_eq!(
            Emitter::service_from(Some(" shop "), Some("fn")).as_deref(),
            Ok("shop")
        );
        assert_eq!(Emitter::service_from(None, Some("fn")).as_deref(), Ok("fn"));
        assert!(Emitter::service_from(Some("caf\u{e9}"), None).is_err());
        assert!(!Emitter::service_from(None, None).expect("exe").is_empty());
    }
}
