//! Powertools' schedule conditions: the time of day, a date-time range and the day of the week,
//! in a time zone resolved as `dateutil.tz.gettz` resolves a name. Everything is worked out at
//! load; an evaluation reads the clock once and compares wall times (no allocation).

use std::collections::HashMap;
use std::path::Path;

use jiff::Timestamp;
use jiff::civil::{DateTime, Weekday};
use jiff::tz::{Offset, TimeZone};

/// Where `dateutil` looks for zone files, in order.
const TZPATHS: [&str; 4] = [
    "/usr/share/zoneinfo",
    "/usr/lib/zoneinfo",
    "/usr/share/lib/zoneinfo",
    "/etc/zoneinfo",
];

/// The most a zone file may weigh (the largest in the database is a few KiB).
const MAX_ZONE_FILE: u64 = 1 << 20;

/// A condition's time zone, as its evaluation uses it.
#[derive(Debug, Clone)]
pub(crate) enum Zone {
    /// A zone resolved from its name.
    Tz(TimeZone),
    /// Python could not build one at evaluation (a `TIMEZONE` that is falsy but not a string
    /// nor `null`): the condition never holds.
    Broken,
}

impl PartialEq for Zone {
    fn eq(&self, other: &Self) -> bool {
        match (self, other) {
            (Self::Tz(a), Self::Tz(b)) => a.iana_name() == b.iana_name(),
            (Self::Broken, Self::Broken) => true,
            _ => false,
        }
    }
}

impl Zone {
    /// The wall time now, to the microsecond (Python's `datetime.now(tz)`); `None`: broken.
    #[inline]
    pub(crate) fn now(&self, now: Timestamp) -> Option<DateTime> {
        match self {
            Self::Tz(zone) => {
                let wall = zone.to_datetime(now);
                let micros = wall.subsec_nanosecond() / 1000 * 1000;
                wall.with().subsec_nanosecond(micros).build().ok()
            }
            Self::Broken => None,
        }
    }
}

/// The zone of a condition value's `TIMEZONE` (`None`: absent), or why Powertools' validator
/// rejects it.
pub(crate) fn zone_of(timezone: Option<&serde_json::Value>) -> Result<Zone, String> {
    use serde_json::Value;
    match timezone {
        None => gettz("UTC"),
        Some(Value::Null) => Ok(Zone::Tz(local())),
        Some(Value::String(name)) => gettz(name),
        // The validator reads a falsy value as "UTC"; `gettz` then reads `TZ` for `0` and
        // `false` (the host's zone when set), and raises on anything else.
        Some(Value::Bool(false)) => Ok(falsy_zone()),
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => Ok(falsy_zone()),
        Some(Value::Array(a)) if a.is_empty() => Ok(Zone::Broken),
        Some(Value::Object(o)) if o.is_empty() => Ok(Zone::Broken),
        Some(_) => Err("`TIMEZONE` must be a string".into()),
    }
}

/// `gettz(0)`: the host's zone when `TZ` is set, else an error at every evaluation.
fn falsy_zone() -> Zone {
    match std::env::var_os("TZ") {
        Some(_) => Zone::Tz(local()),
        None => Zone::Broken,
    }
}

