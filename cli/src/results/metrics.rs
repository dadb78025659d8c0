//! An experiment's metrics read back from CloudWatch: the `Exposures`, `Conversions` and
//! `ConversionValue` series `flags::experiment` writes (as EMF lines), per variant, added up
//! over a window with `GetMetricData`.
//!
//! CloudWatch's limits shape the query: a period is a whole number of minutes; data older
//! than 15 days is kept at 5-minute resolution and older than 63 days at 1 hour, for 455 days
//! in all; one call takes at most 500 queries and answers in pages (`NextToken`, past 100,800
//! datapoints). A window of up to a day is one period; a longer one is read in days and added
//! up.

use std::collections::BTreeSet;
use std::time::Duration;

use aws_sdk_cloudwatch::primitives::DateTime;
use aws_sdk_cloudwatch::types::{
    Dimension, DimensionFilter, Metric, MetricDataQuery, MetricStat, StatusCode,
};
use flags::experiment::{CONVERSION_VALUE, CONVERSIONS, EVENT, EXPOSURES, FLAG, SERVICE, VARIANT};

use crate::error::{AwsError, CtlError};

/// The longest window: CloudWatch keeps metrics 455 days.
pub const MAX_SINCE: Duration = Duration::from_secs(455 * 86_400);
/// A day: the period of a window longer than one (a multiple of an hour, as data older than 63
/// days needs).
const DAY: i64 = 86_400;
/// Queries per `GetMetricData` call (CloudWatch's limit is 500).
const QUERIES_PER_CALL: usize = 500;
/// Queries per variant: exposures, conversions, the values' sum and their count.
const PER_VARIANT: usize = 4;

/// The time the metrics are added up over: `[start, end)`, in periods.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Window {
    /// The start, in seconds since the epoch (a whole minute).
    pub start: i64,
    /// The end (exclusive), in seconds since the epoch (a whole minute).
    pub end: i64,
    /// The period of the query, in seconds (a multiple of 60).
    pub period: i32,
}

impl Window {
    /// The window of length `since` (rounded up to a minute) ending at the minute after
    /// `now` (seconds since the epoch), so that metrics written this minute count.
    pub fn ending(now: i64, since: Duration) -> Result<Self, CtlError> {
        if since < Duration::from_secs(60) || since > MAX_SINCE {
            return Err(CtlError::usage(format!(
                "--since {}: give between 1 minute and 455 days (CloudWatch keeps metrics 455 days)",
                humantime::format_duration(since)
            )));
        }
        let minutes = since.as_secs().div_ceil(60) as i64;
        let end = (now.div_euclid(60) + 1) * 60;
        let start = end - minutes * 60;
        let span = end - start;
        let period = if span <= DAY { span } else { DAY };
        Ok(Self {
            start,
            end,
            period: i32::try_from(period).unwrap_or(DAY as i32),
        })
    }
}

/// Which experiment's metrics: the namespace and the dimensions every series shares.
#[derive(Debug, Clone, Copy)]
pub struct Series<'a> {
    /// The namespace (`SSM_FLAGS_METRICS_NAMESPACE`).
    pub namespace: &'a str,
    /// The `Service` dimension.
    pub service: &'a str,
    /// The `Flag` dimension.
    pub flag: &'a str,
    /// The `Event` dimension of conversions.
    pub event: &'a str,
}

/// One variant's numbers over the window.
#[derive(Debug, Clone, Copy, Default, PartialEq)]
pub struct Observed {
    /// Units exposed (`Exposures`, Sum).
    pub exposures: u64,
    /// Units that converted on the event (`Conversions`, Sum).
    pub conversions: u64,
    /// The conversion values' sum (`ConversionValue`, Sum).
    pub value_sum: f64,
    /// How many values (`ConversionValue`, SampleCount).
    pub value_count: u64,
}

fn dimension(name: &str, value: &str) -> Dimension {
    Dimension::builder().name(name).value(value).build()
}

