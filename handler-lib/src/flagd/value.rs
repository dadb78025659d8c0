//! The values targeting logic computes with, and JsonLogic's coercions between them (the
//! JavaScript rules every flagd evaluator follows: truthiness, loose equality, numbers from
//! strings, strings from numbers).

use std::borrow::Cow;
use std::cmp::Ordering;

use serde_json::{Map, Number, Value};

/// A value during evaluation: borrowed from the flag's literals or the context where it can be,
/// owned only where an operator builds one (`cat`, `merge`, `map`, …).
#[derive(Debug, Clone, PartialEq)]
pub(crate) enum Val<'a> {
    Null,
    Bool(bool),
    Num(f64),
    Str(Cow<'a, str>),
    /// An array or an object, borrowed; or an integer a `f64` cannot hold exactly (past 2^53),
    /// kept whole for bucketing and compared as the nearest `f64`, as JavaScript does.
    Json(&'a Value),
    /// An array an operator built.
    List(Vec<Val<'a>>),
    /// An object an operator built (`$flagd`, a reduce's scope).
    Object(Box<Map<String, Value>>),
}

impl<'a> Val<'a> {
    /// A JSON value, borrowed.
    pub(crate) fn of(value: &'a Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(*b),
            Value::Number(n) if exact(n) => Self::Num(number(n)),
            Value::String(s) => Self::Str(Cow::Borrowed(s)),
            Value::Number(_) | Value::Array(_) | Value::Object(_) => Self::Json(value),
        }
    }

    /// A JSON value, owned.
    pub(crate) fn owned(value: Value) -> Self {
        match value {
            Value::Null => Self::Null,
            Value::Bool(b) => Self::Bool(b),
            Value::Number(n) => Self::Num(number(&n)),
            Value::String(s) => Self::Str(Cow::Owned(s)),
            Value::Array(items) => Self::List(items.into_iter().map(Self::owned).collect()),
            Value::Object(map) => Self::Object(Box::new(map)),
        }
    }

    /// The value as JSON (a number that is not finite becomes `null`, as in `JSON.stringify`).
    pub(crate) fn to_json(&self) -> Value {
        match self {
            Self::Null => Value::Null,
            Self::Bool(b) => Value::Bool(*b),
            Self::Num(n) => json_number(*n),
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

    /// The items, when this is an array.
    pub(crate) fn items(&self) -> Option<Vec<Val<'a>>> {
        match self {
            Self::Json(Value::Array(items)) => Some(items.iter().map(Val::of).collect()),
            Self::List(items) => Some(items.clone()),
            _ => None,
        }
    }

    /// Whether this is an array.
    pub(crate) fn is_array(&self) -> bool {
        matches!(self, Self::Json(Value::Array(_)) | Self::List(_))
    }

    /// One step of a `var` path into this value: an object's field or an array's item.
    pub(crate) fn step(&self, key: &str) -> Option<Val<'a>> {
        match self {
            Self::Json(Value::Object(map)) => map.get(key).map(Val::of),
            Self::Json(Value::Array(items)) => index(key).and_then(|i| items.get(i)).map(Val::of),
            Self::Object(map) => map.get(key).cloned().map(Val::owned),
            Self::List(items) => index(key).and_then(|i| items.get(i)).cloned(),
            _ => None,
        }
    }

    /// JsonLogic's truthiness: JavaScript's, except that an empty array is false.
    pub(crate) fn truthy(&self) -> bool {
        match self {
            Self::Null => false,
            Self::Bool(b) => *b,
            Self::Num(n) => *n != 0.0 && !n.is_nan(),
            Self::Json(Value::Number(_)) => true, // past 2^53: never 0
            Self::Str(s) => !s.is_empty(),
            Self::Json(Value::Array(items)) => !items.is_empty(),
            Self::List(items) => !items.is_empty(),
            Self::Json(_) | Self::Object(_) => true,
        }
    }

    /// JavaScript's `Number(x)`.
    pub(crate) fn to_number(&self) -> f64 {
        match self {
            Self::Null => 0.0,
            Self::Bool(b) => f64::from(u8::from(*b)),
            Self::Num(n) => *n,
            Self::Json(Value::Number(n)) => number(n),
            Self::Str(s) => string_to_number(s),
            Self::Json(Value::Object(_)) | Self::Object(_) => f64::NAN,
            Self::Json(_) | Self::List(_) => string_to_number(&self.to_js_string()),
        }
    }

    /// JavaScript's `String(x)`.
    pub(crate) fn to_js_string(&self) -> Cow<'_, str> {
        match self {
            Self::Null => Cow::Borrowed("null"),
            Self::Bool(true) => Cow::Borrowed("true"),
            Self::Bool(false) => Cow::Borrowed("false"),
            Self::Num(n) => Cow::Owned(number_to_string(*n)),
            Self::Json(Value::Number(n)) => Cow::Owned(number_to_string(number(n))),
            Self::Str(s) => Cow::Borrowed(s),
            Self::Json(Value::Object(_)) | Self::Object(_) => Cow::Borrowed("[object Object]"),
            Self::Json(_) | Self::List(_) => {
                let items = self.items().unwrap_or_default();
                let parts: Vec<String> = items
                    .iter()
                    .map(|item| match item {
                        Self::Null => String::new(),
                        other => other.to_js_string().into_owned(),
                    })
                    .collect();
                Cow::Owned(parts.join(","))
            }
        }
    }

    /// A primitive for comparisons: arrays and objects become their string (`ToPrimitive`).
    fn primitive(&self) -> Val<'_> {
        match self {
            Self::Json(Value::Number(n)) => Val::Num(number(n)),
            Self::Json(_) | Self::List(_) | Self::Object(_) => Val::Str(self.to_js_string()),
            Self::Null => Val::Null,
            Self::Bool(b) => Val::Bool(*b),
            Self::Num(n) => Val::Num(*n),
            Self::Str(s) => Val::Str(Cow::Borrowed(s)),
        }
    }

    /// An integer past 2^53, kept whole.
    fn is_big(&self) -> bool {
        matches!(self, Self::Json(Value::Number(_)))
    }

    fn is_compound(&self) -> bool {
        matches!(
            self,
            Self::Json(Value::Array(_) | Value::Object(_)) | Self::List(_) | Self::Object(_)
        )
    }
}

