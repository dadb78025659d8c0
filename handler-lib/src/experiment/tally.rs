//! [`Tally`]: one scope's exposures and conversions, and the units it has seen.

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Mutex, PoisonError};

use super::{MAX_UNITS, dimension_value};

/// Distinct event names one process accepts in its life: each is a set of custom metrics per
/// flag and variant, so an unbounded set is an unbounded bill.
pub const MAX_EVENTS: usize = 100;
/// The longest event name (CloudWatch allows 1,024 characters in a dimension value).
pub const MAX_EVENT_LEN: usize = 255;
/// The most `ConversionValue` samples one (flag, variant, event) keeps per scope; later values
/// are dropped (and said once in the log): a loop tracking values cannot grow memory unbounded.
pub const MAX_VALUES: usize = 10_000;
/// The largest magnitude CloudWatch accepts for a metric value (2^360).
pub const MAX_VALUE: f64 = 2.348_542_582_773_833_2e108;

/// Event names admitted, at most [`MAX_EVENTS`].
struct EventNames(Mutex<Option<HashSet<Box<str>>>>);

impl EventNames {
    /// Admits `event`, or says it is one too many.
    fn admit(&self, event: &str) -> Result<(), TrackError> {
        let mut events = self.0.lock().unwrap_or_else(PoisonError::into_inner);
        let events = events.get_or_insert_with(HashSet::new);
        if events.contains(event) {
            return Ok(());
        }
        if events.len() >= MAX_EVENTS {
            return Err(TrackError::TooManyEvents(event.to_owned()));
        }
        events.insert(event.into());
        Ok(())
    }
}

/// The event names this process has tracked.
static EVENTS: EventNames = EventNames(Mutex::new(None));
/// Whether dropped values were logged already.
static VALUES_DROPPED: AtomicBool = AtomicBool::new(false);

/// Checks a tracked value: a finite number CloudWatch accepts (magnitude at most 2^360).
pub fn validate_value(value: f64) -> Result<(), TrackError> {
    if value.is_finite() && value.abs() <= MAX_VALUE {
        Ok(())
    } else {
        Err(TrackError::Value(value))
    }
}

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
    /// The value is not a finite number CloudWatch accepts.
    #[error(
        "value {0} is not a finite number of magnitude at most 2^360 (what CloudWatch accepts)"
    )]
    Value(f64),
    /// A new event name past [`MAX_EVENTS`].
    #[error(
        "event {0:?}: this process already tracks {MAX_EVENTS} event names, the most it accepts (each is a set of custom metrics)"
    )]
    TooManyEvents(String),
}

/// Checks an event name: 1 to `MAX_EVENT_LEN` printable ASCII characters, not all spaces
/// (CloudWatch's rule for a dimension value, [`dimension_value`]).
pub fn validate_event(name: &str) -> Result<(), TrackError> {
    dimension_value(name, MAX_EVENT_LEN).map_err(|problem| TrackError::Event {
        name: name.chars().take(64).collect(),
        problem,
    })
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
    /// The units the scope forgot last: a conversion still finds its unit there (an exposure
    /// made just before the scope started over).
    previous: HashMap<Box<str>, Vec<Assignment>>,
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
        if let Some(value) = value {
            validate_value(value)?;
        }
        let Some(assigned) = (match self.units.get_mut(key) {
            Some(assigned) => Some(assigned),
            None => self.previous.get_mut(key),
        }) else {
            return Ok(Vec::new());
        };
        EVENTS.admit(event)?;
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
            if let Some(value) = value {
                if series.values.len() < MAX_VALUES {
                    series.values.push(value);
                } else if !VALUES_DROPPED.swap(true, Ordering::Relaxed) {
                    tracing::warn!(
                        flag = %assignment.flag,
                        event,
                        max = MAX_VALUES,
                        "conversion values dropped: a scope keeps at most this many per flag, variant and event"
                    );
                }
            }
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

    /// Puts back counts taken with [`Tally::take`] (merged with any counted since).
    pub fn restore(&mut self, counts: Counts) {
        let since = std::mem::replace(&mut self.counts, counts);
        self.counts.merge(since);
    }

    /// Forgets the units: the next evaluation of a flag for any key is an exposure again. A
    /// conversion still finds the units forgotten last (and no earlier ones).
    pub fn forget_units(&mut self) {
        self.previous = std::mem::take(&mut self.units);
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
        assert_eq!(
            tally.track("paid", "u", None).expect("valid").len(),
            2,
            "the units forgotten last still convert"
        );
        tally.expose("f", "u", "a");
        assert_eq!(tally.counts().total_exposures(), 1);
        tally.forget_units();
        tally.forget_units();
        assert!(tally.track("paid", "u", None).expect("valid").is_empty());
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
        // The process's names are shared by every test: count on a registry of this test's.
        let names = EventNames(Mutex::new(None));
        for event in 0..MAX_EVENTS {
            names.admit(&format!("e{event}")).expect("under the cap");
        }
        assert_eq!(
            names.admit("one-more"),
            Err(TrackError::TooManyEvents("one-more".into()))
        );
        assert!(names.admit("e0").is_ok(), "a known event still counts");
        tally.track("cap-0", "0", None).expect("a valid event");
        assert_eq!(
            tally.track("cap-0", "0", Some(f64::MAX)),
            Err(TrackError::Value(f64::MAX))
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