/// The variants with exposures of this flag and service that CloudWatch lists (metrics with
/// data in the last two weeks), sorted.
pub async fn variants_seen(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    series: Series<'_>,
) -> Result<Vec<String>, CtlError> {
    let filter =
        |name: &str, value: &str| DimensionFilter::builder().name(name).value(value).build();
    let mut pages = cloudwatch
        .list_metrics()
        .namespace(series.namespace)
        .metric_name(EXPOSURES)
        .dimensions(filter(SERVICE, series.service))
        .dimensions(filter(FLAG, series.flag))
        .into_paginator()
        .send();
    let mut seen = BTreeSet::new();
    while let Some(page) = pages.next().await {
        let page = page.map_err(|e| {
            AwsError::from_sdk(
                "cloudwatch:ListMetrics",
                &format!("namespace {}", series.namespace),
                e,
            )
        })?;
        for metric in page.metrics() {
            let dimensions = metric.dimensions();
            // Exactly the dimensions an exposure line declares.
            if dimensions.len() != 3 {
                continue;
            }
            if let Some(variant) = dimensions
                .iter()
                .find(|d| d.name() == Some(VARIANT))
                .and_then(|d| d.value())
            {
                seen.insert(variant.to_owned());
            }
        }
    }
    Ok(seen.into_iter().collect())
}

/// The numbers of each of `variants` over `window`, in their order.
pub async fn read(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    series: Series<'_>,
    variants: &[String],
    window: Window,
) -> Result<Vec<Observed>, CtlError> {
    let mut observed = vec![Observed::default(); variants.len()];
    let per_call = QUERIES_PER_CALL / PER_VARIANT;
    for (chunk, names) in variants.chunks(per_call).enumerate() {
        let first = chunk * per_call;
        let queries = names
            .iter()
            .enumerate()
            .flat_map(|(i, variant)| queries(series, first + i, variant, window.period))
            .collect();
        let sums = query(cloudwatch, series, queries, window).await?;
        for (id, sum) in sums {
            let (kind, index) = id.split_at(1);
            let Some(o) = index
                .parse::<usize>()
                .ok()
                .and_then(|i| observed.get_mut(i))
            else {
                continue;
            };
            let count = sum.round().max(0.0) as u64;
            match kind {
                "e" => o.exposures = count,
                "c" => o.conversions = count,
                "s" => o.value_sum = sum,
                "n" => o.value_count = count,
                _ => {}
            }
        }
    }
    Ok(observed)
}

/// The four queries of variant number `i`: ids `e{i}`, `c{i}`, `s{i}`, `n{i}`.
fn queries(series: Series<'_>, i: usize, variant: &str, period: i32) -> Vec<MetricDataQuery> {
    let shared = [
        dimension(SERVICE, series.service),
        dimension(FLAG, series.flag),
        dimension(VARIANT, variant),
    ];
    let metric = |name: &str, with_event: bool| {
        let mut builder = Metric::builder()
            .namespace(series.namespace)
            .metric_name(name)
            .set_dimensions(Some(shared.to_vec()));
        if with_event {
            builder = builder.dimensions(dimension(EVENT, series.event));
        }
        builder.build()
    };
    let query = |id: String, metric: Metric, stat: &str| {
        MetricDataQuery::builder()
            .id(id)
            .metric_stat(
                MetricStat::builder()
                    .metric(metric)
                    .period(period)
                    .stat(stat)
                    .build(),
            )
            .return_data(true)
            .build()
    };
    vec![
        query(format!("e{i}"), metric(EXPOSURES, false), "Sum"),
        query(format!("c{i}"), metric(CONVERSIONS, true), "Sum"),
        query(format!("s{i}"), metric(CONVERSION_VALUE, true), "Sum"),
        query(
            format!("n{i}"),
            metric(CONVERSION_VALUE, true),
            "SampleCount",
        ),
    ]
}

