//! The values targeting logic computes with, and JsonLogic's coercions between them.
//!
//! flagd's evaluators disagree on JsonLogic's edges (truthiness, loose equality, numbers from
//! strings); these are the OpenFeature Python provider's (flagd-core, on panzi-json-logic), which
//! `tests/flagd_differential.rs` pins over generated contexts: integers and floats stay
//! distinct, a boolean counts as a number, `"1" == 1`, `0 == null`, strings order by code point.

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// A value during evaluation: borrowed from the flag's literals or the context where it can be,
/// owned only where an operator builds one (`cat`, `merge`, `map`, …).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
    Null,
    Bool(bool),
    /// An integer (JSON wrote no fraction); integers past `i128` are floats.
    Int(i128),
    Float(f64),
    Str(Cow<'a, str>),
    /// An array or an object, borrowed.
    Json(&'a Value),
    /// An array an operator built.
    List(Vec<Val<'a>>),
    /// An object an operator built (`$flagd`, a reduce's scope).
    Object(Box<Map<String, Value>>),
}

/// A number: what `to_number` gives.
#[derive(Debug, Clone, Copy, PartialEq)]
pub(crate) enum Num {
    Int(i128),
    Float(f64),
}

impl Num {
    pub(crate) fn as_f64(self) -> f64 {
        match self {
            Self::Int(i) => i as f64,
            Self::Float(f) => f,
        }
    }

    /// Numeric order (`None` with NaN).
    pub(crate) fn cmp(self, other: Num) -> Option<Ordering> {
        match (self, other) {
            (Self::Int(a), Self::Int(b)) => Some(a.cmp(&b)),
            (a, b) => a.as_f64().partial_cmp(&b.as_f64()),
        }
    }

    pub(crate) fn val<'a>(self) -> Val<'a> {
        match self {
            Self::Int(i) => Val::Int(i),
            Self::Float(f) => Val::Float(f),
        }
    }
}

fn number_val<'a>(n: &Number) -> Val<'a> {
    if let Some(i) = n.as_i64() {
        Val::Int(i128::from(i))
    } else if let Some(u) = n.as_u64() {
        Val::Int(i128::from(u))
    } else {
        Val::Float(n.as_f64().unwrap_or(f64::NAN))
    }
}

impl<'a> Val<'a> {
    /// A JSON value, borrowed.
    #[inline]
    pub(crate) fn of(value: &'a Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) => number_val(n),
            Value::String(s) => Self::Str(Cow::Borrowed(s)),
            Value::Array(_) | Value::Object(_) => Self::Json(value),
        }
    }

    /// A JSON value, owned.
    pub(crate) fn owned(value: Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(b),
            Value::Number(n) => number_val(&n),
            Value::String(s) => Self::Str(Cow::Owned(s)),
            Value::Array(items) => Self::List(items.into_iter().map(Self::owned).collect()),
            Value::Object(map) => Self::Object(Box::new(map)),
        }
    }

    /// The value as JSON (a float that is not finite becomes `null`).
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Int(i) => i64::try_from(*i)
                .map(Value::from)
                .or_else(|_| u64::try_from(*i).map(Value::from))
                .unwrap_or_else(|_| float_json(*i as f64)),
            Self::Float(f) => float_json(*f),
            Self::Str(s) => Value::String(s.as_ref().to_owned()),
            Self::Json(value) => (*value).clone(),
            Self::List(items) => Value::Array(items.iter().map(Val::to_json).collect()),
            Self::Object(map) => Value::Object((**map).clone()),
        }
    }

    /// Whether this is `null`.
    pub(crate) fn is_null(&self) -> bool {
        matches!(self, Self::Null)
    }

    /// The string, when this is one.
    pub(crate) fn as_str(&self) -> Option<&str> {
        match self {
            Self::Str(s) => Some(s),
            _ => None,
        }
    }

    /// Whether this is an array.
    pub(crate) fn is_array(&self) -> bool {
        matches!(self, Self::Json(Value::Array(_)) | Self::List(_))
    }

    /// Whether this is an object.
    fn is_object(&self) -> bool {
        matches!(self, Self::Json(Value::Object(_)) | Self::Object(_))
    }

    /// Whether this counts as a number (a boolean does).
    pub(crate) fn is_number(&self) -> bool {
        matches!(self, Self::Bool(_) | Self::Int(_) | Self::Float(_))
    }

    /// The number of items, when this is an array.
    pub(crate) fn len(&self) -> Option<usize> {
        match self {
            Self::Json(Value::Array(items)) => Some(items.len()),
            Self::List(items) => Some(items.len()),
            _ => None,
        }
    }

    /// Item `i`, when this is an array that long (borrowed where it can be).
    pub(crate) fn item(&self, i: usize) -> Option<Val<'a>> {
        match self {
            Self::Json(Value::Array(items)) => items.get(i).map(Val::of),
            Self::List(items) => items.get(i).cloned(),
            _ => None,
        }
    }

    /// The items, when this is an array.
    pub(crate) fn items(&self) -> Option<Vec<Val<'a>>> {
        self.len()
            .map(|n| (0..n).filter_map(|i| self.item(i)).collect())
    }

    /// One step of a `var` path: an object's field, an array's item or a string's character by
    /// a canonical index, an array's or string's `length`.
    #[inline(always)]
    pub(crate) fn step(&self, key: &str) -> Option<Val<'a>> {
        match self {
            // The usual step, in place: a value returned through memory stalls its reader.
            Self::Json(Value::Object(map)) => map.get(key).map(Val::of),
            _ => self.step_rare(key),
        }
    }

    #[inline(never)]
    fn step_rare(&self, key: &str) -> Option<Val<'a>> {
        match self {
            Self::Json(Value::Object(map)) => map.get(key).map(Val::of),
            Self::Object(map) => map.get(key).cloned().map(Val::owned),
            Self::Json(Value::Array(_)) | Self::List(_) => match key {
                "length" => self.len().map(|n| Val::Int(n as i128)),
                _ => index(key).and_then(|i| self.item(i)),
            },
            Self::Str(text) => match key {
                "length" => Some(Val::Int(text.chars().count() as i128)),
                _ => index(key)
                    .and_then(|i| text.chars().nth(i))
                    .map(|c| Val::Str(Cow::Owned(c.to_string()))),
            },
            _ => None,
        }
    }

    /// JsonLogic's truthiness: `null`, `false`, 0, NaN, `""` and `[]` are false; every object
    /// (even `{}`) is true.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Self::Null => false,
            Self::Bool(b) => *b,
            Self::Int(i) => *i != 0,
            Self::Float(f) => *f != 0.0 && !f.is_nan(),
            Self::Str(s) => !s.is_empty(),
            Self::Json(Value::Array(items)) => !items.is_empty(),
            Self::List(items) => !items.is_empty(),
            Self::Json(_) | Self::Object(_) => true,
        }
    }

    /// A number: booleans, integers and floats as they are; `null` 0; a string as Python's
    /// `float()` reads it (NaN if it does not; `inf` spellings are NaN); `[]` 0, `[x]` x; any
    /// other array or object NaN.
    pub(crate) fn to_number(&self) -> Num {
        match self {
            Self::Null => Num::Int(0),
            Self::Bool(b) => Num::Int(i128::from(*b)),
            Self::Int(i) => Num::Int(*i),
            Self::Float(f) => Num::Float(*f),
            Self::Str(s) => Num::Float(string_to_number(s)),
            Self::Json(Value::Array(_)) | Self::List(_) => match self.len() {
                Some(0) => Num::Int(0),
                Some(1) => self.item(0).map_or(Num::Float(f64::NAN), |x| x.to_number()),
                _ => Num::Float(f64::NAN),
            },
            Self::Json(_) | Self::Object(_) => Num::Float(f64::NAN),
        }
    }

    /// A string: a float printed with 15 significant digits, a boolean `True`/`False`, `null`,
    /// an array's items joined with `,`, an object `[object Object]`.
    pub(crate) fn to_text(&self) -> Cow<'_, str> {
        match self {
            Self::Null => Cow::Borrowed("null"),
            Self::Bool(true) => Cow::Borrowed("True"),
            Self::Bool(false) => Cow::Borrowed("False"),
            Self::Int(i) => Cow::Owned(i.to_string()),
            Self::Float(f) => Cow::Owned(format_g15(*f)),
            Self::Str(s) => Cow::Borrowed(s),
            Self::Json(Value::Object(_)) | Self::Object(_) => Cow::Borrowed("[object Object]"),
            Self::Json(_) | Self::List(_) => {
                let parts: Vec<String> = self
                    .items()
                    .unwrap_or_default()
                    .iter()
                    .map(|item| item.to_text().into_owned())
                    .collect();
                Cow::Owned(parts.join(","))
            }
        }
    }

    /// The value as Python's `str()` writes it: how a targeting result that is not a string
    /// names a variant (`2`, `2.0`, `1e+16`, `['a', 1]`).
    pub(crate) fn python_str(&self) -> String {
        match self {
            Self::Null => "None".to_owned(),
            Self::Bool(true) => "True".to_owned(),
            Self::Bool(false) => "False".to_owned(),
            Self::Int(i) => i.to_string(),
            Self::Float(f) => python_repr(*f),
            Self::Str(s) => s.to_string(),
            other => python_literal(&other.to_json()),
        }
    }
}

