//! CloudWatch Embedded Metric Format, read as CloudWatch Logs reads it. moto does not extract
//! metrics from log lines: [`parse`] turns the EMF lines in any text (a handler's stdout) into
//! the `PutMetricData` datums CloudWatch Logs would publish, and [`put`] sends them to moto's
//! CloudWatch, where `GetMetricData` ([`statistic`]) reads them back as a dashboard would.
//!
//! The rules (<https://docs.aws.amazon.com/AmazonCloudWatch/latest/monitoring/CloudWatch_Embedded_Metric_Format_Specification.html>):
//! a line that is not a JSON object, or has no `_aws`, is a log line and is skipped. Otherwise
//! each directive of `_aws.CloudWatchMetrics` gives, for each of its dimension sets and each of
//! its metrics, one datum: the metric's value from the root (a number, or an array of at most
//! [`MAX_VALUES_PER_METRIC`] numbers — repeated values become `Counts`), each dimension's value
//! from the root (a string), the time `_aws.Timestamp` (milliseconds), the metric's `Unit` and
//! `StorageResolution`. A line that declares a metric or a dimension without its value at the
//! root, or a metric with too many values, is an error naming the line: CloudWatch Logs would
//! drop its metrics, and a test must not pass on a metric that was never published.

use std::fmt;

use aws_sdk_cloudwatch::Client;
use aws_sdk_cloudwatch::config::{BehaviorVersion, Credentials, Region};
use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    Dimension, Metric, MetricDataQuery, MetricDatum, MetricStat, StandardUnit,
};
use serde_json::{Map, Value};

use crate::endpoint;
use crate::lambda::REGION;

/// The most values one metric may carry in an EMF line.
pub const MAX_VALUES_PER_METRIC: usize = 100;
/// The most dimensions a dimension set may name.
pub const MAX_DIMENSIONS: usize = 30;
/// The most datums one `PutMetricData` call takes.
pub const MAX_DATUMS_PER_CALL: usize = 1000;
/// The most distinct values one datum's `Values` may hold.
pub const MAX_VALUES_PER_DATUM: usize = 150;
/// Values (with their counts) per call: keeps a request well inside `PutMetricData`'s 1 MB.
const MAX_VALUES_PER_CALL: usize = 5_000;

/// One datum as CloudWatch Logs would publish it.
#[derive(Debug, Clone, PartialEq)]
pub struct Datum {
    /// The namespace (`PutMetricData` takes one per call).
    pub namespace: String,
    /// The metric's name.
    pub name: String,
    /// The dimensions, in the order the dimension set names them.
    pub dimensions: Vec<(String, String)>,
    /// `_aws.Timestamp`: milliseconds since the epoch.
    pub timestamp_ms: i64,
    /// The unit (`Count`, `None`, `Milliseconds`…), if the line gave one.
    pub unit: Option<String>,
    /// `StorageResolution` (1: high resolution; 60: standard), if the line gave one.
    pub storage_resolution: Option<i32>,
    /// The value or values.
    pub sample: Sample,
}

/// A metric's value at the root of a line.
#[derive(Debug, Clone, PartialEq)]
pub enum Sample {
    /// A number: `Value`.
    One(f64),
    /// An array: each distinct value with how often it occurred (`Values` and `Counts`), in
    /// the order first seen.
    Many(Vec<(f64, u32)>),
}

impl Datum {
    /// The value of dimension `name`, if the datum has it.
    pub fn dimension(&self, name: &str) -> Option<&str> {
        self.dimensions
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, v)| v.as_str())
    }
}

impl Sample {
    /// The sum of the values (each counted as often as it occurred).
    pub fn sum(&self) -> f64 {
        match self {
            Self::One(v) => *v,
            Self::Many(values) => values
                .iter()
                .fold(0.0, |sum, (v, n)| sum + v * f64::from(*n)),
        }
    }

    /// How many values: CloudWatch's `SampleCount`.
    pub fn count(&self) -> u64 {
        match self {
            Self::One(_) => 1,
            Self::Many(values) => values.iter().map(|(_, n)| u64::from(*n)).sum(),
        }
    }
}

