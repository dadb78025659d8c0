//! `results`: an experiment's numbers, read back from the CloudWatch metrics handlers and the
//! extension write ([`flags::experiment`]): per variant, the units exposed, the units that
//! converted on an event, the conversion rate with its 95% Wilson interval, the difference to
//! the control with a two-sided pooled z-test, and the values the conversions carried. Two
//! checks say whether the numbers can be trusted as they stand:
//!
//! - **Sample ratio** ([`SRM_ALPHA`]): exposures against the split the definition configures
//!   (χ² goodness of fit). A mismatch means units are not assigned as configured — a bug, a
//!   redirect, bots, a variant that fails before it counts — and every difference is suspect.
//! - **Definition changed**: a version of the flag's definition written within the window
//!   ([`history`]): units before and after saw different experiments.
//!
//! Either one is a warning, and a warning exits 1 (as a lint finding does).

pub mod design;
pub mod history;
pub mod metrics;
pub mod stats;

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_ssm::primitives::{DateTime, DateTimeFormat};
use serde::Serialize;

use crate::aws::Aws;
use crate::error::{CtlError, Outcome};
use crate::output;
use crate::sources::Found;
use design::Design;
use history::Change;
use metrics::{Observed, Series, Window};

/// A sample-ratio p-value under this is a mismatch (the usual threshold: with many checks, a
/// stricter one than 0.05 keeps false alarms rare).
pub const SRM_ALPHA: f64 = 0.001;

/// Checks `--event` as `flags::track` checks an event name, before anything is read.
pub fn check_event(event: &str) -> Result<(), CtlError> {
    flags::experiment::validate_event(event).map_err(|e| CtlError::usage(format!("--event: {e}")))
}

/// What `results` was asked.
#[derive(Debug, Clone)]
pub struct Request<'a> {
    /// The conversion event.
    pub event: &'a str,
    /// How far back the window reaches.
    pub since: Duration,
    /// The control, when given (`--control`).
    pub control: Option<&'a str>,
    /// The `Service` dimension.
    pub service: &'a str,
    /// The namespace.
    pub namespace: &'a str,
    /// JSON output.
    pub json: bool,
}

/// One variant's row.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct Row {
    variant: String,
    /// The variant the others are compared with.
    control: bool,
    /// Whether the flag's definition has it (else only the metrics do).
    in_definition: bool,
    exposures: u64,
    conversions: u64,
    /// conversions / exposures.
    rate: Option<f64>,
    /// The rate's 95% Wilson interval.
    rate_low: Option<f64>,
    rate_high: Option<f64>,
    /// rate − the control's rate.
    difference: Option<f64>,
    /// difference / the control's rate.
    relative_difference: Option<f64>,
    /// The pooled two-proportion z statistic against the control, and its two-sided p-value.
    z: Option<f64>,
    p_value: Option<f64>,
    /// The conversion values' sum and count (`ConversionValue` Sum and SampleCount), and mean.
    value_sum: f64,
    value_count: u64,
    value_mean: Option<f64>,
}

/// The sample-ratio check.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct SampleRatio {
    checked: bool,
    /// Why it was not checked.
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The split checked against, with each variant's exposures.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    weights: Vec<Weight>,
    #[serde(skip_serializing_if = "Option::is_none")]
    chi_square: Option<f64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    df: Option<u32>,
    #[serde(skip_serializing_if = "Option::is_none")]
    p_value: Option<f64>,
    mismatch: bool,
}

#[derive(Debug, Clone, PartialEq, Serialize)]
struct Weight {
    variant: String,
    weight: f64,
    exposures: u64,
}

impl SampleRatio {
    fn not_checked(reason: impl Into<String>) -> Self {
        Self {
            checked: false,
            reason: Some(reason.into()),
            weights: Vec::new(),
            chi_square: None,
            df: None,
            p_value: None,
            mismatch: false,
        }
    }
}

/// The definition-changed check.
#[derive(Debug, Clone, PartialEq, Serialize)]
struct DefinitionCheck {
    checked: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    reason: Option<String>,
    /// The versions within the window that changed the flag's definition.
    changes: Vec<Change>,
}