/// JavaScript's `a == b`.
pub(crate) fn loose_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    use Val::{Bool, Null, Num, Str};
    if !a.is_compound() && !b.is_compound() && (a.is_big() || b.is_big()) {
        return loose_eq(&a.primitive(), &b.primitive());
    }
    match (a, b) {
        (Null, Null) => true,
        (Null, _) | (_, Null) => false,
        (Num(x), Num(y)) => x == y,
        (Str(x), Str(y)) => x == y,
        (Bool(x), Bool(y)) => x == y,
        (Num(x), Str(s)) | (Str(s), Num(x)) => *x == string_to_number(s),
        (Bool(x), other) | (other, Bool(x)) => loose_eq(&Num(f64::from(u8::from(*x))), other),
        // Two arrays or objects are equal only when they are the same one: never, for values
        // read from JSON.
        _ if a.is_compound() && b.is_compound() => false,
        _ if a.is_compound() => loose_eq(&a.primitive(), b),
        _ => loose_eq(a, &b.primitive()),
    }
}

/// JavaScript's `a === b`.
pub(crate) fn strict_eq(a: &Val<'_>, b: &Val<'_>) -> bool {
    if a.is_big() || b.is_big() {
        return match (a.primitive(), b.primitive()) {
            (Val::Num(x), Val::Num(y)) => x == y,
            _ => false,
        };
    }
    match (a, b) {
        (Val::Null, Val::Null) => true,
        (Val::Num(x), Val::Num(y)) => x == y,
        (Val::Str(x), Val::Str(y)) => x == y,
        (Val::Bool(x), Val::Bool(y)) => x == y,
        _ => false,
    }
}

/// JsonLogic's `<` family: two strings compare by code point (as flagd's Go and Python
/// evaluators do; JavaScript's UTF-16 order differs only past U+FFFF), anything else as numbers;
/// `None` when either is `NaN` (every comparison is then false).
pub(crate) fn compare(a: &Val<'_>, b: &Val<'_>) -> Option<Ordering> {
    let (a, b) = (a.primitive(), b.primitive());
    if let (Val::Str(x), Val::Str(y)) = (&a, &b) {
        return Some(x.cmp(y));
    }
    a.to_number().partial_cmp(&b.to_number())
}