/// Why EMF text could not be published.
#[derive(Debug, Clone, PartialEq)]
pub enum EmfError {
    /// A line is EMF but breaks the format.
    Line {
        /// Its number in the text, from 1.
        line: usize,
        /// What is wrong.
        problem: String,
        /// The line (its first 200 characters).
        text: String,
    },
    /// CloudWatch refused a `PutMetricData` call.
    Put {
        /// The namespace of the call.
        namespace: String,
        /// What the SDK said.
        message: String,
    },
}

impl fmt::Display for EmfError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Line {
                line,
                problem,
                text,
            } => write!(f, "EMF line {line}: {problem}: {text}"),
            Self::Put { namespace, message } => {
                write!(f, "PutMetricData in namespace {namespace:?}: {message}")
            }
        }
    }
}

impl std::error::Error for EmfError {}

/// The datums of every EMF line in `text`, in order; other lines are skipped.
pub fn parse(text: &str) -> Result<Vec<Datum>, EmfError> {
    let mut datums = Vec::new();
    for (index, line) in text.lines().enumerate() {
        let error = |problem: String| EmfError::Line {
            line: index + 1,
            problem,
            text: line.trim().chars().take(200).collect(),
        };
        let Ok(Value::Object(root)) = serde_json::from_str::<Value>(line.trim()) else {
            continue;
        };
        let Some(aws) = root.get("_aws") else {
            continue;
        };
        datums.extend(parse_line(&root, aws).map_err(error)?);
    }
    Ok(datums)
}

/// The datums of one line whose root is `root` and metadata `aws`.
fn parse_line(root: &Map<String, Value>, aws: &Value) -> Result<Vec<Datum>, String> {
    let aws = aws.as_object().ok_or("`_aws` is not an object")?;
    let timestamp_ms = match aws.get("Timestamp") {
        Some(Value::Number(n)) => n
            .as_i64()
            .or_else(|| n.as_f64().filter(|f| f.fract() == 0.0).map(|f| f as i64))
            .filter(|t| *t >= 0)
            .ok_or_else(|| format!("_aws.Timestamp {n} is not milliseconds since the epoch"))?,
        Some(other) => return Err(format!("_aws.Timestamp {other} is not a number")),
        None => return Err("_aws.Timestamp is missing".into()),
    };
    let directives = aws
        .get("CloudWatchMetrics")
        .and_then(Value::as_array)
        .ok_or("_aws.CloudWatchMetrics is not an array of directives")?;
    let mut datums = Vec::new();
    for (d, directive) in directives.iter().enumerate() {
        let at = |field: &str| format!("_aws.CloudWatchMetrics[{d}].{field}");
        let namespace = directive
            .get("Namespace")
            .and_then(Value::as_str)
            .filter(|n| (1..=255).contains(&n.len()))
            .ok_or_else(|| format!("{} is not a name of 1 to 255 characters", at("Namespace")))?;
        let sets = directive
            .get("Dimensions")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{} is not an array of dimension sets", at("Dimensions")))?;
        let mut dimension_sets = Vec::new();
        for set in sets {
            let names = set
                .as_array()
                .ok_or_else(|| format!("{}: {set} is not a dimension set", at("Dimensions")))?;
            if names.len() > MAX_DIMENSIONS {
                return Err(format!(
                    "{}: a dimension set names {} dimensions (at most {MAX_DIMENSIONS})",
                    at("Dimensions"),
                    names.len()
                ));
            }
            let mut dimensions = Vec::with_capacity(names.len());
            for name in names {
                let name = name.as_str().ok_or_else(|| {
                    format!("{}: {name} is not a dimension name", at("Dimensions"))
                })?;
                let value = match root.get(name) {
                    Some(Value::String(value)) if !value.is_empty() => value,
                    Some(other) => {
                        return Err(format!(
                            "dimension {name:?}'s value at the root is {other}, not a non-empty string"
                        ));
                    }
                    None => {
                        return Err(format!(
                            "dimension {name:?} is declared but has no value at the root"
                        ));
                    }
                };
                dimensions.push((name.to_owned(), value.clone()));
            }
            dimension_sets.push(dimensions);
        }
        // No dimension set: the metrics are published without dimensions.
        if dimension_sets.is_empty() {
            dimension_sets.push(Vec::new());
        }
        let metrics = directive
            .get("Metrics")
            .and_then(Value::as_array)
            .ok_or_else(|| format!("{} is not an array of metrics", at("Metrics")))?;
        for metric in metrics {
            let name = metric
                .get("Name")
                .and_then(Value::as_str)
                .filter(|n| !n.is_empty())
                .ok_or_else(|| format!("{}: {metric} has no Name", at("Metrics")))?;
            let unit = match metric.get("Unit") {
                None | Some(Value::Null) => None,
                Some(Value::String(unit)) if StandardUnit::values().contains(&unit.as_str()) => {
                    Some(unit.clone())
                }
                Some(other) => {
                    return Err(format!(
                        "metric {name:?}'s Unit {other} is not a CloudWatch unit"
                    ));
                }
            };
            let storage_resolution = match metric.get("StorageResolution") {
                None | Some(Value::Null) => None,
                Some(Value::Number(n)) if n.as_i64() == Some(1) || n.as_i64() == Some(60) => {
                    n.as_i64().map(|r| r as i32)
                }
                Some(other) => {
                    return Err(format!(
                        "metric {name:?}'s StorageResolution {other} is neither 1 nor 60"
                    ));
                }
            };
            let sample = sample(name, root.get(name))?;
            for dimensions in &dimension_sets {
                datums.push(Datum {
                    namespace: namespace.to_owned(),
                    name: name.to_owned(),
                    dimensions: dimensions.clone(),
                    timestamp_ms,
                    unit: unit.clone(),
                    storage_resolution,
                    sample: sample.clone(),
                });
            }
        }
    }
    Ok(datums)
}