/// The whole answer.
#[derive(Debug, Clone, Serialize)]
struct Report {
    flag: String,
    kind: &'static str,
    /// The SSM parameter defining the flag (`null`: a file or a profile).
    parameter: Option<String>,
    event: String,
    service: String,
    namespace: String,
    since: String,
    start: String,
    end: String,
    period_seconds: i32,
    control: String,
    variants: Vec<Row>,
    sample_ratio: SampleRatio,
    definition: DefinitionCheck,
    /// What makes the numbers untrustworthy as they stand: any exits 1.
    warnings: Vec<String>,
    /// What is worth knowing and changes nothing.
    notes: Vec<String>,
}

/// `results` for the flag `found`.
pub async fn results(aws: &Aws, found: &Found, request: &Request<'_>) -> Outcome {
    let design = Design::of(&found.entry)?;
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_secs() as i64);
    let window = Window::ending(now, request.since)?;
    let series = Series {
        namespace: request.namespace,
        service: request.service,
        flag: &design.flag,
        event: request.event,
    };
    let seen = metrics::variants_seen(aws.cloudwatch().await?, series).await?;
    let (variants, control) = variants_and_control(&design, &seen, request.control)?;
    let observed = metrics::read(aws.cloudwatch().await?, series, &variants, window).await?;
    let definition = match &found.parameter {
        Some(parameter) => DefinitionCheck {
            checked: true,
            reason: None,
            changes: history::changes(
                aws.ssm().await?,
                parameter,
                found.format,
                &design.flag,
                window.start,
            )
            .await?,
        },
        None => DefinitionCheck {
            checked: false,
            reason: Some("the flag was read from a source that keeps no history (a file or an AppConfig profile)".into()),
            changes: Vec::new(),
        },
    };
    let report = report(
        &design,
        found.parameter.clone(),
        request,
        window,
        (&variants, &observed, &control),
        definition,
    );
    if request.json {
        output::print_json(&report);
    } else {
        print(&report, &design, request.control.is_some());
    }
    Ok(!report.warnings.is_empty())
}

/// Every variant to report — the definition's in order, then any only the metrics have — with
/// the control first; and the control: `control`, else the definition's.
fn variants_and_control(
    design: &Design,
    seen: &[String],
    control: Option<&str>,
) -> Result<(Vec<String>, String), CtlError> {
    let mut variants = design.variants.clone();
    variants.extend(
        seen.iter()
            .filter(|v| !design.variants.contains(v))
            .cloned(),
    );
    let control = match (control, &design.control) {
        (Some(control), _) => control.to_owned(),
        (None, Some(control)) => control.clone(),
        (None, None) => {
            return Err(CtlError::usage(format!(
                "{} has no defaultVariant: name the control with --control ({})",
                design.flag,
                variants.join(", ")
            )));
        }
    };
    let Some(at) = variants.iter().position(|v| *v == control) else {
        return Err(CtlError::usage(format!(
            "--control {control}: {} has no variant {control:?} (it has {})",
            design.flag,
            variants.join(", ")
        )));
    };
    let first = variants.remove(at);
    variants.insert(0, first);
    Ok((variants, control))
}