/// JavaScript's `parseFloat(String(x))`: the longest leading decimal number, `NaN` if none.
pub(crate) fn parse_float(value: &Val<'_>) -> f64 {
    if let Val::Num(n) = value {
        return *n;
    }
    let text = value.to_js_string();
    let s = text.trim_start_matches(is_js_space);
    let (sign, rest) = match s.as_bytes().first() {
        Some(b'-') => (-1.0, &s[1..]),
        Some(b'+') => (1.0, &s[1..]),
        _ => (1.0, s),
    };
    if rest.starts_with("Infinity") {
        return sign * f64::INFINITY;
    }
    let bytes = rest.as_bytes();
    let mut end = 0;
    let digits = |from: usize| {
        bytes[from..]
            .iter()
            .take_while(|b| b.is_ascii_digit())
            .count()
    };
    let int = digits(0);
    end += int;
    let mut frac = 0;
    if bytes.get(end) == Some(&b'.') {
        frac = digits(end + 1);
        if int + frac > 0 {
            end += 1 + frac;
        }
    }
    if int + frac == 0 {
        return f64::NAN;
    }
    if matches!(bytes.get(end), Some(b'e' | b'E')) {
        let sign_len = usize::from(matches!(bytes.get(end + 1), Some(b'+' | b'-')));
        let exp = digits(end + 1 + sign_len);
        if exp > 0 {
            end += 1 + sign_len + exp;
        }
    }
    rest[..end].parse::<f64>().map_or(f64::NAN, |n| sign * n)
}

/// JavaScript's `Number(string)`: whitespace-trimmed; empty is 0; decimal, `0x`/`0o`/`0b`
/// integers, `Infinity`; anything else `NaN`.
pub(crate) fn string_to_number(s: &str) -> f64 {
    let s = s.trim_matches(is_js_space);
    if s.is_empty() {
        return 0.0;
    }
    for (prefix, radix) in [
        ("0x", 16),
        ("0X", 16),
        ("0o", 8),
        ("0O", 8),
        ("0b", 2),
        ("0B", 2),
    ] {
        if let Some(digits) = s.strip_prefix(prefix) {
            return u128::from_str_radix(digits, radix).map_or(f64::NAN, |n| n as f64);
        }
    }
    let unsigned = s.strip_prefix(['+', '-']).unwrap_or(s);
    if unsigned == "Infinity" {
        return if s.starts_with('-') {
            f64::NEG_INFINITY
        } else {
            f64::INFINITY
        };
    }
    // Rust accepts what JavaScript does not ("inf", "nan", "1_0" is rejected by both): only
    // digits, one dot, an exponent.
    let valid = unsigned
        .bytes()
        .all(|b| b.is_ascii_digit() || matches!(b, b'.' | b'e' | b'E' | b'+' | b'-'))
        && unsigned.bytes().any(|b| b.is_ascii_digit())
        && !unsigned.starts_with(['e', 'E']);
    if !valid {
        return f64::NAN;
    }
    s.parse::<f64>().unwrap_or(f64::NAN)
}

/// JavaScript's whitespace (what `trim` removes): the ASCII and Unicode spaces and line ends.
fn is_js_space(c: char) -> bool {
    c.is_whitespace() || c == '\u{feff}'
}

