//! Fuzzes the flag parser, the wire format and evaluation: no input may panic, a valid value
//! must survive its wire round trip unchanged, and evaluations must respect the rules.
#![no_main]

use std::sync::Arc;

use flags::wire::SnapshotDoc;
use flags::{Context, FlagValue, ParameterKind, Reason};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    // The first byte picks the parameter type; the rest is the value as stored in SSM.
    let Some((&selector, rest)) = data.split_first() else {
        return;
    };
    let Ok(raw) = std::str::from_utf8(rest) else {
        return;
    };
    let kind = match selector % 3 {
        0 => ParameterKind::String,
        1 => ParameterKind::StringList,
        _ => ParameterKind::SecureString,
    };
    match FlagValue::parse(kind, raw) {
        Ok(value) => {
            let wire = value.to_json();
            let back = FlagValue::from_json(wire.clone())
                .unwrap_or_else(|p| panic!("wire form of a valid value rejected: {p}: {wire}"));
            assert_eq!(back.to_json(), wire, "wire round trip changed the value");
            if let FlagValue::Json(flag) = &value {
                let rules = flag.rules();
                let attributes = [("plan", raw)];
                for user in ["", "alice", "user-123", raw] {
                    for region in ["us-east-1", raw] {
                        let context = Context::user(user)
                            .with_region(region)
                            .with_attributes(&attributes);
                        let e = flags::eval::evaluate(rules, &context, Some("us-east-1"));
                        if !rules.enabled {
                            assert_eq!(e.reason, Reason::Disabled);
                            assert!(!e.enabled);
                        }
                        if rules.excluded_user_ids.as_ref().is_some_and(|x| x.contains(user)) {
                            assert!(!e.enabled, "an excluded user got the flag");
                        }
                        if let Reason::Rollout { bucket: Some(b), percentage } = e.reason {
                            assert!((1..=100).contains(&b));
                            assert_eq!(e.enabled, f64::from(b) <= percentage);
                        }
                        let _ = e.to_string();
                    }
                }
            }
        }
        Err(problem) => assert!(!problem.to_string().is_empty()),
    }
    // Any document as a snapshot (file or extension response): errors, never panics.
    if let Ok(doc) = SnapshotDoc::from_slice(rest, "fuzz input") {
        let snapshot = Arc::new(doc.into_snapshot());
        for entry in snapshot.entries() {
            let _ = snapshot.get(entry.name()).evaluate(&Context::user("u"));
        }
        // What the extension would serve of it decodes to the same document again.
        let served = SnapshotDoc::from_snapshot(&snapshot);
        let again = SnapshotDoc::from_slice(&served.to_bytes(), "re-rendered")
            .unwrap_or_else(|e| panic!("a rendered snapshot does not decode: {e}"));
        assert_eq!(SnapshotDoc::from_snapshot(&again.into_snapshot()), served);
    }
});