/// The rows, checks, warnings and notes of one answer.
fn report(
    design: &Design,
    parameter: Option<String>,
    request: &Request<'_>,
    window: Window,
    (variants, observed, control): (&[String], &[Observed], &str),
    definition: DefinitionCheck,
) -> Report {
    let rows = rows(design, variants, observed, control);
    let sample_ratio = sample_ratio(&design.split, &rows);
    let mut warnings = Vec::new();
    let mut notes = Vec::new();
    if sample_ratio.mismatch {
        let exposures: Vec<String> = sample_ratio
            .weights
            .iter()
            .map(|w| format!("{} {}", w.variant, w.exposures))
            .collect();
        let split: Vec<String> = sample_ratio
            .weights
            .iter()
            .map(|w| format!("{} {}", w.variant, number(w.weight)))
            .collect();
        warnings.push(format!(
            "sample ratio mismatch: exposures ({}) do not fit the configured split ({}){}: units are not assigned as configured (a bug, a redirect, bots, a variant failing before it counts); do not trust the differences until that is explained",
            exposures.join(", "),
            split.join(", "),
            match (sample_ratio.chi_square, sample_ratio.p_value) {
                (Some(chi), Some(p)) => format!(
                    " (χ² = {chi:.2}, {}; a mismatch is p < {SRM_ALPHA})",
                    p_text(p)
                ),
                _ => " (exposures of a variant the split gives no weight)".to_owned(),
            }
        ));
    }
    for change in &definition.changes {
        warnings.push(format!(
            "the definition of {} changed within the window: version {} at {}{}: units before and after saw different experiments; read results from after the change (a shorter --since)",
            design.flag,
            change.version,
            change.modified,
            change
                .user
                .as_deref()
                .map_or(String::new(), |u| format!(" by {u}"))
        ));
    }
    for row in &rows {
        if row.conversions > row.exposures {
            warnings.push(format!(
                "{} has more conversions ({}) than exposures ({}): conversions are counted only for units exposed in the same invocation, so the metrics are incomplete or written by something else",
                row.variant, row.conversions, row.exposures
            ));
        }
        if !row.in_definition {
            notes.push(format!(
                "{} is not a variant of the definition: it has metrics of its own within the last two weeks (a renamed or removed variant?)",
                row.variant
            ));
        }
    }
    if rows.iter().all(|r| r.exposures == 0) {
        notes.push(format!(
            "no exposures of {} for service {:?} in namespace {:?} within the window: check --service, --namespace and --path (the Flag dimension is the flag's name under the path handlers read), and that handlers evaluate the flag with a targeting key (only a split's decisions count)",
            design.flag, request.service, request.namespace
        ));
    }
    let at = |secs: i64| {
        DateTime::from_secs(secs)
            .fmt(DateTimeFormat::DateTime)
            .unwrap_or_else(|_| secs.to_string())
    };
    Report {
        flag: design.flag.clone(),
        kind: design.kind,
        parameter,
        event: request.event.to_owned(),
        service: request.service.to_owned(),
        namespace: request.namespace.to_owned(),
        since: humantime::format_duration(request.since).to_string(),
        start: at(window.start),
        end: at(window.end),
        period_seconds: window.period,
        control: control.to_owned(),
        variants: rows,
        sample_ratio,
        definition,
        warnings,
        notes,
    }
}

/// Each variant's numbers and its test against the control (the first).
fn rows(design: &Design, variants: &[String], observed: &[Observed], control: &str) -> Vec<Row> {
    let rate = |o: &Observed| (o.exposures > 0).then(|| o.conversions as f64 / o.exposures as f64);
    let control_observed = variants
        .iter()
        .zip(observed)
        .find(|(v, _)| *v == control)
        .map(|(_, o)| *o)
        .unwrap_or_default();
    let control_rate = rate(&control_observed);
    variants
        .iter()
        .zip(observed)
        .map(|(variant, o)| {
            let is_control = variant == control;
            let (rate_low, rate_high) = stats::wilson(o.conversions, o.exposures).unzip();
            let own = rate(o);
            let difference = match (is_control, own, control_rate) {
                (false, Some(r), Some(c)) => Some(r - c),
                _ => None,
            };
            let test = (!is_control)
                .then(|| {
                    stats::two_proportion_z(
                        o.conversions,
                        o.exposures,
                        control_observed.conversions,
                        control_observed.exposures,
                    )
                })
                .flatten();
            Row {
                variant: variant.clone(),
                control: is_control,
                in_definition: design.variants.contains(variant),
                exposures: o.exposures,
                conversions: o.conversions,
                rate: own,
                rate_low,
                rate_high,
                difference,
                relative_difference: difference
                    .zip(control_rate)
                    .filter(|(_, c)| *c > 0.0)
                    .map(|(d, c)| d / c),
                z: test.map(|t| t.z),
                p_value: test.map(|t| t.p_value),
                value_sum: o.value_sum,
                value_count: o.value_count,
                value_mean: (o.value_count > 0).then(|| o.value_sum / o.value_count as f64),
            }
        })
        .collect()
}

