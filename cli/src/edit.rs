//! A JSON flag's text edited in place: `kill` and `ramp` change one top-level field and keep
//! every other byte as stored — key order, whitespace, escapes, and numbers no `f64` can hold
//! (`123456789012345678901234567890` stays that, never `1.2345678901234568e+29`). The old/new
//! table reads each field's text the same way ([`canonical`]), so it shows numbers as written.
//!
//! The scanner only finds where each top-level value starts and ends; the text has already been
//! parsed as a flag, and anything it cannot follow is an error, never a guess.

use std::ops::Range;

/// Why a text could not be edited as a JSON object.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EditError {
    /// The text is not a JSON object the scanner can follow.
    #[error("not a JSON object: {what} at byte {at}")]
    NotAnObject {
        /// What was expected or found.
        what: &'static str,
        /// Where, in bytes from the start.
        at: usize,
    },
}

/// One top-level field of a JSON object, located in its text.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Field {
    /// The key, unescaped (`"en\u0061bled"` is `enabled`).
    pub key: String,
    /// Just past the key's closing quote.
    pub key_end: usize,
    /// The value's bytes, exactly as written.
    pub value: Range<usize>,
}

/// The top-level fields of the JSON object `text`, in the order written (a key written twice
/// appears twice).
pub fn fields(text: &str) -> Result<Vec<Field>, EditError> {
    Ok(scan(text)?.fields)
}

/// `text` with the top-level field `key` set to `value` (JSON text, e.g. `false` or `25`):
/// only the bytes of that field's value are replaced (every occurrence, if the key is written
/// twice, so no reader can pick the old one). An absent field is appended after the last one,
/// with the same spacing as it; nothing else moves.
pub fn set_field(text: &str, key: &str, value: &str) -> Result<String, EditError> {
    let object = scan(text)?;
    let mut edited = text.to_owned();
    let matching: Vec<&Field> = object.fields.iter().filter(|f| f.key == key).collect();
    if !matching.is_empty() {
        // From the end, so earlier spans stay where they are.
        for field in matching.iter().rev() {
            edited.replace_range(field.value.clone(), value);
        }
        return Ok(edited);
    }
    let quoted = serde_json::to_string(key).unwrap_or_else(|_| format!("\"{key}\""));
    match object.fields.last() {
        Some(last) => {
            // The spacing before the last key (a newline and indent, or one space) and between
            // it and its value (`: ` or `:`), copied so the new field looks like its neighbours.
            // A lone first field usually has nothing before it (`{"a": 1}`): then one space.
            let before_key = match &text[object.before_last_key.clone()] {
                ws if object.fields.len() == 1 && !ws.contains('\n') => " ",
                ws => ws,
            };
            let colon = &text[last.key_end..last.value.start];
            let addition = format!(",{before_key}{quoted}{colon}{value}");
            edited.insert_str(last.value.end, &addition);
        }
        None => edited.insert_str(object.open + 1, &format!("{quoted}: {value}")),
    }
    Ok(edited)
}

/// What the scan of an object found.
struct Object {
    fields: Vec<Field>,
    /// The byte of the opening `{`.
    open: usize,
    /// The whitespace between the last field's preceding `{` or `,` and its key.
    before_last_key: Range<usize>,
}

fn scan(text: &str) -> Result<Object, EditError> {
    let bytes = text.as_bytes();
    let err = |what, at| EditError::NotAnObject { what, at };
    let open = skip_ws(bytes, 0);
    if bytes.get(open) != Some(&b'{') {
        return Err(err("expected `{`", open));
    }
    let mut fields = Vec::new();
    let mut before_last_key = open + 1..open + 1;
    let mut at = open + 1;
    loop {
        let key_start = skip_ws(bytes, at);
        if fields.is_empty() && bytes.get(key_start) == Some(&b'}') {
            at = key_start + 1;
            break;
        }
        if bytes.get(key_start) != Some(&b'"') {
            return Err(err("expected a key", key_start));
        }
        let key_end = string_end(bytes, key_start).ok_or_else(|| err("unclosed key", key_start))?;
        let key: String = serde_json::from_str(&text[key_start..key_end])
            .map_err(|_| err("invalid key", key_start))?;
        let colon = skip_ws(bytes, key_end);
        if bytes.get(colon) != Some(&b':') {
            return Err(err("expected `:`", colon));
        }
        let value_start = skip_ws(bytes, colon + 1);
        let value_end =
            value_end(bytes, value_start).ok_or_else(|| err("bad value", value_start))?;
        before_last_key = at..key_start;
        fields.push(Field {
            key,
            key_end,
            value: value_start..value_end,
        });
        let next = skip_ws(bytes, value_end);
        match bytes.get(next) {
            Some(b',') => at = next + 1,
            Some(b'}') => {
                at = next + 1;
                break;
            }
            _ => return Err(err("expected `,` or `}`", next)),
        }
    }
    let rest = skip_ws(bytes, at);
    if rest != bytes.len() {
        return Err(err("text after the object", rest));
    }
    Ok(Object {
        fields,
        open,
        before_last_key,
    })
}

