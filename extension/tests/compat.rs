//! One step of version skew each way (the layer and the `flags` crate are upgraded apart; the
//! rule is in `flags::wire`'s docs and the README).
//!
//! A client of the previous release reading this extension's snapshot document: decoded with a
//! frozen copy of that client's wire types and reading rules (`stale: bool`, `fetched_at` parsed
//! with `humantime::parse_rfc3339`, unknown fields ignored), the document rendered by this
//! extension's own renderer. The other direction — this client reading the previous extension's
//! document, without `status` and without the fetch-time header — is tested in
//! `flags::client` against a server answering exactly what that extension sent.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use flags::wire::Status;
use flags::{FlagEntry, FlagValue, Parameter, ParameterKind, Snapshot};
use serde::Deserialize;
use serde_json::Value;
use ssm_flags_extension::snapshot::Served;

/// The previous release's `SnapshotDoc`, as its client decoded it.
#[derive(Debug, Deserialize)]
struct SnapshotDocV01 {
    #[serde(default)]
    version: u64,
    #[serde(default)]
    fetched_at: Option<String>,
    #[serde(default)]
    stale: bool,
    flags: BTreeMap<String, FlagDocV01>,
}

/// The previous release's `FlagDoc`.
#[derive(Debug, Deserialize)]
struct FlagDocV01 {
    value: Value,
    #[serde(default)]
    version: u64,
    #[serde(default)]
    error: Option<String>,
}

fn served(status: Status) -> Served {
    let parameters = [
        ("dark-mode", "true", ParameterKind::String),
        (
            "new-checkout-flow",
            r#"{"enabled": true, "allowed_user_ids": ["alice"]}"#,
            ParameterKind::String,
        ),
        ("regions", "us-east-1,eu-west-1", ParameterKind::StringList),
        (
            "partner",
            r#"{"enabled": true, "key": "k"}"#,
            ParameterKind::SecureString,
        ),
        ("broken", "{oops", ParameterKind::String),
    ];
    let fetched_at = SystemTime::now() - Duration::from_millis(1_500);
    let snapshot = Snapshot::new(
        7,
        Status::Ok,
        parameters.iter().map(|(flag, value, kind)| {
            FlagEntry::from_parameter(&Parameter {
                flag: (*flag).to_owned(),
                name: format!("/app/features/{flag}"),
                kind: *kind,
                value: (*value).to_owned(),
                version: 3,
            })
        }),
    )
    .with_fetched_at(Some(fetched_at));
    Served::new(1, snapshot, None).remark(1, status, None)
}

#[test]
fn the_previous_client_reads_this_extensions_document() {
    let ok = served(Status::Ok);
    let doc: SnapshotDocV01 = serde_json::from_slice(&ok.body).expect("the old client decodes it");
    assert_eq!(doc.version, 7);
    assert!(!doc.stale);
    // The old client parsed the time with `humantime::parse_rfc3339`: milliseconds are accepted.
    let at = doc
        .fetched_at
        .as_deref()
        .and_then(|t| humantime::parse_rfc3339(t).ok())
        .expect("a fetch time the old client parses");
    assert!(
        SystemTime::now()
            .duration_since(at)
            .is_ok_and(|age| age < Duration::from_secs(60))
    );
    // Every value reads as it did: the old client classified `value` with `FlagValue::from_json`.
    assert_eq!(
        FlagValue::from_json(doc.flags["dark-mode"].value.clone()),
        Ok(FlagValue::Bool(true))
    );
    assert_eq!(
        FlagValue::from_json(doc.flags["regions"].value.clone()),
        Ok(FlagValue::List(vec![
            "us-east-1".into(),
            "eu-west-1".into()
        ]))
    );
    assert!(matches!(
        FlagValue::from_json(doc.flags["new-checkout-flow"].value.clone()),
        Ok(FlagValue::Json(_))
    ));
    assert!(matches!(
        FlagValue::from_json(doc.flags["partner"].value.clone()),
        Ok(FlagValue::Json(_))
    ));
    let broken = &doc.flags["broken"];
    assert_eq!((broken.value.as_str(), broken.version), (Some("{oops"), 3));
    assert!(
        broken
            .error
            .as_deref()
            .is_some_and(|e| e.starts_with("parameter /app/features/broken: invalid JSON"))
    );
}

