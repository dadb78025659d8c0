//! [`Tally`]: one scope's exposures and conversions, and the units it has seen.

use std::collections::{BTreeMap, HashMap, HashSet};

use super::MAX_UNITS;

/// Distinct event names one tally accepts in its life: each is a set of custom metrics per
/// flag and variant, so an unbounded set is an unbounded bill.
pub const MAX_EVENTS: usize = 100;
/// The longest event name (CloudWatch allows 1,024 characters in a dimension value).
pub const MAX_EVENT_LEN: usize = 255;

/// Counts ready to be written: exposures per (flag, variant), conversions per
/// (flag, variant, event).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Counts {
    /// Units exposed, by (flag, variant).
    pub exposures: BTreeMap<(String, String), u64>,
    /// Conversions, by (flag, variant, event).
    pub conversions: BTreeMap<(String, String, String), Conversions>,
}

/// The conversions of one (flag, variant, event).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct Conversions {
    /// Units that converted.
    pub count: u64,
    /// Every value tracked with the event (a unit may carry several: two orders).
    pub values: Vec<f64>,
}

impl Counts {
    /// Whether there is nothing to write.
    pub fn is_empty(&self) -> bool {
        self.exposures.is_empty() && self.conversions.is_empty()
    }

    /// Adds `other`'s counts to these.
    pub fn merge(&mut self, other: Counts) {
        for (series, n) in other.exposures {
            *self.exposures.entry(series).or_default() += n;
        }
        for (series, conversions) in other.conversions {
            let into = self.conversions.entry(series).or_default();
            into.count += conversions.count;
            into.values.extend(conversions.values);
        }
    }

    /// Total exposures.
    pub fn total_exposures(&self) -> u64 {
        self.exposures.values().sum()
    }
}

/// A conversion a tracked event was attributed to.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct Attribution {
    /// The experiment flag.
    pub flag: String,
    /// The variant it gave the unit.
    pub variant: String,
    /// Whether this event counted a conversion (false: the unit had already converted on this
    /// event in this scope; only its value was kept).
    pub counted: bool,
}

/// Why an event could not be tracked.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
pub enum TrackError {
    /// The event name is unusable as a CloudWatch dimension.
    #[error("event {name:?}: {problem}")]
    Event {
        /// The name given (cut to 64 characters).
        name: String,
        /// What is wrong with it.
        problem: &'static str,
    },
    /// The context has no targeting key: no unit to attribute the conversion to.
    #[error("the context has no targeting key (user id): a conversion is attributed to a unit")]
    NoTargetingKey,
    /// The value is not a finite number.
    #[error("value {0} is not a finite number")]
    Value(f64),
    /// A new event name past [`MAX_EVENTS`].
    #[error(
        "event {0:?}: this process already tracks {MAX_EVENTS} event names, the most it accepts (each is a set of custom metrics)"
    )]
    TooManyEvents(String),
}

/// Checks an event name: 1 to [`MAX_EVENT_LEN`] printable ASCII characters, not all spaces
/// (CloudWatch's rule for a dimension value).
pub fn validate_event(name: &str) -> Result<(), TrackError> {
    let problem = if name.trim().is_empty() {
        Some("must not be empty")
    } else if name.len() > MAX_EVENT_LEN {
        Some("is longer than 255 characters")
    } else if !name.bytes().all(|b| (0x20..0x7f).contains(&b)) {
        Some("must be printable ASCII (a CloudWatch dimension value)")
    } else {
        None
    };
    match problem {
        Some(problem) => Err(TrackError::Event {
            name: name.chars().take(64).collect(),
            problem,
        }),
        None => Ok(()),
    }
}

/// One unit's variant of one experiment flag, and the events it converted on.
#[derive(Debug)]
struct Assignment {
    flag: Box<str>,
    variant: Box<str>,
    converted: Vec<Box<str>>,
}

/// The exposures and conversions counted in one scope, and the units it has seen (each unit's
/// variants, so a repeated evaluation does not count again and a tracked event finds them).
#[derive(Debug, Default)]
pub struct Tally {
    counts: Counts,
    units: HashMap<Box<str>, Vec<Assignment>>,
    events: HashSet<Box<str>>,
}

impl Tally {
    /// Counts `key`'s exposure to `variant` of `flag`, unless this scope already saw `key`
    /// evaluate `flag` (then nothing changes: the first variant stands). `false`: the tally
    /// holds [`MAX_UNITS`] units and `key` is not one — write the counts and start over.
    pub fn expose(&mut self, flag: &str, key: &str, variant: &str) -> bool {
        let assignment = || Assignment {
            flag: flag.into(),
            variant: variant.into(),
            converted: Vec::new(),
        };
        let full = self.units.len() >= MAX_UNITS;
        match self.units.get_mut(key) {
            Some(assigned) => {
                if assigned.iter().any(|a| &*a.flag == flag) {
                    return true;
                }
                assigned.push(assignment());
            }
            None if full => return false,
            None => {
                self.units.insert(key.into(), vec![assignment()]);
            }
        }
        *self
            .counts
            .exposures
            .entry((flag.to_owned(), variant.to_owned()))
            .or_default() += 1;
        true
    }