fn skip_ws(bytes: &[u8], mut at: usize) -> usize {
    while matches!(bytes.get(at), Some(b' ' | b'\t' | b'\n' | b'\r')) {
        at += 1;
    }
    at
}

/// Just past the closing quote of the string opening at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut at = start + 1;
    loop {
        match bytes.get(at)? {
            b'\\' => at += 2,
            b'"' => return Some(at + 1),
            _ => at += 1,
        }
    }
}

/// Just past the value starting at `start`: a string, an object or array (brackets counted,
/// strings skipped), or a number or literal (up to the next delimiter).
fn value_end(bytes: &[u8], start: usize) -> Option<usize> {
    match bytes.get(start)? {
        b'"' => string_end(bytes, start),
        b'{' | b'[' => {
            let mut depth = 0usize;
            let mut at = start;
            loop {
                match bytes.get(at)? {
                    b'"' => {
                        at = string_end(bytes, at)?;
                        continue;
                    }
                    b'{' | b'[' => depth += 1,
                    b'}' | b']' => {
                        depth -= 1;
                        if depth == 0 {
                            return Some(at + 1);
                        }
                    }
                    _ => {}
                }
                at += 1;
            }
        }
        _ => {
            let mut at = start;
            while let Some(b) = bytes.get(at) {
                if matches!(b, b',' | b'}' | b']' | b' ' | b'\t' | b'\n' | b'\r') {
                    break;
                }
                at += 1;
            }
            (at > start).then_some(at)
        }
    }
}

/// One JSON value's text in a canonical form, for showing and comparing a field in the old/new
/// table: object keys sorted, strings re-escaped, no whitespace between tokens — and numbers
/// exactly as written, so two numbers no `f64` tells apart are still two values. Text the scanner
/// cannot follow is returned trimmed.
pub fn canonical(raw: &str) -> String {
    let text = raw.trim_matches(|c: char| matches!(c, ' ' | '\t' | '\n' | '\r'));
    let canonical = match text.as_bytes().first() {
        Some(b'{') => fields(text).ok().map(|fields| {
            // A key written twice reads as its last value, as every JSON reader here takes it.
            let sorted: std::collections::BTreeMap<String, String> = fields
                .into_iter()
                .map(|f| (f.key, text.get(f.value).map(canonical).unwrap_or_default()))
                .collect();
            let inner: Vec<String> = sorted
                .into_iter()
                .map(|(key, value)| format!("{}:{value}", quote(&key)))
                .collect();
            format!("{{{}}}", inner.join(","))
        }),
        Some(b'[') => items(text).ok().map(|items| {
            let inner: Vec<String> = items
                .into_iter()
                .map(|item| text.get(item).map(canonical).unwrap_or_default())
                .collect();
            format!("[{}]", inner.join(","))
        }),
        Some(b'"') => serde_json::from_str::<String>(text).ok().map(|s| quote(&s)),
        _ => None,
    };
    canonical.unwrap_or_else(|| text.to_owned())
}

fn quote(text: &str) -> String {
    serde_json::to_string(text).unwrap_or_else(|_| format!("\"{text}\""))
}

