//! Fuzzes flagd flag definitions: the document parser, the targeting compiler and the evaluator.
//! No input may panic (nor overflow the stack), under either bucketing, for any type asked for.
//!
//! Input: a flag document, then optionally a NUL byte and the evaluation context (JSON cannot
//! hold a raw NUL, so it splits any input cleanly). A context that is a JSON object becomes the
//! context's typed fields (`Context::with_fields`; its `targetingKey` the user); any other
//! UTF-8 text is the user id.
#![no_main]

use flags::flagd::{Bucketing, Reason};
use flags::{Context, FlagEntry, Snapshot, Status, ValueType};
use libfuzzer_sys::fuzz_target;
use serde_json::{Map, Value};

const TYPES: [ValueType; 5] = [
    ValueType::Boolean,
    ValueType::String,
    ValueType::Integer,
    ValueType::Float,
    ValueType::Object,
];

fuzz_target!(|data: &[u8]| {
    let (document, context) = match data.iter().position(|&b| b == 0) {
        Some(at) => (&data[..at], &data[at + 1..]),
        None => (data, &[][..]),
    };
    let Ok(document) = serde_json::from_slice::<Value>(document) else {
        return;
    };
    let fields: Option<Map<String, Value>> = match serde_json::from_slice(context) {
        Ok(Value::Object(map)) => Some(map),
        _ => None,
    };
    let user = if fields.is_none() {
        std::str::from_utf8(context).unwrap_or_default()
    } else {
        ""
    };
    let contexts = {
        let base = Context::user(user);
        let with_fields = fields.as_ref().map(|f| base.with_fields(f));
        [Some(base), with_fields, Some(Context::new())]
    };
    for (bucketing, secure) in [(Bucketing::V3, false), (Bucketing::V2, true)] {
        let entries = match FlagEntry::from_flagd_document("fuzz", 1, secure, &document, bucketing)
        {
            Ok(entries) => entries,
            Err(problem) => {
                assert!(!problem.to_string().is_empty());
                continue;
            }
        };
        let snapshot = Snapshot::new(1, Status::Ok, entries);
        for entry in snapshot.entries() {
            if let Err(error) = entry.value() {
                let _ = error.to_string();
            }
            let flag = snapshot.get(entry.name());
            for context in contexts.iter().flatten() {
                for wanted in TYPES {
                    let resolved = flag.resolve(context, wanted);
                    if let Some(value) = &resolved.value {
                        assert!(
                            wanted.admits(value),
                            "{}: resolved as {wanted:?} to {value}",
                            entry.name()
                        );
                    }
                    assert_eq!(
                        resolved.reason == Reason::Error,
                        resolved.error.is_some(),
                        "{}: reason {:?} with error {:?}",
                        entry.name(),
                        resolved.reason,
                        resolved.error
                    );
                }
                let _ = flag.bool_for(context);
                let _ = flag.string_for(context);
                let _ = flag.i64_for(context);
                let _ = flag.f64_for(context);
                let _ = flag.enabled_for(context);
            }
        }
    }
});