    /// Counts `event` for `key`: a conversion for the variant each experiment flag gave `key`
    /// in this scope (once per unit and event), and `value`, if any, as a sample of each.
    pub fn track(
        &mut self,
        event: &str,
        key: &str,
        value: Option<f64>,
    ) -> Result<Vec<Attribution>, TrackError> {
        validate_event(event)?;
        let Some(assigned) = self.units.get_mut(key) else {
            return Ok(Vec::new());
        };
        if !self.events.contains(event) {
            if self.events.len() >= MAX_EVENTS {
                return Err(TrackError::TooManyEvents(event.to_owned()));
            }
            self.events.insert(event.into());
        }
        let mut attributed = Vec::with_capacity(assigned.len());
        for assignment in assigned {
            let counted = !assignment.converted.iter().any(|e| &**e == event);
            if counted {
                assignment.converted.push(event.into());
            }
            let series = self
                .counts
                .conversions
                .entry((
                    assignment.flag.to_string(),
                    assignment.variant.to_string(),
                    event.to_owned(),
                ))
                .or_default();
            series.count += u64::from(counted);
            series.values.extend(value);
            attributed.push(Attribution {
                flag: assignment.flag.to_string(),
                variant: assignment.variant.to_string(),
                counted,
            });
        }
        Ok(attributed)
    }

    /// The counts so far, taken; the units stay (a repeat still does not count).
    pub fn take(&mut self) -> Counts {
        std::mem::take(&mut self.counts)
    }

    /// Forgets the units: the next evaluation of a flag for any key is an exposure again.
    pub fn forget_units(&mut self) {
        self.units.clear();
    }

    /// Units remembered.
    pub fn units(&self) -> usize {
        self.units.len()
    }

    /// The counts so far, not taken.
    pub fn counts(&self) -> &Counts {
        &self.counts
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_unit_counts_once_per_flag_and_keeps_its_first_variant() {
        let mut tally = Tally::default();
        assert!(tally.expose("f", "u", "a"));
        assert!(tally.expose("f", "u", "b"), "already seen: nothing changes");
        assert!(tally.expose("g", "u", "x"));
        assert_eq!(tally.counts().total_exposures(), 2);
        assert_eq!(tally.counts().exposures[&("f".into(), "a".into())], 1);
        assert!(
            !tally
                .counts()
                .exposures
                .contains_key(&("f".into(), "b".into()))
        );
    }

    #[test]
    fn a_conversion_counts_once_per_unit_and_event_and_keeps_every_value() {
        let mut tally = Tally::default();
        tally.expose("f", "u", "a");
        tally.expose("g", "u", "x");
        let first = tally.track("paid", "u", Some(10.0)).expect("valid");
        assert_eq!(first.len(), 2);
        assert!(first.iter().all(|a| a.counted));
        let second = tally.track("paid", "u", Some(5.0)).expect("valid");
        assert!(second.iter().all(|a| !a.counted));
        assert!(
            tally
                .track("paid", "stranger", None)
                .expect("valid")
                .is_empty()
        );
        let series = &tally.counts().conversions[&("f".into(), "a".into(), "paid".into())];
        assert_eq!((series.count, series.values.clone()), (1, vec![10.0, 5.0]));
        let counts = tally.take();
        assert_eq!(counts.conversions.len(), 2);
        assert!(tally.counts().is_empty());
        tally.expose("f", "u", "a");
        assert!(tally.counts().is_empty(), "units survive a take");
        tally.forget_units();
        tally.expose("f", "u", "a");
        assert_eq!(tally.counts().total_exposures(), 1);
    }

    #[test]
    fn a_full_tally_refuses_a_new_unit_and_event_names_are_bounded() {
        let mut tally = Tally::default();
        for unit in 0..MAX_UNITS {
            assert!(tally.expose("f", &unit.to_string(), "a"));
        }
        assert!(!tally.expose("f", "one-more", "a"));
        assert!(tally.expose("g", "0", "a"), "a known unit still counts");
        assert_eq!(tally.counts().total_exposures(), MAX_UNITS as u64 + 1);
        for event in 0..MAX_EVENTS {
            tally
                .track(&format!("e{event}"), "0", None)
                .expect("under the cap");
        }
        assert_eq!(
            tally.track("one-more", "0", None),
            Err(TrackError::TooManyEvents("one-more".into()))
        );
        assert!(
            tally.track("e0", "0", None).is_ok(),
            "a known event still counts"
        );
    }

    #[test]
    fn event_names_are_cloudwatch_dimension_values() {
        assert!(validate_event("checkout-completed").is_ok());
        for bad in ["", "   ", "caf\u{e9}", "a\nb", &"x".repeat(256)] {
            let error = validate_event(bad).expect_err(bad);
            assert!(error.to_string().starts_with("event "), "{error}");
        }
    }
}