/// The metric `name`'s value at the root.
fn sample(name: &str, value: Option<&Value>) -> Result<Sample, String> {
    let number = |v: &Value| {
        v.as_f64()
            .ok_or_else(|| format!("metric {name:?}'s value {v} is not a number"))
    };
    match value {
        None => Err(format!(
            "metric {name:?} is declared but has no value at the root"
        )),
        Some(Value::Array(items)) if items.is_empty() => {
            Err(format!("metric {name:?}'s value is an empty array"))
        }
        Some(Value::Array(items)) if items.len() > MAX_VALUES_PER_METRIC => Err(format!(
            "metric {name:?} carries {} values (at most {MAX_VALUES_PER_METRIC} a line)",
            items.len()
        )),
        Some(Value::Array(items)) => {
            let mut counted: Vec<(f64, u32)> = Vec::new();
            for item in items {
                // -0.0 and 0.0 are one value.
                let v = number(item)? + 0.0;
                match counted
                    .iter_mut()
                    .find(|(seen, _)| seen.to_bits() == v.to_bits())
                {
                    Some((_, n)) => *n += 1,
                    None => counted.push((v, 1)),
                }
            }
            Ok(Sample::Many(counted))
        }
        Some(other) => number(other).map(Sample::One),
    }
}

/// The `PutMetricData` datums of one [`Datum`]: one, or several when it holds more distinct
/// values than a datum takes.
fn datums_of(datum: &Datum) -> Vec<MetricDatum> {
    let base = || {
        let mut builder = MetricDatum::builder()
            .metric_name(&datum.name)
            .timestamp(DateTime::from_millis(datum.timestamp_ms))
            .set_unit(datum.unit.as_deref().map(StandardUnit::from))
            .set_storage_resolution(datum.storage_resolution);
        for (name, value) in &datum.dimensions {
            builder = builder.dimensions(Dimension::builder().name(name).value(value).build());
        }
        builder
    };
    match &datum.sample {
        Sample::One(value) => vec![base().value(*value).build()],
        Sample::Many(values) => values
            .chunks(MAX_VALUES_PER_DATUM)
            .map(|chunk| {
                chunk
                    .iter()
                    .fold(base(), |b, (v, n)| b.values(*v).counts(f64::from(*n)))
                    .build()
            })
            .collect(),
    }
}