/// The host's zone (`TZ`, else `/etc/localtime`), as `gettz(None)` and `gettz("")` give it.
fn local() -> TimeZone {
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

/// A zone by name, as `dateutil.tz.gettz` finds it: a zone file under the system's zoneinfo
/// directories (a space read as `_`), then `UTC`/`GMT`, then the bundled database, then — for a
/// name holding a digit — a TZ string as dateutil's `tzstr` reads it (`JST-9`; `UTC+3` is three
/// hours *ahead*, dateutil's reading). Absolute paths and `..` are refused: a flag document does
/// not name files. A TZ string with daylight-saving rules (`EST5EDT,M3.2.0,M11.1.0`, which is
/// no zone file) is refused: dateutil applies its own default rules there; name the zone.
pub(crate) fn gettz(name: &str) -> Result<Zone, String> {
    // Resolved once per name for the life of the process (a refresh recompiles every
    // document); bounded, as names come from documents.
    static ZONES: std::sync::LazyLock<std::sync::Mutex<HashMap<String, Result<Zone, String>>>> =
        std::sync::LazyLock::new(Default::default);
    const MOST: usize = 1024;
    if let Ok(zones) = ZONES.lock()
        && let Some(found) = zones.get(name)
    {
        return found.clone();
    }
    let found = resolve(name);
    if let Ok(mut zones) = ZONES.lock() {
        if zones.len() >= MOST {
            zones.clear();
        }
        zones.insert(name.to_owned(), found.clone());
    }
    found
}

/// [`gettz`], uncached.
fn resolve(name: &str) -> Result<Zone, String> {
    let invalid = || format!("`TIMEZONE` {name:?} is not a time zone this host's zoneinfo knows");
    if name.is_empty() || name == ":" {
        return Ok(Zone::Tz(local()));
    }
    let name = name.strip_prefix(':').unwrap_or(name);
    if name.starts_with('/') || name.split('/').any(|part| part == "..") {
        return Err(format!(
            "`TIMEZONE` {name:?} names a file: give a zone name (Europe/London)"
        ));
    }
    // A leap-second zone counts time as no Unix clock does (and its files are read apart by
    // dateutil and by jiff): refused, as a zone no handler means.
    if name.starts_with("right/") {
        return Err(format!(
            "`TIMEZONE` {name:?} is a leap-second zone: give the zone's name without `right/`"
        ));
    }
    for dir in TZPATHS {
        for candidate in [name.to_owned(), name.replace(' ', "_")] {
            let path = Path::new(dir).join(&candidate);
            let Ok(meta) = std::fs::metadata(&path) else {
                continue;
            };
            if !meta.is_file() || meta.len() > MAX_ZONE_FILE {
                continue;
            }
            if let Ok(bytes) = std::fs::read(&path)
                && let Ok(zone) = TimeZone::tzif(name, &bytes)
            {
                return Ok(Zone::Tz(zone));
            }
            break;
        }
    }
    if matches!(name, "UTC" | "GMT") {
        return Ok(Zone::Tz(TimeZone::UTC));
    }
    if let Ok(zone) = jiff::tz::TimeZoneDatabase::bundled().get(name)
        && zone.iana_name() == Some(name)
    {
        return Ok(Zone::Tz(zone));
    }
    if !name.bytes().any(|b| b.is_ascii_digit()) {
        return Err(invalid());
    }
    match tz_string(name) {
        Some(TzString::Fixed(seconds)) => Ok(
            // Python's `timezone` refuses a day or more: every evaluation raises.
            match i32::try_from(seconds)
                .ok()
                .filter(|s| s.abs() < 86_400)
                .and_then(|s| Offset::from_seconds(s).ok())
            {
                Some(offset) => Zone::Tz(TimeZone::fixed(offset)),
                None => Zone::Broken,
            },
        ),
        Some(TzString::Daylight) => Err(format!(
            "`TIMEZONE` {name:?} is a TZ string with daylight-saving rules: name the zone (America/New_York) instead"
        )),
        None => Err(invalid()),
    }
}

/// What dateutil's `tzstr` reads a TZ string as.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum TzString {
    /// A standard abbreviation and offset alone: seconds east of UTC.
    Fixed(i64),
    /// A daylight-saving part follows (not supported here).
    Daylight,
}

/// dateutil's tokens of a TZ string: runs of ASCII letters, runs of ASCII digits, each of
/// `,:.`, and whatever lies between (`+`, `-`, …).
fn tz_tokens(text: &str) -> Vec<&str> {
    let mut tokens = Vec::new();
    let bytes = text.as_bytes();
    let (mut at, mut other) = (0, 0);
    while at < bytes.len() {
        let b = bytes[at];
        let end = if b.is_ascii_alphabetic() {
            at + bytes[at..]
                .iter()
                .take_while(|c| c.is_ascii_alphabetic())
                .count()
        } else if b.is_ascii_digit() {
            at + bytes[at..]
                .iter()
                .take_while(|c| c.is_ascii_digit())
                .count()
        } else if matches!(b, b',' | b':' | b'.') {
            at + 1
        } else {
            at += 1;
            continue;
        };
        if other < at {
            tokens.push(&text[other..at]);
        }
        tokens.push(&text[at..end]);
        at = end;
        other = end;
    }
    if other < bytes.len() {
        tokens.push(&text[other..]);
    }
    tokens
}

