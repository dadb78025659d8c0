//! `datetime.fromisoformat` as CPython 3.11+ reads a string (its C implementation, on the
//! string's UTF-8 bytes): `YYYY-MM-DD`, `YYYYMMDD`, ISO week dates (`YYYY-Www[-D]`,
//! `YYYYWww[D]`), then — after any one-byte separator — `HH[:MM[:SS[.ffffff]]]` (or without
//! colons), a `.` or `,` fraction of any length truncated to microseconds, and an optional
//! offset (`Z`, `±HH[:MM[:SS[.ffffff]]]`).

use jiff::civil::{Date, DateTime, ISOWeekDate, Time, Weekday};

/// A parsed string: the wall time, and whether it carried an offset.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Parsed {
    pub(crate) datetime: DateTime,
    pub(crate) has_offset: bool,
}

/// Parses like `datetime.fromisoformat`; `None` where Python raises `ValueError`.
pub(crate) fn parse(text: &str) -> Option<Parsed> {
    if text.chars().count() < 7 {
        return None;
    }
    let s = text.as_bytes();
    let separator = separator_at(s)?;
    let date = parse_date(s, separator)?;
    let (time, has_offset) = if s.len() > separator {
        parse_time(&s[separator + 1..])?
    } else {
        (Time::midnight(), false)
    };
    Some(Parsed {
        datetime: DateTime::from_parts(date, time),
        has_offset,
    })
}

/// The byte at `i`, or NUL past the end (the C code reads a NUL-terminated string).
fn at(s: &[u8], i: usize) -> u8 {
    s.get(i).copied().unwrap_or(0)
}

fn is_digit(b: u8) -> bool {
    b.is_ascii_digit()
}

/// Where the date ends (CPython's `_find_isoformat_datetime_separator`).
fn separator_at(s: &[u8]) -> Option<usize> {
    let len = s.len();
    if len == 7 {
        return Some(7);
    }
    if at(s, 4) == b'-' {
        if at(s, 5) != b'W' {
            return Some(10);
        }
        if len < 8 {
            return None;
        }
        if len > 8 && at(s, 8) == b'-' {
            if len == 9 {
                return None;
            }
            if len > 10 && is_digit(at(s, 10)) {
                return Some(8);
            }
            return Some(10);
        }
        return Some(8);
    }
    if at(s, 4) != b'W' {
        return Some(8);
    }
    let mut idx = 7;
    while idx < len && is_digit(s[idx]) {
        idx += 1;
    }
    if idx < 9 {
        return Some(idx);
    }
    Some(if idx % 2 == 0 { 7 } else { 8 })
}

/// `count` ASCII digits from `*p`, advancing it.
fn digits(s: &[u8], p: &mut usize, count: usize) -> Option<i64> {
    let mut value = 0i64;
    for _ in 0..count {
        let d = at(s, *p).wrapping_sub(b'0');
        if d > 9 {
            return None;
        }
        value = value * 10 + i64::from(d);
        *p += 1;
    }
    Some(value)
}

fn parse_date(s: &[u8], len: usize) -> Option<Date> {
    let mut p = 0;
    let year = digits(s, &mut p, 4)?;
    let dashed = at(s, p) == b'-';
    if dashed {
        p += 1;
    }
    if at(s, p) == b'W' {
        p += 1;
        let week = digits(s, &mut p, 2)?;
        let day = if p < len {
            if dashed {
                if at(s, p) != b'-' {
                    return None;
                }
                p += 1;
            }
            digits(s, &mut p, 1)?
        } else {
            1
        };
        let weekday = Weekday::from_monday_one_offset(i8::try_from(day).ok()?).ok()?;
        let date = ISOWeekDate::new(i16::try_from(year).ok()?, i8::try_from(week).ok()?, weekday)
            .ok()?
            .date();
        return (1..=9999).contains(&date.year()).then_some(date);
    }
    let month = digits(s, &mut p, 2)?;
    if dashed {
        if at(s, p) != b'-' {
            return None;
        }
        p += 1;
    }
    let day = digits(s, &mut p, 2)?;
    if year < 1 {
        return None;
    }
    Date::new(
        i16::try_from(year).ok()?,
        i8::try_from(month).ok()?,
        i8::try_from(day).ok()?,
    )
    .ok()
}