/// Runs `queries` over `window`, every page, and adds up each query's values over the periods.
async fn query(
    cloudwatch: &aws_sdk_cloudwatch::Client,
    series: Series<'_>,
    queries: Vec<MetricDataQuery>,
    window: Window,
) -> Result<Vec<(String, f64)>, CtlError> {
    let mut sums: Vec<(String, f64)> = Vec::new();
    let mut next_token: Option<String> = None;
    loop {
        let page = cloudwatch
            .get_metric_data()
            .set_metric_data_queries(Some(queries.clone()))
            .start_time(DateTime::from_secs(window.start))
            .end_time(DateTime::from_secs(window.end))
            .set_next_token(next_token.take())
            .send()
            .await
            .map_err(|e| {
                AwsError::from_sdk(
                    "cloudwatch:GetMetricData",
                    &format!("namespace {}", series.namespace),
                    e,
                )
            })?;
        for result in page.metric_data_results() {
            if matches!(
                result.status_code(),
                Some(StatusCode::InternalError | StatusCode::Forbidden)
            ) {
                let messages: Vec<&str> =
                    result.messages().iter().filter_map(|m| m.value()).collect();
                return Err(CtlError::Source(format!(
                    "CloudWatch could not read {} of {} in namespace {}: {}",
                    result.label().unwrap_or("a series"),
                    series.flag,
                    series.namespace,
                    messages.join("; ")
                )));
            }
            let id = result.id().unwrap_or_default();
            // From +0.0: an empty float sum is -0.0.
            let sum = result.values().iter().fold(0.0, |total, v| total + v);
            match sums.iter_mut().find(|(i, _)| i == id) {
                Some((_, total)) => *total += sum,
                None => sums.push((id.to_owned(), sum)),
            }
        }
        match page.next_token() {
            Some(token) if !token.is_empty() => next_token = Some(token.to_owned()),
            _ => return Ok(sums),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_window_is_whole_minutes_and_its_periods_respect_cloudwatch() {
        let now = 1_764_000_030; // 30 s into a minute
        let hour = Window::ending(now, Duration::from_secs(3600)).expect("an hour");
        assert_eq!(hour.end, 1_764_000_060);
        assert_eq!((hour.end - hour.start, hour.period), (3600, 3600));
        let odd = Window::ending(now, Duration::from_secs(90)).expect("90 s");
        assert_eq!((odd.end - odd.start, odd.period), (120, 120), "rounded up");
        let week = Window::ending(now, Duration::from_secs(7 * 86_400)).expect("a week");
        assert_eq!((week.end - week.start, week.period), (7 * 86_400, 86_400));
        let year = Window::ending(now, MAX_SINCE).expect("455 days");
        assert_eq!(year.period, 86_400);
        for window in [hour, odd, week, year] {
            assert_eq!(window.period % 60, 0);
            assert_eq!(window.start % 60, 0);
            // Past 100,800 datapoints a call CloudWatch pages (NextToken): read to the end.
            let periods = (window.end - window.start) / i64::from(window.period);
            assert!(periods <= 455, "{window:?}");
        }
        assert!(Window::ending(now, Duration::from_secs(30)).is_err());
        assert!(Window::ending(now, MAX_SINCE + Duration::from_secs(60)).is_err());
    }

    #[test]
    fn each_variant_has_four_queries_with_ids_cloudwatch_accepts() {
        let series = Series {
            namespace: "ssm-flags",
            service: "shop",
            flag: "flow",
            event: "paid",
        };
        let queries = queries(series, 7, "one-page", 3600);
        let ids: Vec<&str> = queries.iter().filter_map(|q| q.id()).collect();
        assert_eq!(ids, ["e7", "c7", "s7", "n7"]);
        let exposures = queries[0]
            .metric_stat()
            .and_then(|s| s.metric())
            .expect("a metric");
        assert_eq!(exposures.dimensions().len(), 3);
        let values = queries[3].metric_stat().expect("a stat");
        assert_eq!(values.stat(), Some("SampleCount"));
        assert_eq!(values.metric().map(|m| m.dimensions().len()), Some(4));
    }
}