#[test]
fn the_previous_client_still_sees_staleness() {
    let doc: SnapshotDocV01 = serde_json::from_slice(&served(Status::Stale).body).expect("decodes");
    assert!(doc.stale, "`stale` is still sent for clients before 0.2");
    assert_eq!(doc.flags.len(), 5, "the last good flags");
    for status in [Status::Degraded, Status::Fallback] {
        let doc: SnapshotDocV01 = serde_json::from_slice(&served(status).body).expect("decodes");
        assert!(
            !doc.stale,
            "{status}: not stale, as the old client understood it"
        );
    }
}

/// flagd flags travel in a field of their own (`flagd`): the previous client, which knows only
/// `flags`, reads them as unknown — its caller's default — never as a seed JSON flag (a flagd
/// definition read as one has no `enabled`, so it would read off). This client reads them back.
#[test]
fn the_previous_client_reads_flagd_flags_as_unknown_and_this_one_reads_them() {
    use flags::snapshot::assemble::Assembler;
    use flags::{Bucketing, Context, Format};
    let document = serde_json::json!({
        "flags": {
            "checkout": {
                "state": "ENABLED",
                "variants": {"on": true, "off": false},
                "defaultVariant": "on",
                "targeting": {"if": [{"starts_with": [{"var": "email"}, "admin"]}, "off", "on"]}
            },
            "broken": {"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on",
                       "targeting": {"like": [1]}}
        },
        "metadata": {"team": "payments"}
    });
    let mut assembler = Assembler::new();
    assembler.add(
        0,
        Format::Flagd(Bucketing::V2),
        &Parameter {
            flag: "doc".into(),
            name: "/app/flags/doc".into(),
            kind: ParameterKind::String,
            value: document.to_string(),
            version: 4,
        },
    );
    assembler.add(
        0,
        Format::Seed,
        &Parameter {
            flag: "dark-mode".into(),
            name: "/app/flags/dark-mode".into(),
            kind: ParameterKind::String,
            value: "true".into(),
            version: 1,
        },
    );
    let snapshot = Snapshot::new(3, Status::Ok, assembler.finish().entries);
    let served = Served::new(1, snapshot, None);

    let old: SnapshotDocV01 =
        serde_json::from_slice(&served.body).expect("the old client decodes it");
    // An invalid flagd flag travels in `flags` with its error: the previous client reads it as
    // an invalid flag (its default), as it would any.
    assert_eq!(
        old.flags.keys().collect::<Vec<_>>(),
        ["broken", "dark-mode"]
    );
    assert!(
        old.flags["broken"]
            .error
            .as_deref()
            .is_some_and(|e| e.contains("like"))
    );
    assert!(
        !old.flags.contains_key("checkout"),
        "a flagd flag is unknown to the previous client: its caller's default"
    );

    let new = flags::wire::SnapshotDoc::from_slice(&served.body, "test").expect("decodes");
    assert_eq!(new.flagd["checkout"].bucketing, "v2");
    assert_eq!(new.flagd["checkout"].version, 4);
    let snapshot = std::sync::Arc::new(new.into_snapshot());
    let fields = serde_json::Map::from_iter([("email".to_owned(), "admin@example.com".into())]);
    let admin = Context::user("u1").with_fields(&fields);
    assert_eq!(snapshot.get("checkout").bool_for(&admin), Some(false));
    assert_eq!(
        snapshot.get("checkout").bool_for(&Context::user("u1")),
        Some(true)
    );
    assert!(snapshot.get("dark-mode").enabled());
    let variant = snapshot.get("checkout").variant_for(&admin);
    let team = variant.metadata.as_deref().and_then(|m| m.get("team"));
    assert_eq!(team, Some(&serde_json::json!("payments")));
}