/// The sample-ratio check of the rows' exposures against `split`.
fn sample_ratio(split: &Result<Vec<(String, f64)>, String>, rows: &[Row]) -> SampleRatio {
    let split = match split {
        Ok(split) => split,
        Err(why) => return SampleRatio::not_checked(why.clone()),
    };
    let exposures_of = |variant: &str| {
        rows.iter()
            .find(|r| r.variant == variant)
            .map_or(0, |r| r.exposures)
    };
    if rows.iter().all(|r| r.exposures == 0) {
        return SampleRatio::not_checked("no exposures within the window");
    }
    let mut weights: Vec<Weight> = split
        .iter()
        .map(|(variant, weight)| Weight {
            variant: variant.clone(),
            weight: *weight,
            exposures: exposures_of(variant),
        })
        .collect();
    // Exposures of a variant the split does not name: as if it gave it weight 0.
    for row in rows {
        if row.exposures > 0 && !split.iter().any(|(v, _)| *v == row.variant) {
            weights.push(Weight {
                variant: row.variant.clone(),
                weight: 0.0,
                exposures: row.exposures,
            });
        }
    }
    if weights.iter().any(|w| w.weight <= 0.0 && w.exposures > 0) {
        // Expected none, observed some: χ² is infinite, its p-value 0.
        return SampleRatio {
            checked: true,
            reason: None,
            weights,
            chi_square: None,
            df: None,
            p_value: Some(0.0),
            mismatch: true,
        };
    }
    let positive: Vec<&Weight> = weights.iter().filter(|w| w.weight > 0.0).collect();
    let observed: Vec<u64> = positive.iter().map(|w| w.exposures).collect();
    let shares: Vec<f64> = positive.iter().map(|w| w.weight).collect();
    match stats::goodness_of_fit(&observed, &shares) {
        Some(test) => SampleRatio {
            checked: true,
            reason: None,
            weights,
            chi_square: Some(test.statistic),
            df: Some(test.df),
            p_value: Some(test.p_value),
            mismatch: test.p_value < SRM_ALPHA,
        },
        None => SampleRatio::not_checked(match positive.first() {
            Some(only) if positive.len() == 1 => format!(
                "the split gives all its weight to {}: there is no ratio to check",
                only.variant
            ),
            _ => "the split gives no variant any weight".to_owned(),
        }),
    }
}

/// A rate as a percentage.
fn percent(rate: f64) -> String {
    format!("{:.2}%", rate * 100.0)
}

/// A p-value in a few digits.
fn p_value(p: f64) -> String {
    if p < 0.0001 {
        "<0.0001".to_owned()
    } else {
        format!("{p:.4}")
    }
}

/// `p = 0.0123`, or `p < 0.0001`.
fn p_text(p: f64) -> String {
    match p_value(p).strip_prefix('<') {
        Some(bound) => format!("p < {bound}"),
        None => format!("p = {}", p_value(p)),
    }
}

/// A number as written: whole numbers without decimals, others with two.
fn number(x: f64) -> String {
    if x.fract() == 0.0 && x.abs() < 1e15 {
        format!("{}", x as i64)
    } else {
        format!("{x:.2}")
    }
}