/// `a == b`, as flagd's Python evaluator has it: values of one type compare as they are (two
/// arrays or objects only when they are the same value of the context); a number (a boolean
/// too) against anything compares with that thing as a number; `null` against anything else is
/// false; a string against an array or object compares with its text.
pub(crate) fn loose_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    use Val::{Bool, Float, Int, Null, Str};
    match (a, b) {
        (Null, Null) => true,
        (Bool(x), Bool(y)) => x == y,
        (Int(x), Int(y)) => x == y,
        (Float(x), Float(y)) => x == y,
        (Str(x), Str(y)) => x == y,
        (Val::Json(x), Val::Json(y)) if a.is_array() == b.is_array() => std::ptr::eq(*x, *y),
        _ if a.is_array() && b.is_array() || a.is_object() && b.is_object() => false,
        _ if a.is_number() => a.to_number().cmp(b.to_number()) == Some(Ordering::Equal),
        _ if b.is_number() => a.to_number().cmp(b.to_number()) == Some(Ordering::Equal),
        (Null, _) | (_, Null) => false,
        (Str(s), other) | (other, Str(s)) => **s == *other.to_text(),
        _ => false,
    }
}

/// `a === b`: Python's `==` — numbers (booleans too) by value, strings, `null`, and arrays and
/// objects item by item.
pub(crate) fn strict_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Str(x), Val::Str(y)) => x == y,
        _ if a.is_number() && b.is_number() => {
            a.to_number().cmp(b.to_number()) == Some(Ordering::Equal)
        }
        _ if a.is_array() && b.is_array() => {
            let (Some(x), Some(y)) = (a.items(), b.items()) else {
                return false;
            };
            x.len() == y.len() && x.iter().zip(&y).all(|(x, y)| strict_eq(x, y))
        }
        _ if a.is_object() && b.is_object() => {
            let (x, y) = (a.to_json(), b.to_json());
            match (x, y) {
                (Value::Object(x), Value::Object(y)) => {
                    x.len() == y.len()
                        && x.iter().all(|(k, v)| {
                            y.get(k).is_some_and(|w| {
                                strict_eq(&Val::owned(v.clone()), &Val::owned(w.clone()))
                            })
                        })
                }
                _ => false,
            }
        }
        _ => false,
    }
}

