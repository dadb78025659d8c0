//! Python's operators over JSON values, as Powertools' conditions apply them (`a == b`, `a < b`,
//! `a in b`, `a.startswith(b)`, `a % b`): a boolean is the integer 0 or 1, an integer and a
//! float compare exactly, strings order by code point, lists compare item by item, `in` a
//! string is a substring test, `in` an object tests its keys, and `%` is floor modulo. Where
//! Python raises (`1 < "a"`, `1 in 5`, `[1] in {}`), the result is [`TypeError`]: Powertools
//! catches every exception and the condition does not hold.

use std::cmp::Ordering;

use serde_json::{Map, Value};

use crate::flagd::Val;

/// Python raised: the condition does not hold.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct TypeError;

/// A JSON value as Python sees it.
#[derive(Debug, Clone, Copy)]
pub(crate) enum Py<'a> {
    None,
    Int(i128),
    Float(f64),
    Str(&'a str),
    List(&'a [Value]),
    Dict(&'a Map<String, Value>),
}

impl<'a> Py<'a> {
    /// A JSON value (a boolean is its integer: Python's `bool` is an `int`).
    pub(crate) fn of(value: &'a Value) -> Self {
        match value {
            Value::Null => Self::None,
            Value::Bool(b) => Self::Int(i128::from(*b)),
            Value::Number(n) => match (n.as_i64(), n.as_u64()) {
                (Some(i), _) => Self::Int(i128::from(i)),
                (None, Some(u)) => Self::Int(i128::from(u)),
                _ => Self::Float(n.as_f64().unwrap_or(f64::NAN)),
            },
            Value::String(s) => Self::Str(s),
            Value::Array(items) => Self::List(items),
            Value::Object(map) => Self::Dict(map),
        }
    }

    /// A value the context holds.
    pub(crate) fn of_val(value: &'a Val<'_>) -> Self {
        match value {
            Val::Null => Self::None,
            Val::Bool(b) => Self::Int(i128::from(*b)),
            Val::Int(i) => Self::Int(*i),
            Val::Float(f) => Self::Float(*f),
            Val::Str(s) => Self::Str(s),
            Val::Json(v) => Self::of(v),
            // Operators build these; a context read never does.
            Val::List(_) | Val::Object(_) => Self::None,
        }
    }
}

/// `a == b`.
pub(crate) fn eq(a: Py<'_>, b: Py<'_>) -> bool {
    match (a, b) {
        (Py::None, Py::None) => true,
        (Py::Str(a), Py::Str(b)) => a == b,
        (Py::List(a), Py::List(b)) => {
            a.len() == b.len() && a.iter().zip(b).all(|(x, y)| eq(Py::of(x), Py::of(y)))
        }
        (Py::Dict(a), Py::Dict(b)) => {
            a.len() == b.len()
                && a.iter()
                    .all(|(k, x)| b.get(k).is_some_and(|y| eq(Py::of(x), Py::of(y))))
        }
        (a, b) => number_cmp(a, b) == Some(Ordering::Equal),
    }
}

/// The order of two numbers (booleans included), exact across integers and floats; `None`
/// when either is not a number (or is NaN).
fn number_cmp(a: Py<'_>, b: Py<'_>) -> Option<Ordering> {
    match (a, b) {
        (Py::Int(a), Py::Int(b)) => Some(a.cmp(&b)),
        (Py::Float(a), Py::Float(b)) => a.partial_cmp(&b),
        (Py::Int(i), Py::Float(f)) => int_float_cmp(i, f),
        (Py::Float(f), Py::Int(i)) => int_float_cmp(i, f).map(Ordering::reverse),
        _ => None,
    }
}

/// An integer against a float, exactly (rounding the integer is monotonic: when the rounded
/// value differs from the float, the order is the same; when it is equal the float is integral).
fn int_float_cmp(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    match (i as f64).partial_cmp(&f)? {
        Ordering::Equal => Some(i.cmp(&(f as i128))),
        other => Some(other),
    }
}

/// A comparison operator.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cmp {
    Lt,
    Le,
    Gt,
    Ge,
}

impl Cmp {
    fn holds(self, order: Ordering) -> bool {
        match self {
            Self::Lt => order == Ordering::Less,
            Self::Le => order != Ordering::Greater,
            Self::Gt => order == Ordering::Greater,
            Self::Ge => order != Ordering::Less,
        }
    }
}

/// `a < b` (and `<=`, `>`, `>=`): numbers, strings, and lists item by item; anything else
/// raises.
pub(crate) fn compare(a: Py<'_>, op: Cmp, b: Py<'_>) -> Result<bool, TypeError> {
    match (a, b) {
        (Py::Str(a), Py::Str(b)) => Ok(op.holds(a.cmp(b))),
        (Py::List(a), Py::List(b)) => {
            match a.iter().zip(b).find(|(x, y)| !eq(Py::of(x), Py::of(y))) {
                Some((x, y)) => compare(Py::of(x), op, Py::of(y)),
                None => Ok(op.holds(a.len().cmp(&b.len()))),
            }
        }
        _ => match number_cmp(a, b) {
            Some(order) => Ok(op.holds(order)),
            // NaN never orders; a pair that is not two numbers raises.
            None if is_number(a) && is_number(b) => Ok(false),
            None => Err(TypeError),
        },
    }
}

fn is_number(v: Py<'_>) -> bool {
    matches!(v, Py::Int(_) | Py::Float(_))
}

/// `item in container`.
pub(crate) fn contains(container: Py<'_>, item: Py<'_>) -> Result<bool, TypeError> {
    match container {
        Py::Str(text) => match item {
            Py::Str(part) => Ok(text.contains(part)),
            _ => Err(TypeError),
        },
        Py::List(items) => Ok(items.iter().any(|x| eq(Py::of(x), item))),
        Py::Dict(map) => match item {
            // Keys are strings: only a string equals one. An unhashable item raises.
            Py::Str(key) => Ok(map.contains_key(key)),
            Py::List(_) | Py::Dict(_) => Err(TypeError),
            _ => Ok(false),
        },
        _ => Err(TypeError),
    }
}

/// `a.startswith(b)` (`starts`) or `a.endswith(b)`.
pub(crate) fn affix(a: Py<'_>, b: Py<'_>, starts: bool) -> Result<bool, TypeError> {
    match (a, b) {
        (Py::Str(a), Py::Str(b)) => Ok(if starts {
            a.starts_with(b)
        } else {
            a.ends_with(b)
        }),
        _ => Err(TypeError),
    }
}

/// `start <= a % base <= end`, with Python's floor modulo (the sign of the divisor).
pub(crate) fn modulo_between(
    a: Py<'_>,
    base: i128,
    start: i128,
    end: i128,
) -> Result<bool, TypeError> {
    let rest = match a {
        Py::Int(i) => Py::Int(i.checked_rem_euclid(base).ok_or(TypeError)?),
        Py::Float(f) => {
            let b = base as f64;
            let m = f % b;
            Py::Float(if m == 0.0 {
                0.0f64.copysign(b)
            } else if (b < 0.0) != (m < 0.0) {
                m + b
            } else {
                m
            })
        }
        _ => return Err(TypeError),
    };
    Ok(compare(Py::Int(start), Cmp::Le, rest)? && compare(rest, Cmp::Le, Py::Int(end))?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn py(v: &Value) -> Py<'_> {
        Py::of(v)
    }

    #[test]
    fn equality_and_order_follow_python() {
        let (t, one, one_f, big, big_f) = (
            json!(true),
            json!(1),
            json!(1.0),
            json!(9_007_199_254_740_993_i64),
            json!(9_007_199_254_740_992.0),
        );
        assert!(eq(py(&t), py(&one)) && eq(py(&one), py(&one_f)));
        assert!(!eq(py(&big), py(&big_f)), "exact, as Python");
        assert_eq!(compare(py(&big), Cmp::Gt, py(&big_f)), Ok(true));
        assert!(!eq(py(&json!("1")), py(&one)));
        assert!(eq(py(&json!([1, [true]])), py(&json!([1.0, [1]]))));
        assert!(eq(py(&json!({"a": 1})), py(&json!({"a": true}))));
        assert_eq!(
            compare(py(&json!("b")), Cmp::Gt, py(&json!("ab"))),
            Ok(true)
        );
        assert_eq!(
            compare(py(&json!([1, 2])), Cmp::Lt, py(&json!([1, 3]))),
            Ok(true)
        );
        assert_eq!(
            compare(py(&json!([1])), Cmp::Le, py(&json!([1, 0]))),
            Ok(true)
        );
        assert_eq!(
            compare(py(&json!([1, "a"])), Cmp::Lt, py(&json!([1, 2]))),
            Err(TypeError)
        );
        assert_eq!(compare(py(&json!("a")), Cmp::Lt, py(&one)), Err(TypeError));
        assert_eq!(
            compare(py(&json!(null)), Cmp::Le, py(&json!(null))),
            Err(TypeError)
        );
        assert_eq!(
            compare(py(&json!({})), Cmp::Le, py(&json!({}))),
            Err(TypeError)
        );
    }

    #[test]
    fn membership_follows_python() {
        assert_eq!(contains(py(&json!("premium")), py(&json!("mi"))), Ok(true));
        assert_eq!(contains(py(&json!("abc")), py(&json!(""))), Ok(true));
        assert_eq!(contains(py(&json!("abc")), py(&json!(1))), Err(TypeError));
        assert_eq!(contains(py(&json!([1, "a"])), py(&json!(true))), Ok(true));
        assert_eq!(contains(py(&json!({"a": 1})), py(&json!("a"))), Ok(true));
        assert_eq!(contains(py(&json!({"1": 1})), py(&json!(1))), Ok(false));
        assert_eq!(
            contains(py(&json!({"a": 1})), py(&json!(["a"]))),
            Err(TypeError)
        );
        assert_eq!(contains(py(&json!(5)), py(&json!(5))), Err(TypeError));
        assert_eq!(affix(py(&json!("abc")), py(&json!("ab")), true), Ok(true));
        assert_eq!(
            affix(py(&json!(["abc"])), py(&json!("ab")), true),
            Err(TypeError)
        );
    }

    #[test]
    fn modulo_is_floor_modulo() {
        assert_eq!(modulo_between(py(&json!(-1)), 3, 2, 2), Ok(true));
        assert_eq!(modulo_between(py(&json!(-1.5)), 3, 1, 2), Ok(true));
        assert_eq!(modulo_between(py(&json!(true)), 3, 1, 1), Ok(true));
        assert_eq!(
            modulo_between(py(&json!(-1e-20)), 3, 0, 2),
            Ok(false),
            "3.0, as Python"
        );
        assert_eq!(modulo_between(py(&json!("5")), 3, 0, 2), Err(TypeError));
    }
}
