//! The process-wide API as a handler uses it: `flags::get`, `get_or`, `pin`, `install`,
//! `load_file`. One test owns the global store, so the steps run in order.

use std::io::Write;

use flags::{Context, LoadError, Reason, Status};

fn write_temp(name: &str, body: &str) -> std::path::PathBuf {
    let path = std::env::temp_dir().join(format!("ssm-flags-{}-{name}", std::process::id()));
    let mut file = std::fs::File::create(&path).expect("create temp file");
    file.write_all(body.as_bytes()).expect("write temp file");
    path
}

#[test]
fn handler_api_end_to_end() {
    // Before anything is installed every flag reads as its default.
    assert_eq!(flags::version(), 0);
    assert_eq!(flags::pin().status(), Status::Degraded, "no flags yet");
    assert!(!flags::get("dark-mode").enabled());
    assert!(flags::get_or("dark-mode", true).enabled());
    assert_eq!(
        flags::get("dark-mode").evaluate(&Context::new()).reason,
        Reason::Default
    );

    let path = write_temp(
        "flags.json",
        r#"{"version": 3, "flags": {
            "dark-mode": {"value": true, "version": 2},
            "new-checkout-flow": {"value": {"enabled": true, "allowed_user_ids": ["user-1"]}},
            "new-analytics": {"value": "{\"enabled\": tru", "error": "parameter /myapp/dev/features/new-analytics: invalid JSON: expected ident at line 1 column 15"},
            "checkout/v2": {"value": "false"}
        }}"#,
    );
    assert_eq!(flags::load_file(&path).expect("valid file"), 4);
    assert_eq!(flags::version(), 3);
    assert_eq!(
        flags::pin().status(),
        Status::Fallback,
        "flags from a deployed file"
    );
    assert!(flags::get("dark-mode").enabled());
    assert!(flags::get("new-checkout-flow").enabled_for(&Context::user("user-1")));
    assert!(!flags::get("new-checkout-flow").enabled_for(&Context::user("user-2")));
    assert!(flags::get("checkout/v2").is_known());
    let broken = flags::get_or("new-analytics", true);
    assert!(
        broken.enabled(),
        "an invalid flag reads as the caller's default"
    );
    assert!(
        broken
            .error()
            .is_some_and(|e| e.to_string().contains("new-analytics"))
    );

    // A pinned snapshot keeps answering as it did while a new one is installed.
    let pinned = flags::pin();
    let next = flags::Snapshot::new(
        4,
        Status::Ok,
        pinned
            .entries()
            .filter(|e| e.name() != "dark-mode")
            .cloned(),
    );
    flags::install(next);
    assert!(pinned.get("dark-mode").enabled());
    assert!(!flags::get("dark-mode").enabled());
    assert_eq!(flags::version(), 4);

    // A broken file is an error naming it, and the installed flags stay as they were.
    let bad = write_temp("bad.json", r#"{"flags": [1, 2]}"#);
    let err = flags::load_file(&bad).expect_err("not a snapshot");
    assert!(matches!(err, LoadError::Format { .. }));
    assert!(err.to_string().contains("bad.json"), "{err}");
    let missing = flags::load_file("/nonexistent/flags.json").expect_err("no file");
    assert!(
        missing.to_string().contains("/nonexistent/flags.json"),
        "{missing}"
    );
    assert_eq!(flags::version(), 4);
    assert!(flags::get("new-checkout-flow").enabled_for(&Context::user("user-1")));

    for p in [path, bad] {
        let _ = std::fs::remove_file(p);
    }
}