/// Where each element of the JSON array `text` is.
fn items(text: &str) -> Result<Vec<Range<usize>>, EditError> {
    let bytes = text.as_bytes();
    let err = |what, at| EditError::NotAnObject { what, at };
    let open = skip_ws(bytes, 0);
    if bytes.get(open) != Some(&b'[') {
        return Err(err("expected `[`", open));
    }
    let mut items = Vec::new();
    let mut at = open + 1;
    loop {
        let start = skip_ws(bytes, at);
        if items.is_empty() && bytes.get(start) == Some(&b']') {
            at = start + 1;
            break;
        }
        let end = value_end(bytes, start).ok_or_else(|| err("bad value", start))?;
        items.push(start..end);
        let next = skip_ws(bytes, end);
        match bytes.get(next) {
            Some(b',') => at = next + 1,
            Some(b']') => {
                at = next + 1;
                break;
            }
            _ => return Err(err("expected `,` or `]`", next)),
        }
    }
    match skip_ws(bytes, at) == bytes.len() {
        true => Ok(items),
        false => Err(err("text after the array", at)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A 30-digit integer, keys in no order, odd whitespace, unicode escapes in a key and a
    /// value, a nested `enabled` that is not the flag's.
    const ODD: &str = "{ \"zeta\" :123456789012345678901234567890,\"en\\u0061bled\":\ttrue ,\n  \"name\": \"caf\\u00e9 \u{2615}\",\"rollout_percentage\" : 5.0e0, \"nested\": {\"enabled\": true, \"s\": \"}\\\"{\"}, \"ids\":[ 1 ,2 ]\n}\n";

    #[test]
    fn kill_replaces_only_the_value_bytes_of_enabled() {
        let edited = set_field(ODD, "enabled", "false").expect("edit");
        let expected = ODD.replacen("\ttrue ,", "\tfalse ,", 1);
        assert_ne!(expected, ODD, "the expectation itself changes something");
        assert_eq!(edited, expected);
        let value: serde_json::Value = serde_json::from_str(&edited).expect("still JSON");
        assert_eq!(value["enabled"], false);
        assert_eq!(value["nested"]["enabled"], true, "only the top level");
    }

    #[test]
    fn ramp_replaces_only_the_percentage() {
        let edited = set_field(ODD, "rollout_percentage", "25").expect("edit");
        assert_eq!(edited, ODD.replacen(": 5.0e0,", ": 25,", 1));
        assert!(edited.contains("123456789012345678901234567890"));
    }

    #[test]
    fn an_absent_field_is_appended_like_its_neighbours() {
        assert_eq!(
            set_field("{\"a\": 1}", "enabled", "false").as_deref(),
            Ok("{\"a\": 1, \"enabled\": false}")
        );
        assert_eq!(
            set_field("{\n  \"a\":1\n}", "enabled", "false").as_deref(),
            Ok("{\n  \"a\":1,\n  \"enabled\":false\n}")
        );
        assert_eq!(
            set_field(" { } ", "enabled", "false").as_deref(),
            Ok(" {\"enabled\": false } ")
        );
        let edited = set_field(ODD, "salt", "\"s\"").expect("edit");
        assert_eq!(edited, ODD.replacen("2 ]\n}", "2 ], \"salt\":\"s\"\n}", 1));
    }

    #[test]
    fn a_key_written_twice_is_set_both_times() {
        assert_eq!(
            set_field(
                r#"{"enabled":true,"x":1,"enabled":true}"#,
                "enabled",
                "false"
            )
            .as_deref(),
            Ok(r#"{"enabled":false,"x":1,"enabled":false}"#)
        );
    }

    #[test]
    fn fields_read_keys_unescaped_and_values_as_written() {
        let found: Vec<(String, &str)> = fields(ODD)
            .expect("fields")
            .into_iter()
            .map(|f| (f.key, &ODD[f.value]))
            .collect();
        let keys: Vec<&str> = found.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            [
                "zeta",
                "enabled",
                "name",
                "rollout_percentage",
                "nested",
                "ids"
            ]
        );
        assert_eq!(found[0].1, "123456789012345678901234567890");
        assert_eq!(found[2].1, "\"caf\\u00e9 \u{2615}\"");
        assert_eq!(canonical(found[5].1), "[1,2]");
        assert_eq!(canonical(found[4].1), "{\"enabled\":true,\"s\":\"}\\\"{\"}");
    }

    #[test]
    fn the_canonical_form_sorts_keys_and_keeps_numbers_as_written() {
        assert_eq!(
            canonical(
                " {\"b\" : [ 123456789012345678901234567890, 1.50 ], \"a\":\"caf\\u00e9\", \"a\": {\"y\":1 , \"x\":[ ]}} "
            ),
            "{\"a\":{\"x\":[],\"y\":1},\"b\":[123456789012345678901234567890,1.50]}"
        );
        assert_eq!(canonical("\"caf\\u00e9\""), "\"café\"");
        assert_eq!(canonical(" {oops "), "{oops");
    }

    #[test]
    fn what_is_not_an_object_is_an_error() {
        for bad in [
            "",
            "[1]",
            "true",
            "{\"a\" 1}",
            "{\"a\": 1",
            "{\"a\": 1} x",
            "{\"a\": }",
            "{,}",
        ] {
            assert!(set_field(bad, "enabled", "false").is_err(), "{bad:?}");
        }
    }
}