/// JavaScript's `String(number)`: integers without a fraction, the shortest round-trip digits,
/// exponent notation from 1e21 and below 1e-6.
pub(crate) fn number_to_string(n: f64) -> String {
    if n.is_nan() {
        return "NaN".to_owned();
    }
    if n.is_infinite() {
        return if n > 0.0 { "Infinity" } else { "-Infinity" }.to_owned();
    }
    if n == 0.0 {
        return "0".to_owned();
    }
    // `{:e}` gives the shortest round-trip digits: "d.ddde-7".
    let sci = format!("{:e}", n.abs());
    let (mantissa, exponent) = sci.split_once('e').unwrap_or((&sci, "0"));
    let exponent: i32 = exponent.parse().unwrap_or(0);
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let k = i32::try_from(digits.len()).unwrap_or(i32::MAX);
    let point = exponent + 1; // digits before the decimal point
    let sign = if n < 0.0 { "-" } else { "" };
    let body = if (k..=21).contains(&point) {
        format!("{digits}{}", "0".repeat((point - k) as usize))
    } else if 0 < point && point <= 21 {
        let (int, frac) = digits.split_at(point as usize);
        format!("{int}.{frac}")
    } else if -6 < point && point <= 0 {
        format!("0.{}{digits}", "0".repeat((-point) as usize))
    } else {
        let (first, rest) = digits.split_at(1);
        let dot = if rest.is_empty() { "" } else { "." };
        let e = point - 1;
        let e_sign = if e >= 0 { "+" } else { "-" };
        format!("{first}{dot}{rest}e{e_sign}{}", e.abs())
    };
    format!("{sign}{body}")
}

/// Whether a JSON number is exactly a `f64` (every float, and integers up to 2^53).
fn exact(n: &Number) -> bool {
    const LIMIT: u64 = 1 << 53;
    n.as_u64().is_none_or(|u| u <= LIMIT) && n.as_i64().is_none_or(|i| i.unsigned_abs() <= LIMIT)
}

/// A JSON number as `f64` (integers past 2^53 round, as in JavaScript).
pub(crate) fn number(n: &Number) -> f64 {
    n.as_f64().unwrap_or(f64::NAN)
}

/// A number as JSON: an integer where it is one (so `1` stays `1`), `null` when not finite.
pub(crate) fn json_number(n: f64) -> Value {
    if n.fract() == 0.0 && n.abs() < 9.007_199_254_740_992e15 {
        // Exact: the magnitude is below 2^53.
        Value::Number(Number::from(n as i64))
    } else {
        Number::from_f64(n).map_or(Value::Null, Value::Number)
    }
}

fn index(key: &str) -> Option<usize> {
    key.parse().ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s(text: &str) -> Val<'_> {
        Val::Str(Cow::Borrowed(text))
    }

    #[test]
    fn numbers_print_as_in_javascript() {
        for (n, text) in [
            (1.0, "1"),
            (-0.0, "0"),
            (1.5, "1.5"),
            (0.1 + 0.2, "0.30000000000000004"),
            (1e21, "1e+21"),
            (123456789012345680000.0, "123456789012345680000"),
            (1e-7, "1e-7"),
            (0.000001, "0.000001"),
            (-2.5e-9, "-2.5e-9"),
            (f64::NAN, "NaN"),
        ] {
            assert_eq!(number_to_string(n), text, "{n}");
        }
    }

    #[test]
    fn strings_become_numbers_as_in_javascript() {
        assert_eq!(string_to_number(" 12 "), 12.0);
        assert_eq!(string_to_number(""), 0.0);
        assert_eq!(string_to_number("0x1f"), 31.0);
        assert!(string_to_number("12abc").is_nan());
        assert!(string_to_number("inf").is_nan());
        assert_eq!(parse_float(&s("12abc")), 12.0);
        assert_eq!(parse_float(&s(".5e1x")), 5.0);
        assert!(parse_float(&s("")).is_nan());
    }

    #[test]
    fn loose_equality_coerces_like_javascript() {
        assert!(loose_eq(&Val::Num(1.0), &s("1")));
        assert!(loose_eq(&Val::Bool(true), &s("1")));
        assert!(!loose_eq(&Val::Null, &Val::Num(0.0)));
        assert!(loose_eq(&Val::List(vec![Val::Num(1.0)]), &s("1")));
        assert!(!strict_eq(&Val::Num(1.0), &s("1")));
    }

    #[test]
    fn strings_compare_by_code_point_and_mixed_values_as_numbers() {
        assert_eq!(compare(&s("a"), &s("b")), Some(Ordering::Less));
        assert_eq!(
            compare(&s("\u{ff61}"), &s("\u{1f600}")),
            Some(Ordering::Less)
        );
        assert_eq!(compare(&s("10"), &Val::Num(9.0)), Some(Ordering::Greater));
        assert_eq!(compare(&s("x"), &Val::Num(9.0)), None);
    }
}
