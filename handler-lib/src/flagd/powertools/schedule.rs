//! Powertools' schedule conditions: the time of day, a date-time range and the day of the week,
//! in a time zone resolved as `dateutil.tz.gettz` resolves a name. Everything is worked out at
//! load; an evaluation reads the clock once and compares wall times (no allocation).

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
        None => gettz("UTC").map(Zone::Tz),
        Some(Value::Null) => Ok(Zone::Tz(local())),
        Some(Value::String(name)) => gettz(name).map(Zone::Tz),
        // The validator reads a falsy value as "UTC"; the evaluation then fails.
        Some(Value::Bool(false)) => Ok(Zone::Broken),
        Some(Value::Number(n)) if n.as_f64() == Some(0.0) => Ok(Zone::Broken),
        Some(Value::Array(a)) if a.is_empty() => Ok(Zone::Broken),
        Some(Value::Object(o)) if o.is_empty() => Ok(Zone::Broken),
        Some(_) => Err("`TIMEZONE` must be a string".into()),
    }
}

/// The host's zone (`TZ`, else `/etc/localtime`), as `gettz(None)` and `gettz("")` give it.
fn local() -> TimeZone {
    TimeZone::try_system().unwrap_or(TimeZone::UTC)
}

/// A zone by name, as `dateutil.tz.gettz` finds it: a zone file under the system's zoneinfo
/// directories (a space read as `_`), then `UTC`/`GMT`, then the bundled database, then a POSIX
/// TZ string (`EST5EDT`, `JST-9`; `UTC+3` is three hours *ahead*, dateutil's reading).
/// Absolute paths and `..` are refused: a flag document does not name files.
pub(crate) fn gettz(name: &str) -> Result<TimeZone, String> {
    let invalid = || format!("`TIMEZONE` {name:?} is not a time zone this host's zoneinfo knows");
    if name.is_empty() || name == ":" {
        return Ok(local());
    }
    let name = name.strip_prefix(':').unwrap_or(name);
    if name.starts_with('/') || name.split('/').any(|part| part == "..") {
        return Err(format!(
            "`TIMEZONE` {name:?} names a file: give a zone name (Europe/London)"
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
                return Ok(zone);
            }
            break;
        }
    }
    if matches!(name, "UTC" | "GMT") {
        return Ok(TimeZone::UTC);
    }
    if let Ok(zone) = jiff::tz::TimeZoneDatabase::bundled().get(name)
        && zone.iana_name() == Some(name)
    {
        return Ok(zone);
    }
    if name.bytes().any(|b| b.is_ascii_digit()) {
        return posix(name).ok_or_else(invalid);
    }
    Err(invalid())
}

/// A POSIX TZ string, with dateutil's one twist: `GMT+3` / `UTC+3` (no daylight saving) are
/// three hours ahead of UTC.
fn posix(name: &str) -> Option<TimeZone> {
    let zone = TimeZone::posix(name).ok()?;
    let abbreviation: String = name
        .chars()
        .take_while(|c| c.is_ascii_alphabetic())
        .collect();
    if matches!(abbreviation.as_str(), "GMT" | "UTC") {
        // Only a fixed offset is inverted (dateutil applies its twist to the standard offset).
        let winter = zone.to_offset(Timestamp::UNIX_EPOCH);
        let summer = zone.to_offset(Timestamp::from_second(181 * 86_400).ok()?);
        if winter != summer {
            return None;
        }
        return Some(TimeZone::fixed(
            Offset::from_seconds(-winter.seconds()).ok()?,
        ));
    }
    Some(zone)
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
        let ahead = gettz("UTC+3").expect("a TZ string");
        let now = Timestamp::now();
        assert_eq!(
            ahead.to_offset(now).seconds(),
            3 * 3600,
            "dateutil's reading"
        );
        let behind = gettz("XYZ+3").expect("a POSIX string");
        assert_eq!(behind.to_offset(now).seconds(), -3 * 3600);
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
}