/// A TZ string as dateutil's `_tzparser` reads its standard part: an abbreviation (tokens
/// holding none of `0-9:,-+`), then an optional offset (`+`/`-`, then `H`, `HH`, `HHMM` or
/// `HH:MM`; POSIX's sign, west positive), inverted again for `GMT`/`UTC` (dateutil's twist).
fn tz_string(text: &str) -> Option<TzString> {
    let tokens = tz_tokens(text);
    let plain = |t: &str| !t.bytes().any(|b| b"0123456789:,-+".contains(&b));
    let abbreviation_end = tokens.iter().take_while(|t| plain(t)).count();
    if abbreviation_end == 0 {
        return None;
    }
    let abbreviation: String = tokens[..abbreviation_end].concat();
    let mut at = abbreviation_end;
    let mut offset = 0i64;
    if let Some(first) = tokens.get(at)
        && (matches!(*first, "+" | "-") || first.as_bytes()[0].is_ascii_digit())
    {
        let sign = match *first {
            "+" => {
                at += 1;
                -1
            }
            "-" => {
                at += 1;
                1
            }
            _ => -1,
        };
        let digits = *tokens.get(at)?;
        // Python's integers do not overflow; a value this large is refused (it could never be
        // an offset Python's `timezone` takes).
        let number = |t: &str| t.parse::<i64>().ok().filter(|n| *n < 1_000_000);
        offset = if digits.len() == 4 {
            number(&digits[..2])? * 3600 + number(&digits[2..])? * 60
        } else if tokens.get(at + 1) == Some(&":") {
            let minutes = number(tokens.get(at + 2)?)?;
            at += 2;
            number(digits)? * 3600 + minutes * 60
        } else if digits.len() <= 2 {
            number(digits)? * 3600
        } else {
            return None;
        } * sign;
        at += 1;
    }
    if at < tokens.len() {
        return Some(TzString::Daylight);
    }
    if matches!(abbreviation.as_str(), "GMT" | "UTC") {
        offset = -offset;
    }
    Some(TzString::Fixed(offset))
}

/// `SCHEDULE_BETWEEN_TIME_RANGE`: minutes since midnight, `end < start` crossing midnight. A
/// bound covers its whole minute (Python replaces the hour and minute of now).
pub(crate) fn in_time_range(now: DateTime, start: u16, end: u16) -> bool {
    let minute = u16::try_from(i32::from(now.hour()) * 60 + i32::from(now.minute())).unwrap_or(0);
    if end < start {
        start <= minute || minute <= end
    } else {
        start <= minute && minute <= end
    }
}

/// The day names Powertools knows, as `strftime("%A").upper()` writes them (a C locale).
pub(crate) const DAYS: [(&str, Weekday); 7] = [
    ("MONDAY", Weekday::Monday),
    ("TUESDAY", Weekday::Tuesday),
    ("WEDNESDAY", Weekday::Wednesday),
    ("THURSDAY", Weekday::Thursday),
    ("FRIDAY", Weekday::Friday),
    ("SATURDAY", Weekday::Saturday),
    ("SUNDAY", Weekday::Sunday),
];

/// The bit of a weekday in a set of days.
pub(crate) fn day_bit(day: Weekday) -> u8 {
    1 << day.to_monday_zero_offset()
}

