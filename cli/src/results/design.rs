//! What an experiment was set up to be, read from its flag's definition: its variants, the
//! control the others are compared with, and the split the sample ratio is checked against.

use flags::FlagEntry;
use flags::FlagValue;
use flags::experiment::{MARKER, OFF, ON};

use crate::error::CtlError;
use crate::flagd_edit;
use crate::output;

/// An experiment as its definition sets it up.
#[derive(Debug, Clone, PartialEq)]
pub struct Design {
    /// The flag's name: the `Flag` dimension of its metrics.
    pub flag: String,
    /// `flagd` or `json`.
    pub kind: &'static str,
    /// Its variants, in the order defined (a JSON flag: `off`, `on`).
    pub variants: Vec<String>,
    /// The control the definition implies: a flagd flag's `defaultVariant`; a JSON flag's `off`.
    pub control: Option<String>,
    /// The split: each variant's weight (any scale), or why it cannot be read.
    pub split: Result<Vec<(String, f64)>, String>,
}

impl Design {
    /// The design of `entry`; refused (a usage error naming the flag) unless it is an
    /// experiment whose exposures are counted.
    pub fn of(entry: &FlagEntry) -> Result<Self, CtlError> {
        let name = entry.name();
        if entry.is_secure() {
            return Err(CtlError::usage(format!(
                "{name} is a SecureString flag: its exposures are never counted (its variant names would reach the metrics), so it has no results"
            )));
        }
        let not_marked = |place: &str| {
            CtlError::usage(format!(
                "{name} is not an experiment: its exposures and conversions are counted only when {place} says \"{MARKER}\": true"
            ))
        };
        match entry.value() {
            Ok(FlagValue::Flagd(definition)) => {
                if !definition.is_experiment() {
                    return Err(not_marked("its metadata (or its flag set's)"));
                }
                let document = definition.to_document();
                let split = flagd_edit::split_weights(&document["flags"][name], name)
                    .map(|weights| weights.into_iter().map(|(v, w)| (v, w as f64)).collect());
                Ok(Self {
                    flag: name.to_owned(),
                    kind: "flagd",
                    variants: definition.variants().map(|(v, _)| v.to_owned()).collect(),
                    control: definition.default_variant().map(str::to_owned),
                    split,
                })
            }
            Ok(FlagValue::Json(flag)) => {
                let rules = flag.rules();
                if !rules.experiment {
                    return Err(not_marked("the flag's JSON"));
                }
                let split = match rules.rollout_percentage {
                    // A user is in when their bucket (a whole number, 1–100) is at most the
                    // percentage: the share in is ⌊p⌋%, not p% (28.9 puts in 28 of 100).
                    Some(p) => {
                        let share = p.floor().clamp(0.0, 100.0);
                        Ok(vec![
                            (OFF.to_owned(), 100.0 - share),
                            (ON.to_owned(), share),
                        ])
                    }
                    None => Err(format!(
                        "{name} has no rollout_percentage: no split decides who gets `{ON}`"
                    )),
                };
                Ok(Self {
                    flag: name.to_owned(),
                    kind: "json",
                    variants: vec![OFF.to_owned(), ON.to_owned()],
                    control: Some(OFF.to_owned()),
                    split,
                })
            }
            Ok(other) => Err(CtlError::usage(format!(
                "{name} is a {} flag, not an experiment: an experiment is a JSON flag with a rollout_percentage or a flagd flag, marked \"{MARKER}\": true",
                output::value_kind(other)
            ))),
            Err(problem) => Err(CtlError::usage(format!(
                "{name} is invalid ({problem}): it reads as its default and counts nothing; run `ssm-flags-ctl lint`"
            ))),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use flags::{Bucketing, Format, Parameter, ParameterKind};

    fn entry(value: &str, format: Format) -> FlagEntry {
        let mut assembler = flags::snapshot::assemble::Assembler::new();
        assembler.add(
            0,
            format,
            &Parameter {
                flag: "exp".into(),
                name: "/app/exp".into(),
                kind: ParameterKind::String,
                value: value.into(),
                version: 1,
            },
        );
        let assembly = assembler.finish();
        assembly.entries.into_iter().next().expect("one flag")
    }

    #[test]
    fn a_flagd_experiment_reads_its_variants_default_and_fractional() {
        let flag = r#"{"state": "ENABLED", "metadata": {"experiment": true},
            "variants": {"classic": "c", "one-page": "o", "two-page": "t"}, "defaultVariant": "classic",
            "targeting": {"fractional": [["classic", 50], ["one-page", 25], ["two-page", 25]]}}"#;
        let design = Design::of(&entry(flag, Format::Flagd(Bucketing::V3))).expect("experiment");
        assert_eq!(design.kind, "flagd");
        assert_eq!(design.variants, ["classic", "one-page", "two-page"]);
        assert_eq!(design.control.as_deref(), Some("classic"));
        assert_eq!(
            design.split,
            Ok(vec![
                ("classic".into(), 50.0),
                ("one-page".into(), 25.0),
                ("two-page".into(), 25.0)
            ])
        );
        let set_marked = r#"{"metadata": {"experiment": true}, "flags": {"exp": {"state": "ENABLED",
            "variants": {"a": 1, "b": 2}, "defaultVariant": "a",
            "targeting": {"if": [{"var": "beta"}, "b", {"fractional": [["a"], ["b"]]}]}}}}"#;
        let design =
            Design::of(&entry(set_marked, Format::Flagd(Bucketing::V3))).expect("experiment");
        assert_eq!(design.split, Ok(vec![("a".into(), 1.0), ("b".into(), 1.0)]));
    }

    #[test]
    fn a_json_experiment_is_on_against_off() {
        let design = Design::of(&entry(
            r#"{"enabled": true, "rollout_percentage": 20, "experiment": true}"#,
            Format::Seed,
        ))
        .expect("experiment");
        assert_eq!(design.variants, [OFF, ON]);
        assert_eq!(design.control.as_deref(), Some(OFF));
        assert_eq!(
            design.split,
            Ok(vec![(OFF.into(), 80.0), (ON.into(), 20.0)])
        );
        // Whole buckets: 28.9% lets in the users of buckets 1–28, as the evaluation does.
        let fraction = Design::of(&entry(
            r#"{"enabled": true, "rollout_percentage": 28.9, "experiment": true}"#,
            Format::Seed,
        ))
        .expect("experiment");
        assert_eq!(
            fraction.split,
            Ok(vec![(OFF.into(), 72.0), (ON.into(), 28.0)])
        );
        let share_in = (0..10_000)
            .filter(|i| flags::bucket(&format!("u{i}"), None) as f64 <= 28.9)
            .count();
        assert!((2_600..3_000).contains(&share_in), "{share_in}");
        let everyone = Design::of(&entry(
            r#"{"enabled": true, "experiment": true}"#,
            Format::Seed,
        ))
        .expect("experiment");
        assert!(
            everyone
                .split
                .expect_err("no split")
                .contains("no rollout_percentage")
        );
    }

    #[test]
    fn anything_else_is_refused_naming_the_flag() {
        for (value, format, why) in [
            (
                r#"{"enabled": true, "rollout_percentage": 20}"#,
                Format::Seed,
                "is not an experiment",
            ),
            (
                r#"{"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}"#,
                Format::Flagd(Bucketing::V3),
                "its metadata",
            ),
            ("true", Format::Seed, "is a boolean flag, not an experiment"),
            ("{oops", Format::Seed, "is invalid"),
        ] {
            let error = Design::of(&entry(value, format))
                .expect_err(value)
                .to_string();
            assert!(error.starts_with("exp ") && error.contains(why), "{error}");
        }
    }
}