/// Publishes the EMF lines in `text` to CloudWatch (moto) as CloudWatch Logs would: each
/// namespace's datums in calls of at most [`MAX_DATUMS_PER_CALL`]. Returns how many datums were
/// sent; nothing is sent when a line is malformed.
pub async fn put(client: &Client, text: &str) -> Result<usize, EmfError> {
    let datums = parse(text)?;
    let mut by_namespace: Vec<(String, Vec<MetricDatum>)> = Vec::new();
    for datum in &datums {
        let converted = datums_of(datum);
        match by_namespace.iter_mut().find(|(n, _)| *n == datum.namespace) {
            Some((_, list)) => list.extend(converted),
            None => by_namespace.push((datum.namespace.clone(), converted)),
        }
    }
    let mut sent = 0;
    for (namespace, list) in by_namespace {
        let mut batch: Vec<MetricDatum> = Vec::new();
        let mut values = 0;
        for datum in list {
            let weight = datum.values().len().max(1);
            if batch.len() == MAX_DATUMS_PER_CALL || values + weight > MAX_VALUES_PER_CALL {
                sent += send(client, &namespace, std::mem::take(&mut batch)).await?;
                values = 0;
            }
            values += weight;
            batch.push(datum);
        }
        if !batch.is_empty() {
            sent += send(client, &namespace, batch).await?;
        }
    }
    Ok(sent)
}

async fn send(
    client: &Client,
    namespace: &str,
    batch: Vec<MetricDatum>,
) -> Result<usize, EmfError> {
    let n = batch.len();
    client
        .put_metric_data()
        .namespace(namespace)
        .set_metric_data(Some(batch))
        .send()
        .await
        .map_err(|e| EmfError::Put {
            namespace: namespace.to_owned(),
            message: format!("{:?}", e.into_service_error()),
        })?;
    Ok(n)
}

/// A CloudWatch client for the local endpoint (moto) on `port`.
pub fn client(port: u16) -> Client {
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(BehaviorVersion::latest())
        .region(Region::new(REGION))
        .endpoint_url(endpoint(port))
        .credentials_provider(Credentials::new("test", "test", None, None, "testkit"))
        .build();
    Client::from_conf(config)
}

/// One statistic (`Sum`, `SampleCount`…) of a metric with exactly `dimensions`, over
/// `[start, end)` in periods of `period_secs`, read back with `GetMetricData` and added up over
/// the periods (`None`: no data).
pub async fn statistic(
    client: &Client,
    namespace: &str,
    name: &str,
    dimensions: &[(&str, &str)],
    stat: &str,
    (start, end): (DateTime, DateTime),
    period_secs: i32,
) -> Option<f64> {
    let metric = dimensions.iter().fold(
        Metric::builder().namespace(namespace).metric_name(name),
        |m, (k, v)| m.dimensions(Dimension::builder().name(*k).value(*v).build()),
    );
    let query = MetricDataQuery::builder()
        .id("q")
        .metric_stat(
            MetricStat::builder()
                .metric(metric.build())
                .period(period_secs)
                .stat(stat)
                .build(),
        )
        .build();
    let mut pages = client
        .get_metric_data()
        .metric_data_queries(query)
        .start_time(start)
        .end_time(end)
        .into_paginator()
        .send();
    let mut total: Option<f64> = None;
    while let Some(page) = pages.next().await {
        let page = page.unwrap_or_else(|e| panic!("GetMetricData {namespace}/{name}: {e:?}"));
        for result in page.metric_data_results() {
            for value in result.values() {
                *total.get_or_insert(0.0) += value;
            }
        }
    }
    total
}

#[cfg(test)]
mod tests {
    use super::*;

    fn line_error(text: &str) -> String {
        match parse(text) {
            Err(EmfError::Line { problem, .. }) => problem,
            other => panic!("expected a line error, got {other:?}"),
        }
    }

