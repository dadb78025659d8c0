//! `ramp`: raises a JSON flag's `rollout_percentage` — or a flagd flag's share of one variant in
//! its only `fractional` — step by step on a schedule, guarded by CloudWatch alarms.
//!
//! - The version the ramp starts from is labelled [`START_LABEL`] in SSM. A ramp interrupted and
//!   run again finds the label, continues from the current percentage, and still rolls back to
//!   that true start; the label is removed when the ramp completes or rolls back.
//! - Before each step and while waiting, the alarms are checked: on `ALARM` the start value is
//!   written back and the command exits 1. `INSUFFICIENT_DATA` follows `--insufficient-data`
//!   (default: hold the next step until the alarm has data).
//! - Before every write (steps and rollback) the flag's version is compared with the last one
//!   this ramp saw: if anyone else changed the flag, the ramp stops without writing.
//! - Raising a percentage only adds users: a user has the flag while their bucket (1–100, from
//!   md5 of the salt and user id) is at most the percentage, so everyone who had it at 10%
//!   still has it at 25%. The ramp never touches the `salt`, which would reshuffle them.

use std::time::{Duration, Instant};

use flags::FlagValue;
use serde::Serialize;
use serde_json::Value;

use crate::alarms::{Guard, Verdict};
use crate::error::{CtlError, Outcome};
use crate::flagd_edit::{self, Target};
use crate::output;
use crate::param::{self, Stored};

/// The SSM label on the version a ramp started from (SSM refuses labels starting with `ssm` or
/// `aws`).
pub const START_LABEL: &str = "flags-ramp-start";

/// What a ramp does.
#[derive(Debug, Clone)]
pub struct Plan {
    /// The percentages to reach, ascending.
    pub steps: Vec<f64>,
    /// How long each step bakes (alarms watched) before the next.
    pub every: Duration,
    /// How often the alarms and the flag's version are checked while waiting.
    pub check_every: Duration,
    /// Forget an earlier interrupted ramp's start and start from the current value.
    pub restart: bool,
    /// JSON report at the end (progress then goes to stderr).
    pub json: bool,
}

/// What a ramp raises.
#[derive(Debug, Clone)]
pub enum Knob {
    /// A JSON flag's `rollout_percentage`.
    Rollout,
    /// A flagd flag's share of `variant` in its only `fractional` (the other buckets rescaled
    /// to the rest), in the parameter (a document, or its own) `target` names.
    Share {
        /// Where the flag is defined.
        target: Target,
        /// The variant whose share rises.
        variant: String,
    },
}

impl Knob {
    /// The current percentage; refuses flags a ramp cannot raise.
    fn current(&self, stored: &Stored) -> Result<f64, CtlError> {
        match self {
            Self::Rollout => rollout_of(stored),
            Self::Share { target, variant } => {
                let flag = flagd_edit::definition(&stored.value, target)?;
                flagd_edit::share(&flag, variant, &target.key)
            }
        }
    }

    /// The percentage a stored value holds.
    fn percentage_of(&self, raw: &str) -> Option<f64> {
        match self {
            Self::Rollout => percentage_of(raw),
            Self::Share { target, variant } => {
                let flag = flagd_edit::definition(raw, target).ok()?;
                flagd_edit::share(&flag, variant, &target.key).ok()
            }
        }
    }

    /// The SSM label on the version this ramp started from: [`START_LABEL`], or for a flagd
    /// flag [`START_LABEL`]`.<flag>` — a document holds several flags, and one flag's ramp must
    /// never take another's start as its own.
    fn label(&self) -> String {
        match self {
            Self::Rollout => START_LABEL.to_owned(),
            Self::Share { target, .. } => {
                // SSM labels: letters, digits, `.`, `-`, `_`; at most 100 characters.
                let key: String = target
                    .key
                    .chars()
                    .map(|c| match c {
                        'a'..='z' | 'A'..='Z' | '0'..='9' | '.' | '-' | '_' => c,
                        _ => '_',
                    })
                    .collect();
                let mut label = format!("{START_LABEL}.{key}");
                label.truncate(100);
                label
            }
        }
    }

