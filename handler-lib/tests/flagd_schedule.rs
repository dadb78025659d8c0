//! A flagd schedule (`$flagd.timestamp` in the targeting) flips on time for a thread that keeps
//! reading through the process-wide read path, whose remembered answers must never hold it: no
//! new snapshot is installed, only the clock moves. (Its own test binary: it installs into the
//! process-wide store.)

use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use flags::flagd::Bucketing;
use flags::{Context, FlagEntry, Snapshot, Status};
use serde_json::json;

#[test]
fn a_timestamp_schedule_flips_while_a_thread_keeps_reading() {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    // Opens two seconds from now (whole seconds, as `$flagd.timestamp` counts).
    let opens = now + 2;
    let document = json!({"flags": {
        "launch": {
            "state": "ENABLED",
            "variants": {"on": true, "off": false},
            "defaultVariant": "off",
            "targeting": {"if": [{">=": [{"var": "$flagd.timestamp"}, opens]}, "on", "off"]}
        },
        "steady": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}
    }});
    let entries = FlagEntry::from_flagd_document("test", 1, false, &document, Bucketing::V3)
        .expect("a flag document");
    flags::install(Snapshot::new(1, Status::Ok, entries));

    let reader = std::thread::spawn(move || {
        let started = Instant::now();
        let (mut reads, mut before) = (0u64, 0u64);
        // Generous for a busy machine: the flip is due in about 2 s.
        while started.elapsed() < Duration::from_secs(60) {
            reads += 1;
            let on = flags::get("launch").enabled();
            assert!(flags::get("steady").enabled());
            if on {
                // Time only moves on: a user reading after the flip sees it too.
                assert!(flags::get("launch").enabled_for(&Context::user("u-1")));
                return (reads, before);
            }
            before += 1;
        }
        panic!("the schedule never flipped in 60 s ({reads} reads)");
    });
    let (reads, before) = reader.join().expect("the reader");
    // It read `off` many times (remembered answers had every chance to stick) and then `on`.
    assert!(before > 100, "only {before} reads before the flip");
    assert!(
        SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .expect("after 1970")
            .as_secs()
            >= opens,
        "it flipped before the schedule opened"
    );
    assert_eq!(
        flags::version(),
        1,
        "no snapshot was installed: only time moved"
    );
    eprintln!("flipped after {reads} reads");
}