/// The order of `<`, `<=`, `>`, `>=`: as numbers when either side is one, else as strings (by
/// code point) when either side is one, else both as numbers; `None` when NaN is involved.
pub(crate) fn compare(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    if a.is_number() || b.is_number() {
        return a.to_number().cmp(b.to_number());
    }
    if let Val::Str(x) = a {
        return Some((**x).cmp(&*b.to_text()));
    }
    if let Val::Str(y) = b {
        return Some((*a.to_text()).cmp(&**y));
    }
    a.to_number().cmp(b.to_number())
}

/// Python's `float(s)`: surrounding whitespace, `_` between digits, `nan`, `infinity`; NaN when
/// it does not read (and for `inf`, `+inf`, `-inf`, which JsonLogic refuses).
pub(crate) fn string_to_number(s: &str) -> f64 {
    let trimmed = s.trim();
    if matches!(
        trimmed.to_ascii_lowercase().as_str(),
        "inf" | "+inf" | "-inf"
    ) {
        return f64::NAN;
    }
    let mut clean = String::with_capacity(trimmed.len());
    let mut previous: Option<char> = None;
    let mut chars = trimmed.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '_' {
            let next_digit = chars.peek().is_some_and(char::is_ascii_digit);
            if !(previous.is_some_and(|p| p.is_ascii_digit()) && next_digit) {
                return f64::NAN;
            }
        } else if let Some(digit) = decimal_digit(c) {
            // A decimal digit of another script reads as its value, as in Python.
            clean.push(char::from(b'0' + digit));
        } else {
            clean.push(c);
        }
        previous = Some(c);
    }
    clean.parse::<f64>().unwrap_or(f64::NAN)
}