/// The answer as a table and lines of text.
fn print(report: &Report, design: &Design, control_given: bool) {
    println!(
        "{} ({}): conversions on {:?}, {} to {} ({}); service {}, namespace {}",
        report.flag,
        report.kind,
        report.event,
        report.start,
        report.end,
        report.since,
        report.service,
        report.namespace
    );
    let mut table = output::table([
        "VARIANT",
        "EXPOSURES",
        "CONVERSIONS",
        "RATE",
        "95% CI",
        "VS CONTROL",
        "P-VALUE",
        "VALUE SUM",
        "VALUE MEAN",
    ]);
    for row in &report.variants {
        let dash = || "-".to_owned();
        table.add_row([
            row.variant.clone(),
            row.exposures.to_string(),
            row.conversions.to_string(),
            row.rate.map_or_else(dash, percent),
            row.rate_low
                .zip(row.rate_high)
                .map_or_else(dash, |(l, h)| format!("{}–{}", percent(l), percent(h))),
            match (row.control, row.difference) {
                (true, _) => "control".to_owned(),
                (false, Some(d)) => format!(
                    "{:+.2} pp{}",
                    d * 100.0,
                    row.relative_difference
                        .map_or(String::new(), |r| format!(" ({:+.1}%)", r * 100.0))
                ),
                (false, None) => dash(),
            },
            row.p_value.map_or_else(dash, p_value),
            number(row.value_sum),
            row.value_mean.map_or_else(dash, |m| format!("{m:.2}")),
        ]);
    }
    println!("{table}");
    let why = match (control_given, design.kind) {
        (true, _) => "--control",
        (false, "json") => "a JSON flag's control: units outside its rollout",
        (false, _) => "the flag's defaultVariant",
    };
    println!("control: {} ({why})", report.control);
    let ratio = &report.sample_ratio;
    let split: Vec<String> = ratio
        .weights
        .iter()
        .map(|w| format!("{} {}", w.variant, number(w.weight)))
        .collect();
    match (
        ratio.checked,
        ratio.mismatch,
        ratio.chi_square,
        ratio.p_value,
    ) {
        (false, ..) => println!(
            "sample ratio: not checked: {}",
            ratio.reason.as_deref().unwrap_or("no split")
        ),
        (true, mismatch, Some(chi), Some(p)) => println!(
            "sample ratio: {} against the split {}: χ² = {:.2}, {} df, {}",
            if mismatch { "MISMATCH" } else { "ok" },
            split.join(", "),
            chi,
            ratio.df.unwrap_or(0),
            p_text(p)
        ),
        (true, ..) => println!(
            "sample ratio: MISMATCH against the split {}: exposures of a variant it gives no weight",
            split.join(", ")
        ),
    }
    let definition = &report.definition;
    match (definition.checked, definition.changes.len()) {
        (false, _) => println!(
            "definition: not checked: {}",
            definition.reason.as_deref().unwrap_or("no history")
        ),
        (true, 0) => println!(
            "definition: unchanged since {} ({})",
            report.start,
            report.parameter.as_deref().unwrap_or("its parameter")
        ),
        (true, n) => println!("definition: changed {n} time(s) within the window"),
    }
    for note in &report.notes {
        println!("note: {note}");
    }
    for warning in &report.warnings {
        println!("warning: {warning}");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn design(split: Result<Vec<(String, f64)>, String>) -> Design {
        Design {
            flag: "flow".into(),
            kind: "flagd",
            variants: vec!["classic".into(), "one-page".into()],
            control: Some("classic".into()),
            split,
        }
    }

    fn fifty_fifty() -> Result<Vec<(String, f64)>, String> {
        Ok(vec![("classic".into(), 50.0), ("one-page".into(), 50.0)])
    }

    fn observed(exposures: u64, conversions: u64) -> Observed {
        Observed {
            exposures,
            conversions,
            value_sum: 0.0,
            value_count: 0,
        }
    }

    fn request() -> Request<'static> {
        Request {
            event: "paid",
            since: Duration::from_secs(86_400),
            control: None,
            service: "shop",
            namespace: "ssm-flags",
            json: true,
        }
    }

    fn unchanged() -> DefinitionCheck {
        DefinitionCheck {
            checked: true,
            reason: None,
            changes: Vec::new(),
        }
    }

    fn answer(design: &Design, variants: &[&str], observed: &[Observed]) -> Report {
        let variants: Vec<String> = variants.iter().map(|v| (*v).to_owned()).collect();
        let window = Window::ending(1_764_000_000, Duration::from_secs(86_400)).expect("a day");
        report(
            design,
            Some("/app/flagd/doc".into()),
            &request(),
            window,
            (&variants, observed, "classic"),
            unchanged(),
        )
    }

    #[test]
    fn rows_compare_each_variant_with_the_control() {
        let design = design(fifty_fifty());
        let report = answer(
            &design,
            &["classic", "one-page"],
            &[observed(5000, 250), observed(5000, 300)],
        );
        let (control, one_page) = (&report.variants[0], &report.variants[1]);
        assert!(control.control && control.difference.is_none() && control.p_value.is_none());
        assert_eq!(one_page.rate, Some(0.06));
        let difference = one_page.difference.expect("a difference");
        assert!((difference - 0.01).abs() < 1e-12);
        assert!((one_page.relative_difference.expect("lift") - 0.2).abs() < 1e-12);
        let expected = stats::two_proportion_z(300, 5000, 250, 5000).expect("defined");
        assert_eq!(one_page.p_value, Some(expected.p_value));
        assert_eq!(
            (one_page.rate_low, one_page.rate_high),
            stats::wilson(300, 5000).unzip()
        );
        assert!(report.warnings.is_empty(), "{:?}", report.warnings);
        assert!(report.sample_ratio.checked && !report.sample_ratio.mismatch);
    }

    #[test]
    fn a_skewed_split_is_a_mismatch_and_a_fair_one_is_not() {
        let design = design(fifty_fifty());
        let skewed = answer(
            &design,
            &["classic", "one-page"],
            &[observed(5400, 0), observed(4600, 0)],
        );
        assert!(skewed.sample_ratio.mismatch);
        assert!(skewed.warnings[0].starts_with("sample ratio mismatch: exposures (classic 5400, one-page 4600) do not fit the configured split (classic 50, one-page 50) (χ² = 64.00, p < 0.0001; a mismatch is p < 0.001)"), "{:?}", skewed.warnings);
        let fair = answer(
            &design,
            &["classic", "one-page"],
            &[observed(5030, 0), observed(4970, 0)],
        );
        assert!(!fair.sample_ratio.mismatch && fair.warnings.is_empty());
        // Exposures of a variant outside the split: a mismatch whatever the numbers.
        let stray = answer(
            &design,
            &["classic", "one-page", "old"],
            &[observed(50, 0), observed(50, 0), observed(1, 0)],
        );
        assert!(stray.sample_ratio.mismatch);
        assert_eq!(stray.sample_ratio.p_value, Some(0.0));
        assert!(stray.notes[0].starts_with("old is not a variant of the definition"));
    }

    #[test]
    fn what_cannot_be_checked_says_why() {
        let no_split = answer(
            &design(Err(
                "flow's targeting holds 0 `fractional` operators, not exactly one".into(),
            )),
            &["classic", "one-page"],
            &[observed(10, 1), observed(10, 2)],
        );
        assert!(!no_split.sample_ratio.checked);
        assert!(
            no_split
                .sample_ratio
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("holds 0"))
        );
        let one_sided = answer(
            &design(Ok(vec![
                ("classic".into(), 0.0),
                ("one-page".into(), 100.0),
            ])),
            &["classic", "one-page"],
            &[observed(0, 0), observed(10, 2)],
        );
        assert!(
            one_sided
                .sample_ratio
                .reason
                .as_deref()
                .is_some_and(|r| r.contains("all its weight to one-page"))
        );
        let nothing = answer(
            &design(fifty_fifty()),
            &["classic", "one-page"],
            &[observed(0, 0), observed(0, 0)],
        );
        assert_eq!(
            nothing.sample_ratio.reason.as_deref(),
            Some("no exposures within the window")
        );
        assert!(nothing.notes[0].starts_with("no exposures of flow"));
        assert!(nothing.warnings.is_empty());
        assert!(
            nothing
                .variants
                .iter()
                .all(|r| r.rate.is_none() && r.p_value.is_none())
        );
    }

    #[test]
    fn the_control_comes_first_and_must_be_a_variant() {
        let design = design(fifty_fifty());
        let seen = vec!["old".to_owned(), "one-page".to_owned()];
        let (variants, control) =
            variants_and_control(&design, &seen, Some("one-page")).expect("a variant");
        assert_eq!(variants, ["one-page", "classic", "old"]);
        assert_eq!(control, "one-page");
        let error = variants_and_control(&design, &seen, Some("nope"))
            .expect_err("no such variant")
            .to_string();
        assert!(
            error.contains("has no variant \"nope\" (it has classic, one-page, old)"),
            "{error}"
        );
        let mut no_default = design.clone();
        no_default.control = None;
        let error = variants_and_control(&no_default, &[], None)
            .expect_err("no default")
            .to_string();
        assert!(error.contains("--control"), "{error}");
    }
}