    /// What a rollback writes over `current`: the start value, or for a flagd flag the start's
    /// definition of that flag alone (another flag of the document keeps its changes).
    fn restored(&self, current: &str, start: &str) -> Result<String, CtlError> {
        match self {
            Self::Rollout => Ok(start.to_owned()),
            Self::Share { target, .. } => {
                let flag = flagd_edit::definition(start, target)?;
                flagd_edit::replaced(current, target, &flag)
            }
        }
    }

    /// `raw` with the percentage set to `p`, every other byte (or flag) kept.
    fn raised(&self, raw: &str, p: f64) -> Result<String, CtlError> {
        match self {
            Self::Rollout => raised(raw, p).map_err(|e| CtlError::refused(e.to_string())),
            Self::Share { target, variant } => {
                let flag = flagd_edit::definition(raw, target)?;
                let flag = flagd_edit::with_share(&flag, variant, p, &target.key)?;
                flagd_edit::replaced(raw, target, &flag)
            }
        }
    }
}

/// The percentage `knob` reads in `stored` now.
pub fn current(knob: &Knob, stored: &Stored) -> Result<f64, CtlError> {
    knob.current(stored)
}

/// Parses `--steps 5,10,25,50,100`: ascending percentages from 0 to 100.
pub fn parse_steps(raw: &str) -> Result<Vec<f64>, CtlError> {
    let mut steps = Vec::new();
    for item in raw.split(',').map(str::trim).filter(|s| !s.is_empty()) {
        let p: f64 = item
            .trim_end_matches('%')
            .parse()
            .map_err(|_| CtlError::usage(format!("--steps: {item:?} is not a percentage")))?;
        if !(0.0..=100.0).contains(&p) {
            return Err(CtlError::usage(format!("--steps: {item} is outside 0–100")));
        }
        if steps.last().is_some_and(|last| p <= *last) {
            return Err(CtlError::usage(format!(
                "--steps must rise: {item} comes after {}",
                steps.last().copied().unwrap_or_default()
            )));
        }
        steps.push(p);
    }
    if steps.is_empty() {
        return Err(CtlError::usage("--steps: no percentage given"));
    }
    Ok(steps)
}

/// `--step 10 --to 100` from `from`: from+10, from+20, …, up to `to` (reached exactly).
pub fn fixed_steps(from: f64, step: f64, to: f64) -> Result<Vec<f64>, CtlError> {
    if !(step > 0.0 && step <= 100.0) {
        return Err(CtlError::usage(format!(
            "--step {step}: must be above 0 and at most 100"
        )));
    }
    if !(0.0..=100.0).contains(&to) {
        return Err(CtlError::usage(format!("--to {to}: must be within 0–100")));
    }
    let mut steps = Vec::new();
    let mut p = from + step;
    while p < to {
        steps.push(p);
        p += step;
    }
    if from < to {
        steps.push(to);
    }
    Ok(steps)
}

/// One step taken.
#[derive(Debug, Clone, Serialize)]
struct Step {
    percentage: f64,
    version: i64,
}

/// The JSON report of a ramp.
#[derive(Debug, Serialize)]
struct Report {
    parameter: String,
    start_version: i64,
    start_percentage: Option<f64>,
    steps: Vec<Step>,
    outcome: &'static str,
    detail: String,
}

/// A ramp under way.
struct Ramp<'a> {
    ssm: &'a aws_sdk_ssm::Client,
    guard: &'a Guard,
    plan: &'a Plan,
    name: String,
    /// The version this ramp wrote or saw last: any other means someone else wrote.
    expected: i64,
    start_version: i64,
    start_value: String,
    taken: Vec<Step>,
    knob: &'a Knob,
}