    #[test]
    fn each_directive_dimension_set_and_metric_is_a_datum() {
        let text = concat!(
            "START RequestId: 1\n",
            "{\"level\": \"info\", \"message\": \"not EMF\"}\n",
            "{\"_aws\": {\"Timestamp\": 1764000000123, \"CloudWatchMetrics\": [{\"Namespace\": \"shop\", ",
            "\"Dimensions\": [[\"Service\"], [\"Service\", \"Route\"]], \"Metrics\": [{\"Name\": \"Latency\", ",
            "\"Unit\": \"Milliseconds\", \"StorageResolution\": 1}, {\"Name\": \"Hits\"}]}]}, ",
            "\"Service\": \"cart\", \"Route\": \"/buy\", \"Latency\": [3, 5, 3, 3.5, -0.0, 0], \"Hits\": 2, ",
            "\"requestId\": \"r-1\"}\n",
            "{not json\n",
        );
        let datums = parse(text).expect("valid");
        assert_eq!(datums.len(), 4, "{datums:#?}");
        let latency = &datums[0];
        assert_eq!(latency.namespace, "shop");
        assert_eq!(latency.dimensions, [("Service".into(), "cart".into())]);
        assert_eq!(latency.timestamp_ms, 1_764_000_000_123);
        assert_eq!(latency.unit.as_deref(), Some("Milliseconds"));
        assert_eq!(latency.storage_resolution, Some(1));
        assert_eq!(
            latency.sample,
            Sample::Many(vec![(3.0, 2), (5.0, 1), (3.5, 1), (0.0, 2)])
        );
        assert_eq!((latency.sample.sum(), latency.sample.count()), (14.5, 6));
        assert_eq!(
            datums[1].dimensions,
            [
                ("Service".into(), "cart".into()),
                ("Route".into(), "/buy".into())
            ]
        );
        assert_eq!(datums[2].sample, Sample::One(2.0));
        assert_eq!(datums[2].unit, None);
    }

    #[test]
    fn a_declared_metric_or_dimension_needs_its_value_at_the_root() {
        let line = |root: &str| {
            format!(
                "{{\"_aws\": {{\"Timestamp\": 1, \"CloudWatchMetrics\": [{{\"Namespace\": \"n\", \"Dimensions\": [[\"D\"]], \"Metrics\": [{{\"Name\": \"M\", \"Unit\": \"Count\"}}]}}]}}{root}}}"
            )
        };
        assert!(line_error(&line(", \"D\": \"x\"")).contains("metric \"M\" is declared"));
        assert!(line_error(&line(", \"M\": 1")).contains("dimension \"D\" is declared"));
        assert!(line_error(&line(", \"M\": 1, \"D\": 7")).contains("not a non-empty string"));
        assert!(line_error(&line(", \"M\": \"1\", \"D\": \"x\"")).contains("not a number"));
        let many: Vec<String> = (0..101).map(|i| i.to_string()).collect();
        let error = line_error(&line(&format!(
            ", \"M\": [{}], \"D\": \"x\"",
            many.join(",")
        )));
        assert!(error.contains("101 values"), "{error}");
        let hundred = &many[..100].join(",");
        assert_eq!(
            parse(&line(&format!(", \"M\": [{hundred}], \"D\": \"x\"")))
                .expect("100 values")
                .len(),
            1
        );
        let error = parse(&format!("log\n{}", line(", \"D\": \"x\""))).expect_err("bad");
        assert!(error.to_string().starts_with("EMF line 2: "), "{error}");
    }

    #[test]
    fn malformed_metadata_is_an_error_not_a_skip() {
        for (aws, problem) in [
            ("{\"CloudWatchMetrics\": []}", "Timestamp is missing"),
            (
                "{\"Timestamp\": \"now\", \"CloudWatchMetrics\": []}",
                "not a number",
            ),
            ("{\"Timestamp\": 1}", "CloudWatchMetrics"),
            (
                "{\"Timestamp\": 1, \"CloudWatchMetrics\": [{\"Dimensions\": [], \"Metrics\": []}]}",
                "Namespace",
            ),
            (
                "{\"Timestamp\": 1, \"CloudWatchMetrics\": [{\"Namespace\": \"n\", \"Dimensions\": [], \"Metrics\": [{\"Name\": \"M\", \"Unit\": \"Parsecs\"}]}]}",
                "not a CloudWatch unit",
            ),
        ] {
            let error = line_error(&format!("{{\"_aws\": {aws}, \"M\": 1}}"));
            assert!(error.contains(problem), "{aws}: {error}");
        }
    }

    #[test]
    fn a_datum_holds_at_most_150_distinct_values() {
        let datum = Datum {
            namespace: "n".into(),
            name: "m".into(),
            dimensions: Vec::new(),
            timestamp_ms: 0,
            unit: None,
            storage_resolution: None,
            sample: Sample::Many((0..301).map(|v| (f64::from(v), 2)).collect()),
        };
        let sizes: Vec<usize> = datums_of(&datum).iter().map(|d| d.values().len()).collect();
        assert_eq!(sizes, [150, 150, 1]);
    }
}