/// The first code point (digit zero) of each run of ten Unicode decimal digits (category Nd)
/// past ASCII, Unicode 14 (what Python's `float()` reads as digits).
const DIGIT_ZEROS: [u32; 65] = [
    0x660, 0x6F0, 0x7C0, 0x966, 0x9E6, 0xA66, 0xAE6, 0xB66, 0xBE6, 0xC66, 0xCE6, 0xD66, 0xDE6,
    0xE50, 0xED0, 0xF20, 0x1040, 0x1090, 0x17E0, 0x1810, 0x1946, 0x19D0, 0x1A80, 0x1A90, 0x1B50,
    0x1BB0, 0x1C40, 0x1C50, 0xA620, 0xA8D0, 0xA900, 0xA9D0, 0xA9F0, 0xAA50, 0xABF0, 0xFF10,
    0x104A0, 0x10D30, 0x11066, 0x110F0, 0x11136, 0x111D0, 0x112F0, 0x11450, 0x114D0, 0x11650,
    0x116C0, 0x11730, 0x118E0, 0x11950, 0x11C50, 0x11D50, 0x11DA0, 0x16A60, 0x16AC0, 0x16B50,
    0x1D7CE, 0x1D7D8, 0x1D7E2, 0x1D7EC, 0x1D7F6, 0x1E140, 0x1E2F0, 0x1E950, 0x1FBF0,
];

/// The value of a decimal digit of any script (Unicode's `Nd`, as Python's `int()` reads one).
pub(crate) fn decimal(c: char) -> Option<u8> {
    match c {
        '0'..='9' => Some(c as u8 - b'0'),
        _ => decimal_digit(c),
    }
}

/// The value of a decimal digit of a script other than ASCII.
fn decimal_digit(c: char) -> Option<u8> {
    let code = u32::from(c);
    if code < 0x660 {
        return None;
    }
    let at = DIGIT_ZEROS
        .partition_point(|&zero| zero <= code)
        .checked_sub(1)?;
    let offset = code - DIGIT_ZEROS[at];
    u8::try_from(offset).ok().filter(|d| *d < 10)
}