/// Runs a ramp of `name`.
pub async fn run(
    ssm: &aws_sdk_ssm::Client,
    guard: &Guard,
    name: &str,
    plan: &Plan,
    knob: &Knob,
) -> Outcome {
    let stored = param::read(ssm, name, "").await?;
    let current = knob.current(&stored)?;
    let (start_version, start_value) = start(ssm, &stored, plan, knob).await?;
    let mut ramp = Ramp {
        ssm,
        guard,
        plan,
        name: name.to_owned(),
        expected: stored.meta.version,
        start_version,
        start_value,
        taken: Vec::new(),
        knob,
    };
    let start_percentage = knob.percentage_of(&ramp.start_value);
    let outcome = ramp.steps(&stored, current).await;
    let (result, label, detail) = match outcome {
        Ok(detail) => (Ok(false), "completed", detail),
        Err(Stop::RolledBack(detail)) => (
            Err(CtlError::Stopped(detail.clone())),
            "rolled_back",
            detail,
        ),
        Err(Stop::Changed(detail)) => (Err(CtlError::Stopped(detail.clone())), "stopped", detail),
        Err(Stop::Failed(error)) => {
            let detail = error.to_string();
            (Err(error), "failed", detail)
        }
    };
    if label == "completed" || label == "rolled_back" {
        // The next ramp starts afresh: this one's start is no longer a rollback target.
        let label = knob.label();
        if let Err(error) = param::unlabel(ssm, name, ramp.start_version, &label).await {
            ramp.say(&format!(
                "warning: could not remove the label {label} from version {}: {error}",
                ramp.start_version
            ));
        }
    }
    if plan.json {
        output::print_json(&Report {
            parameter: name.to_owned(),
            start_version: ramp.start_version,
            start_percentage,
            steps: ramp.taken,
            outcome: label,
            detail,
        });
    } else if label == "completed" {
        println!("{detail}");
    }
    result
}

/// How a ramp ended early.
enum Stop {
    /// An alarm fired: the start value was written back.
    RolledBack(String),
    /// Someone else changed the flag: nothing written.
    Changed(String),
    /// An AWS error.
    Failed(CtlError),
}

impl From<CtlError> for Stop {
    fn from(error: CtlError) -> Self {
        Self::Failed(error)
    }
}

/// The flag's current rollout percentage; refuses flags a ramp cannot raise.
fn rollout_of(stored: &Stored) -> Result<f64, CtlError> {
    let flag = match stored.parsed() {
        Ok(FlagValue::Json(flag)) => flag,
        Ok(other) => {
            return Err(CtlError::refused(format!(
                "{} is a {} flag: a ramp raises a JSON flag's rollout_percentage (create a JSON flag, e.g. {{\"enabled\": true, \"rollout_percentage\": 0, \"salt\": \"…\"}})",
                stored.name,
                output::value_kind(&other)
            )));
        }
        Err(problem) => {
            return Err(CtlError::refused(format!(
                "{} is invalid: {problem}",
                stored.name
            )));
        }
    };
    if !flag.rules().enabled {
        return Err(CtlError::refused(format!(
            "{} has `enabled` false: no percentage would reach anyone; set \"enabled\": true (with the rollout at its start) first",
            stored.name
        )));
    }
    flag.rules().rollout_percentage.ok_or_else(|| {
        CtlError::refused(format!(
            "{} has no rollout_percentage: it is already on for everyone it targets",
            stored.name
        ))
    })
}

fn percentage_of(raw: &str) -> Option<f64> {
    serde_json::from_str::<Value>(raw)
        .ok()?
        .get("rollout_percentage")?
        .as_f64()
}

/// The start of this ramp: the labelled version of an interrupted one, else the current
/// version, labelled now.
async fn start(
    ssm: &aws_sdk_ssm::Client,
    stored: &Stored,
    plan: &Plan,
    knob: &Knob,
) -> Result<(i64, String), CtlError> {
    let history = param::history(ssm, &stored.name).await?;
    let labelled = history
        .iter()
        .find(|v| v.labels.iter().any(|l| *l == knob.label()));
    match labelled {
        Some(version) if !plan.restart => {
            let value = param::read_version(ssm, &stored.name, version.version).await?;
            say(
                plan,
                &format!(
                    "continuing the ramp that started at version {} ({}); a rollback restores that version's value",
                    version.version,
                    knob.percentage_of(&value)
                        .map_or("no rollout".to_owned(), output::percent)
                ),
            );
            Ok((version.version, value))
        }
        _ => {
            param::label(ssm, &stored.name, stored.meta.version, &knob.label()).await?;
            Ok((stored.meta.version, stored.value.clone()))
        }
    }
}

fn say(plan: &Plan, line: &str) {
    if plan.json {
        eprintln!("{line}");
    } else {
        println!("{line}");
    }
}