/// `HH:MM` as Powertools' pattern takes it (`(?:2[0-3]|[01]\d):[0-5]\d`, where Python's `\d` is
/// any Unicode decimal digit and `int()` reads it): minutes since midnight.
pub(crate) fn hh_mm(text: &str) -> Option<u16> {
    let chars: Vec<char> = text.chars().collect();
    let [h1, h2, ':', m1, m2] = chars.as_slice() else {
        return None;
    };
    let digit = |c: &char| crate::flagd::value::decimal(*c);
    let (h2, m2) = (digit(h2)?, digit(m2)?);
    let hour = match h1 {
        '2' if h2 <= 3 => 20 + h2,
        '0' | '1' => (*h1 as u8 - b'0') * 10 + h2,
        _ => return None,
    };
    let tens = match m1 {
        '0'..='5' => *m1 as u8 - b'0',
        _ => return None,
    };
    Some(u16::from(hour) * 60 + u16::from(tens * 10 + m2))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_resolve_as_dateutil_resolves_them() {
        assert!(gettz("Europe/London").is_ok());
        assert!(gettz("America/New York").is_ok(), "a space reads as _");
        assert!(gettz("europe/london").is_err(), "case matters, as on Linux");
        assert!(gettz("Mars/Olympus").is_err());
        assert!(gettz("/etc/localtime").is_err());
        assert!(gettz("../zoneinfo/UTC").is_err());
        let offset = |name: &str| match gettz(name) {
            Ok(Zone::Tz(zone)) => Some(zone.to_offset(Timestamp::now()).seconds()),
            _ => None,
        };
        assert_eq!(offset("UTC+3"), Some(3 * 3600), "dateutil's reading");
        assert_eq!(offset("XYZ+3"), Some(-3 * 3600), "POSIX's");
        assert_eq!(offset("UTC-03:30"), Some(-(3 * 3600 + 1800)));
        assert_eq!(offset("A1"), Some(-3600));
        assert_eq!(
            gettz("EST+25"),
            Ok(Zone::Broken),
            "a day or more raises in Python"
        );
        assert!(
            gettz("EST5EDT,M3.2.0,M11.1.0").is_err(),
            "daylight-saving rules"
        );
        assert!(gettz("<+03>-3").is_err());
    }

    #[test]
    fn hh_mm_is_exact_and_takes_any_decimal_digit() {
        assert_eq!(hh_mm("00:00"), Some(0));
        assert_eq!(hh_mm("23:59"), Some(23 * 60 + 59));
        assert_eq!(hh_mm("0\u{661}:0\u{662}"), Some(62), "Arabic-Indic digits");
        for bad in ["24:00", "7:00", "12:60", "12:5", " 12:00", "12:00 "] {
            assert_eq!(hh_mm(bad), None, "{bad}");
        }
    }

    #[test]
    fn time_ranges_cross_midnight_by_minutes() {
        let at = |h: i8, m: i8| DateTime::constant(2026, 12, 7, h, m, 30, 0);
        assert!(in_time_range(at(23, 45), 23 * 60 + 30, 23 * 60));
        assert!(!in_time_range(at(23, 15), 23 * 60 + 30, 23 * 60));
        assert!(
            in_time_range(at(10, 0), 9 * 60, 10 * 60),
            "the end minute holds"
        );
        assert!(!in_time_range(at(10, 1), 9 * 60, 10 * 60));
    }

    /// Every name of this host's zoneinfo, and variants (case, spaces, TZ strings), resolve as
    /// `dateutil.tz.gettz` resolves them: the same names accepted, the same UTC offsets at five
    /// instants (1970, 2026 winter and summer, 2030, now). `tests/powertools_zones.py` is the
    /// reference, run on the venv's dateutil.
    #[test]
    fn zones_agree_with_dateutil() {
        let output = std::process::Command::new(testkit::process::python())
            .arg(concat!(
                env!("CARGO_MANIFEST_DIR"),
                "/tests/powertools_zones.py"
            ))
            .output()
            .expect("the reference runs");
        assert!(
            output.status.success(),
            "{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let reference: serde_json::Value = serde_json::from_slice(&output.stdout).expect("JSON");
        let stamps: Vec<i64> = reference["stamps"]
            .as_array()
            .expect("stamps")
            .iter()
            .filter_map(serde_json::Value::as_i64)
            .collect();
        let zones = reference["zones"].as_object().expect("zones");
        let mut differences = Vec::new();
        for (name, expected) in zones {
            let zone = match gettz(name) {
                Ok(Zone::Tz(zone)) => Some(zone),
                Ok(Zone::Broken) => {
                    if expected != "error" {
                        differences.push(format!("{name:?}: dateutil {expected}, ours broken"));
                    }
                    continue;
                }
                Err(_) => None,
            };
            let ours = zone.map(|zone| {
                stamps
                    .iter()
                    .map(|&t| {
                        Timestamp::from_second(t)
                            .map(|t| i64::from(zone.to_offset(t).seconds()))
                            .unwrap_or(i64::MIN)
                    })
                    .collect::<Vec<_>>()
            });
            let agrees = match (expected, &ours) {
                (serde_json::Value::Null, None) => true,
                // Accepted by dateutil's validation, but its evaluation raises: the condition
                // never holds there; a TZ string with a daylight-saving part is refused here
                // (the README's documented difference).
                (serde_json::Value::String(_), None) => true,
                (serde_json::Value::Array(_), None)
                    if tz_string(name) == Some(TzString::Daylight)
                        || name.starts_with("right/") =>
                {
                    true
                }
                (serde_json::Value::Array(offsets), Some(ours)) => {
                    offsets
                        .iter()
                        .map(serde_json::Value::as_i64)
                        .collect::<Vec<_>>()
                        == ours.iter().map(|o| Some(*o)).collect::<Vec<_>>()
                }
                _ => false,
            };
            if !agrees {
                differences.push(format!("{name:?}: dateutil {expected}, ours {ours:?}"));
            }
        }
        assert!(zones.len() > 500, "{} names", zones.len());
        assert!(
            differences.is_empty(),
            "{} of {} names differ:\n{}",
            differences.len(),
            zones.len(),
            differences.join("\n")
        );
    }
}