/// A float as `'%.15g'` prints it.
pub(crate) fn format_g15(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    if f == 0.0 {
        return if f.is_sign_negative() { "-0" } else { "0" }.to_owned();
    }
    let sci = format!("{f:.14e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if !(-4..15).contains(&exponent) {
        let mantissa = strip_zeros(mantissa);
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let decimals = (14 - exponent).max(0) as usize;
    strip_zeros(&format!("{f:.decimals$}")).to_owned()
}

fn strip_zeros(text: &str) -> &str {
    if text.contains('.') {
        text.trim_end_matches('0').trim_end_matches('.')
    } else {
        text
    }
}

/// A float as Python's `repr` writes it: the shortest round-trip digits, exponent form from
/// 1e16 and below 1e-4.
pub(crate) fn python_repr(f: f64) -> String {
    if f.is_nan() {
        return "nan".to_owned();
    }
    if f.is_infinite() {
        return if f > 0.0 { "inf" } else { "-inf" }.to_owned();
    }
    let sci = format!("{f:e}");
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    if f != 0.0 && !(-4..16).contains(&exponent) {
        let sign = if exponent < 0 { '-' } else { '+' };
        return format!("{mantissa}e{sign}{:02}", exponent.abs());
    }
    let text = format!("{f:?}");
    if text.contains('.') || text.contains('e') {
        text
    } else {
        format!("{text}.0")
    }
}

/// A JSON value as a Python literal (`{'a': 1}`, `['x', True, None]`).
fn python_literal(value: &Value) -> String {
    match value {
        Value::Null => "None".to_owned(),
        Value::Bool(true) => "True".to_owned(),
        Value::Bool(false) => "False".to_owned(),
        Value::Number(n) => number_val(n).python_str(),
        Value::String(s) => {
            let quote = if s.contains('\'') && !s.contains('"') {
                '"'
            } else {
                '\''
            };
            let mut out = String::from(quote);
            for c in s.chars() {
                match c {
                    '\\' => out.push_str("\\\\"),
                    '\n' => out.push_str("\\n"),
                    '\r' => out.push_str("\\r"),
                    '\t' => out.push_str("\\t"),
                    c if c == quote => {
                        out.push('\\');
                        out.push(c);
                    }
                    c if (c as u32) < 0x20 || c as u32 == 0x7f => {
                        out.push_str(&format!("\\x{:02x}", c as u32));
                    }
                    c => out.push(c),
                }
            }
            out.push(quote);
            out
        }
        Value::Array(items) => {
            let items: Vec<String> = items.iter().map(python_literal).collect();
            format!("[{}]", items.join(", "))
        }
        Value::Object(map) => {
            let items: Vec<String> = map
                .iter()
                .map(|(k, v)| {
                    format!(
                        "{}: {}",
                        python_literal(&Value::String(k.clone())),
                        python_literal(v)
                    )
                })
                .collect();
            format!("{{{}}}", items.join(", "))
        }
    }
}

/// A float as JSON: `null` when not finite.
fn float_json(f: f64) -> Value {
    Number::from_f64(f).map_or(Value::Null, Value::Number)
}

/// A canonical non-negative decimal index (`"0"`, `"12"`; not `"01"`).
fn index(key: &str) -> Option<usize> {
    if key.is_empty()
        || !key.bytes().all(|b| b.is_ascii_digit())
        || (key.len() > 1 && key.starts_with('0'))
    {
        return None;
    }
    key.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Val<'_> {
        Val::Str(Cow::Borrowed(text))
    }

    #[test]
    fn floats_print_as_python_does() {
        for (f, g15, repr) in [
            (1.0, "1", "1.0"),
            (100000.0, "100000", "100000.0"),
            (1e15, "1e+15", "1000000000000000.0"),
            (1e16, "1e+16", "1e+16"),
            (0.1 + 0.2, "0.3", "0.30000000000000004"),
            (1e-7, "1e-07", "1e-07"),
            (0.0001, "0.0001", "0.0001"),
            (-0.0, "-0", "-0.0"),
            (123456789.12345679, "123456789.123457", "123456789.12345679"),
            (2.5, "2.5", "2.5"),
        ] {
            assert_eq!(format_g15(f), g15, "{f}");
            assert_eq!(python_repr(f), repr, "{f}");
        }
    }

    #[test]
    fn strings_become_numbers_as_python_float_reads_them() {
        assert_eq!(string_to_number(" 18 "), 18.0);
        assert_eq!(string_to_number("1_8"), 18.0);
        assert_eq!(string_to_number("\u{661}\u{668}"), 18.0);
        assert!(string_to_number("").is_nan());
        assert!(string_to_number("0x12").is_nan());
        assert!(string_to_number("inf").is_nan());
        assert_eq!(string_to_number("-Infinity"), f64::NEG_INFINITY);
        assert!(string_to_number("_1").is_nan());
    }

    #[test]
    fn equality_coerces_as_flagd_python_does() {
        assert!(loose_eq(&Val::Int(1), &s("1")));
        assert!(loose_eq(&Val::Bool(true), &s("1")));
        assert!(loose_eq(&Val::Int(0), &Val::Null));
        assert!(!loose_eq(&s(""), &Val::Null));
        assert!(!loose_eq(&s("true"), &Val::Bool(true)));
        assert!(loose_eq(&Val::List(vec![s("a"), s("b")]), &s("a,b")));
        assert!(!loose_eq(
            &Val::List(vec![Val::Int(1)]),
            &Val::List(vec![Val::Int(1)])
        ));
        assert!(strict_eq(&Val::Int(1), &Val::Bool(true)));
        assert!(strict_eq(&Val::Int(1), &Val::Float(1.0)));
        assert!(!strict_eq(&Val::Int(1), &s("1")));
        assert!(strict_eq(
            &Val::List(vec![Val::Int(1)]),
            &Val::List(vec![Val::Float(1.0)])
        ));
    }

    #[test]
    fn order_is_numeric_when_a_number_is_involved_else_by_code_point() {
        assert_eq!(compare(&s("a"), &s("b")), Some(Ordering::Less));
        assert_eq!(
            compare(&s("\u{ff61}"), &s("\u{1f600}")),
            Some(Ordering::Less)
        );
        assert_eq!(compare(&s("10"), &Val::Int(9)), Some(Ordering::Greater));
        assert_eq!(compare(&Val::Null, &Val::Int(1)), Some(Ordering::Less));
        assert_eq!(compare(&Val::Null, &s("a")), Some(Ordering::Greater));
        assert_eq!(compare(&s("x"), &Val::Int(9)), None);
    }

    #[test]
    fn python_str_names_variants() {
        assert_eq!(Val::Int(2).python_str(), "2");
        assert_eq!(Val::Float(2.0).python_str(), "2.0");
        assert_eq!(
            Val::List(vec![s("a"), Val::Int(1)]).python_str(),
            "['a', 1]"
        );
    }
}