impl Ramp<'_> {
    fn say(&self, line: &str) {
        say(self.plan, line);
    }

    async fn steps(&mut self, stored: &Stored, current: f64) -> Result<String, Stop> {
        let steps: Vec<f64> = self
            .plan
            .steps
            .iter()
            .copied()
            .filter(|p| *p > current)
            .collect();
        if steps.is_empty() {
            return Ok(format!(
                "{} is already at {}: no step above it",
                self.name,
                output::percent(current)
            ));
        }
        self.say(&format!(
            "ramping {} from {} through {} every {}, guarded by {}",
            self.name,
            output::percent(current),
            steps
                .iter()
                .map(|p| output::percent(*p))
                .collect::<Vec<_>>()
                .join(", "),
            humantime::format_duration(self.plan.every),
            if self.guard.names().is_empty() {
                "no alarm".to_owned()
            } else {
                self.guard.names().join(", ")
            }
        ));
        match self.knob {
            Knob::Rollout => self.say("raising a percentage only adds users: whoever has the flag keeps it (bucket ≤ percentage); the salt is never touched. Interrupt at any time: the flag stays at its step; run the same command to continue."),
            Knob::Share { variant, .. } => self.say(&format!("raising {variant:?}'s share moves users into it from the other buckets (flagd's buckets are ranges in order: its range grows, the others' shrink, to within a point of rounding); the bucketing value is never touched. Interrupt at any time: the flag stays at its step; run the same command to continue.")),
        }
        self.guarded_wait(Duration::ZERO).await?;
        let mut from = current;
        for (i, p) in steps.iter().enumerate() {
            self.check_unchanged().await?;
            // Only the percentage's bytes change: every other field stays as written.
            let value = self
                .knob
                .raised(&stored.value, *p)
                .map_err(|e| Stop::Failed(CtlError::refused(format!("{}: {e}", self.name))))?;
            let written = param::overwrite(self.ssm, stored, &value).await?;
            self.expected = written;
            self.taken.push(Step {
                percentage: *p,
                version: written,
            });
            self.say(&format!(
                "step {}/{}: {} → {} (version {written}): about {} more of users have it",
                i + 1,
                steps.len(),
                output::percent(from),
                output::percent(*p),
                output::percent(p - from)
            ));
            from = *p;
            self.guarded_wait(self.plan.every).await?;
        }
        Ok(format!(
            "ramp of {} complete at {} (version {})",
            self.name,
            output::percent(from),
            self.expected
        ))
    }

    /// Waits `at_least`, checking the alarms and the flag's version every `check_every`; then
    /// waits on while an alarm holds the ramp. An alarm rolls back.
    async fn guarded_wait(&mut self, at_least: Duration) -> Result<(), Stop> {
        let until = Instant::now() + at_least;
        let mut holding: Option<String> = None;
        loop {
            match self.guard.verdict().await? {
                Verdict::Alarm(why) => return Err(self.roll_back(&why).await),
                Verdict::Hold(name) => {
                    if holding.as_deref() != Some(name.as_str()) {
                        self.say(&format!(
                            "holding: alarm {name} has INSUFFICIENT_DATA; the next step waits until it has data (--insufficient-data)"
                        ));
                    }
                    holding = Some(name);
                }
                Verdict::Clear => {
                    holding = None;
                    if Instant::now() >= until {
                        return Ok(());
                    }
                }
            }
            self.check_unchanged().await?;
            let left = until.saturating_duration_since(Instant::now());
            let pause = if left.is_zero() {
                self.plan.check_every
            } else {
                left.min(self.plan.check_every)
            };
            tokio::time::sleep(pause).await;
        }
    }

    /// Stops the ramp if someone else changed the flag since this ramp last saw it.
    async fn check_unchanged(&self) -> Result<(), Stop> {
        let now = param::describe_one(self.ssm, &self.name)
            .await?
            .ok_or_else(|| Stop::Changed(format!("{} was deleted: the ramp stopped", self.name)))?;
        if now.version == self.expected {
            return Ok(());
        }
        Err(Stop::Changed(format!(
            "{} changed under the ramp: version {} (by {}) after this ramp's version {}; the ramp stopped without writing. The start stays labelled {} on version {}: run the ramp again to continue from the current value, or with --restart to start afresh",
            self.name,
            now.version,
            now.last_modified_user.as_deref().unwrap_or("unknown"),
            self.expected,
            self.knob.label(),
            self.start_version
        )))
    }

    /// Writes the start value back (unless someone else changed the flag meanwhile).
    async fn roll_back(&mut self, why: &str) -> Stop {
        if let Err(stop) = self.check_unchanged().await {
            return match stop {
                Stop::Changed(detail) => {
                    Stop::Changed(format!("alarm {why}; but not rolling back: {detail}"))
                }
                other => other,
            };
        }
        if self.taken.is_empty() && self.expected == self.start_version {
            return Stop::RolledBack(format!(
                "alarm {why}: the ramp did not start; {} is unchanged at version {}",
                self.name, self.expected
            ));
        }
        let stored = match param::read(self.ssm, &self.name, "").await {
            Ok(stored) => stored,
            Err(error) => return Stop::Failed(error),
        };
        let restored = match self.knob.restored(&stored.value, &self.start_value) {
            Ok(restored) => restored,
            Err(error) => return Stop::Failed(error),
        };
        match param::overwrite(self.ssm, &stored, &restored).await {
            Ok(version) => {
                self.expected = version;
                let detail = format!(
                    "alarm {why}: rolled {} back to its value at the ramp's start (version {}, {}) as version {version}",
                    self.name,
                    self.start_version,
                    self.knob
                        .percentage_of(&self.start_value)
                        .map_or("no rollout".to_owned(), output::percent)
                );
                self.say(&detail);
                Stop::RolledBack(detail)
            }
            Err(error) => Stop::Failed(CtlError::Stopped(format!(
                "alarm {why}: the rollback of {} FAILED: {error}; restore it by hand: ssm-flags-ctl rollback {} --to-version {}",
                self.name, self.name, self.start_version
            ))),
        }
    }
}