/// `HH[:MM[:SS[.f…]]]` up to `end`: the fields and whether anything follows (CPython's
/// `parse_hh_mm_ss_ff`: `Some(true)` when the text goes on past the fields).
fn hh_mm_ss_ff(s: &[u8], end: usize) -> Option<([i64; 4], bool)> {
    let mut fields = [0i64; 4];
    let mut p = 0;
    let mut colons = true;
    for (i, field) in fields.iter_mut().take(3).enumerate() {
        *field = digits(s, &mut p, 2)?;
        let c = at(s, p);
        p += 1;
        if i == 0 {
            colons = c == b':';
        }
        if p >= end {
            return Some((fields, c != 0));
        } else if colons && c == b':' {
            continue;
        } else if c == b'.' || c == b',' {
            break;
        } else if !colons {
            p -= 1;
        } else {
            return None;
        }
    }
    let remains = end - p;
    let take = remains.min(6);
    let mut micros = digits(s, &mut p, take)?;
    if take < 6 {
        micros *= 10i64.pow(u32::try_from(6 - take).ok()?);
    }
    fields[3] = micros;
    while is_digit(at(s, p)) {
        p += 1;
    }
    Some((fields, at(s, p) != 0))
}

fn parse_time(s: &[u8]) -> Option<(Time, bool)> {
    let end = s
        .iter()
        .position(|&b| matches!(b, b'Z' | b'+' | b'-'))
        .unwrap_or(s.len());
    let (fields, more) = hh_mm_ss_ff(&s[..end], end)?;
    let time = Time::new(
        i8::try_from(fields[0]).ok()?,
        i8::try_from(fields[1]).ok()?,
        i8::try_from(fields[2]).ok()?,
        i32::try_from(fields[3] * 1000).ok()?,
    )
    .ok()?;
    if end == s.len() {
        return (!more).then_some((time, false));
    }
    if s[end] == b'Z' {
        return (end + 1 == s.len()).then_some((time, true));
    }
    let offset = &s[end + 1..];
    let (parts, more) = hh_mm_ss_ff(offset, offset.len())?;
    if more {
        return None;
    }
    // Python's `timezone` takes offsets strictly within a day (fields are not range-checked).
    let micros = (parts[0] * 3600 + parts[1] * 60 + parts[2]) * 1_000_000 + parts[3];
    (micros < 86_400_000_000).then_some((time, true))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn naive(text: &str) -> Option<String> {
        parse(text).map(|p| format!("{}{}", p.datetime, if p.has_offset { "+tz" } else { "" }))
    }

    #[test]
    fn the_forms_python_reads() {
        let cases = [
            ("2026-12-01", Some("2026-12-01T00:00:00")),
            ("20261201", Some("2026-12-01T00:00:00")),
            ("2026-12-01T10:00", Some("2026-12-01T10:00:00")),
            ("2026-12-01 10:00:00", Some("2026-12-01T10:00:00")),
            ("2026-12-01x10", Some("2026-12-01T10:00:00")),
            (
                "2026-12-01T10:00:00.123456789",
                Some("2026-12-01T10:00:00.123456"),
            ),
            ("2026-12-01T10:00:00,5", Some("2026-12-01T10:00:00.5")),
            ("20261201T1000", Some("2026-12-01T10:00:00")),
            ("2026-W49-2T10:00", Some("2026-12-01T10:00:00")),
            ("2026W492", Some("2026-12-01T00:00:00")),
            ("2026-W49", Some("2026-11-30T00:00:00")),
            ("2026-12-01T10:00Z", Some("2026-12-01T10:00:00+tz")),
            ("2026-12-01T10:00+02:00", Some("2026-12-01T10:00:00+tz")),
            ("2026-12-01T24:00", None),
            ("2026-13-01", None),
            ("2026-12-1", None),
            ("2026-1201", None),
            ("2026-12", None),
            ("0000-01-01", None),
            ("2026-12-01T10:00:", None),
            ("2026-12-01T10:00+25:00", None),
            ("2026-12-01é10:00", None),
        ];
        for (text, expected) in cases {
            assert_eq!(naive(text).as_deref(), expected, "{text}");
        }
    }
}