/// `raw` (a JSON flag's text) with `rollout_percentage` set to `p`, every other byte kept.
fn raised(raw: &str, p: f64) -> Result<String, crate::edit::EditError> {
    crate::edit::set_field(raw, "rollout_percentage", &number(p).to_string())
}

/// A percentage as JSON: an integer when it is one (`25`, not `25.0`).
fn number(p: f64) -> Value {
    if p.fract() == 0.0 && (0.0..=100.0).contains(&p) {
        Value::from(p as u64)
    } else {
        Value::from(p)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_must_rise_within_0_to_100() {
        assert_eq!(
            parse_steps("5,10,25,50,100").ok(),
            Some(vec![5.0, 10.0, 25.0, 50.0, 100.0])
        );
        assert_eq!(parse_steps("0.5, 1%, 2").ok(), Some(vec![0.5, 1.0, 2.0]));
        for bad in ["10,5", "5,5", "101", "-1", "x", ""] {
            assert!(parse_steps(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn fixed_steps_reach_the_target_exactly() {
        assert_eq!(
            fixed_steps(0.0, 25.0, 100.0).ok(),
            Some(vec![25.0, 50.0, 75.0, 100.0])
        );
        assert_eq!(
            fixed_steps(5.0, 10.0, 30.0).ok(),
            Some(vec![15.0, 25.0, 30.0])
        );
        assert_eq!(fixed_steps(100.0, 10.0, 100.0).ok(), Some(vec![]));
        assert!(fixed_steps(0.0, 0.0, 100.0).is_err());
    }

    #[test]
    fn a_step_changes_only_the_percentage_bytes() {
        let raw = "{\"id\":123456789012345678901234567890, \"rollout_percentage\" :5 ,\"enabled\":true,\"salt\":\"caf\\u00e9\"}";
        assert_eq!(
            raised(raw, 10.0).as_deref(),
            Ok(
                "{\"id\":123456789012345678901234567890, \"rollout_percentage\" :10 ,\"enabled\":true,\"salt\":\"caf\\u00e9\"}"
            )
        );
    }

    #[test]
    fn percentages_are_written_as_integers_when_whole() {
        assert_eq!(number(25.0).to_string(), "25");
        assert_eq!(number(12.5).to_string(), "12.5");
    }
}
