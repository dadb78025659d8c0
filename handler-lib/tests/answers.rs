//! `flags::get(name).enabled()` answers from what the thread remembered while the snapshot is
//! the same: these scenarios try to make a remembered answer wrong — a swap, another default,
//! another name in a reused buffer, names of every length the key handles, more names than
//! slots, a read inside a read, a read from a thread-local destructor — and compare each answer
//! with the snapshot's own evaluation. One test owns the process-wide store: steps run in order.

use std::cell::RefCell;
use std::sync::mpsc;

use flags::{Context, Snapshot};

/// What `enabled()` must answer: the pinned snapshot's evaluation with no user.
fn expected(name: &str, default: bool) -> bool {
    flags::pin()
        .get(name)
        .default_to(default)
        .evaluate(&Context::new())
        .enabled
}

/// Reads every name (twice: worked out, then remembered) with both defaults and checks each.
fn check_all(names: &[String]) {
    for _ in 0..2 {
        for name in names {
            for default in [false, true] {
                assert_eq!(
                    flags::get_or(name, default).enabled(),
                    expected(name, default),
                    "{name:?} (default {default})"
                );
            }
        }
    }
}

/// Names of every length from 0 to 40 bytes (the key covers up to 32), each with a twin that
/// differs in one byte only, in the middle.
fn names() -> Vec<String> {
    (0..=40)
        .flat_map(|len| {
            let name: String = (0..len)
                .map(|i| char::from(b'a' + (i % 26) as u8))
                .collect();
            let mut twin = name.clone().into_bytes();
            if let Some(middle) = twin.get_mut(len / 2) {
                *middle = b'Z';
            }
            [name, String::from_utf8(twin).expect("ascii")]
        })
        .collect()
}

#[test]
fn a_remembered_answer_is_never_a_wrong_one() {
    let names = names();
    // Half the names on, the twins off: a twin read through its sibling's slot would show.
    let values = |flip: bool| -> Vec<(String, String)> {
        names
            .iter()
            .enumerate()
            .filter(|(_, name)| !name.is_empty())
            .map(|(i, name)| (name.clone(), ((i % 2 == 0) != flip).to_string()))
            .collect()
    };
    let install = |values: &[(String, String)]| {
        flags::install(Snapshot::from_values(
            values.iter().map(|(n, v)| (n.as_str(), v.as_str())),
        ));
    };

    // Before any install and after: every name, more names than the 16 slots.
    check_all(&names);
    install(&values(false));
    check_all(&names);
    // A swap is seen at the next read of every name.
    install(&values(true));
    check_all(&names);

    // One buffer, one address and length, other bytes: each read answers for its own bytes.
    let mut reused = String::with_capacity(128);
    for len in [3, 7, 9, 16, 25, 32, 33, 40] {
        let (name, twin) = (&names[2 * len], &names[2 * len + 1]);
        for _ in 0..3 {
            for which in [name, twin] {
                reused.clear();
                reused.push_str(which);
                assert_eq!(flags::get(&reused).enabled(), expected(which, false));
            }
        }
    }

    // A JSON flag with no user: its rules decide (not the default), and new rules are seen.
    let (rollout, off, on) = (
        r#"{"enabled": true, "rollout_percentage": 100, "salt": "s"}"#,
        r#"{"enabled": false}"#,
        r#"{"enabled": true, "max_items": 5}"#,
    );
    for (value, answer) in [(rollout, false), (off, false), (on, true), (off, false)] {
        flags::install(Snapshot::from_values([("beta", value)]));
        for default in [true, false] {
            assert_eq!(flags::get_or("beta", default).enabled(), answer, "{value}");
            assert_eq!(answer, expected("beta", default));
        }
    }

    // `enabled_for` uses a remembered answer only when every context gets it: a boolean flag
    // (or a disabled or missing one), never rules that look at the user or the region.
    let users = [
        Context::new(),
        Context::user("user-1"),
        Context::user("user-2").with_region("eu-west-1"),
        Context::new().with_region("eu-west-1"),
    ];
    let check_users = |name: &str| {
        for _ in 0..2 {
            for user in &users {
                for default in [false, true] {
                    let pinned = flags::pin();
                    let want = pinned.get(name).default_to(default).evaluate(user).enabled;
                    assert_eq!(
                        flags::get_or(name, default).enabled_for(user),
                        want,
                        "{name} for {user:?} (default {default})"
                    );
                }
            }
            let _ = flags::get(name).enabled(); // the no-user answer, remembered in between
        }
    };
    for value in [
        "true",
        r#"{"enabled": true, "allowed_user_ids": ["user-1"]}"#,
        r#"{"enabled": true, "allowed_regions": ["eu-west-1"]}"#,
        r#"{"enabled": false, "allowed_user_ids": ["user-1"]}"#,
        r#"{"enabled": true}"#,
        "false",
        "{",
        "text",
    ] {
        flags::install(Snapshot::from_values([("per-user", value)]));
        check_users("per-user");
    }
    // Each allowed user and region said yes above only if the rules were evaluated.
    flags::install(Snapshot::from_values([(
        "per-user",
        r#"{"enabled": true, "allowed_user_ids": ["user-1"]}"#,
    )]));
    assert!(!flags::get("per-user").enabled());
    assert!(flags::get("per-user").enabled_for(&Context::user("user-1")));

    // The default is the caller's, each time: missing, invalid, and config flags.
    flags::install(Snapshot::from_values([
        ("broken", "{"),
        ("banner-text", "hello"),
    ]));
    for name in ["missing", "broken", "banner-text"] {
        for default in [true, false, true] {
            assert_eq!(flags::get_or(name, default).enabled(), default, "{name}");
        }
    }

    // A read inside a read (the thread's view is busy) is right, and right again after it.
    flags::install(Snapshot::from_values([
        ("outer", "true"),
        ("inner", "true"),
    ]));
    let inner = flags::get("outer").read(|_| flags::get("inner").enabled());
    assert!(inner);
    flags::install(Snapshot::from_values([
        ("outer", "true"),
        ("inner", "false"),
    ]));
    let inner = flags::get("outer").read(|_| flags::get("inner").enabled());
    assert!(!inner, "a swap is seen inside a read");
    assert!(!flags::get("inner").enabled());

    // A thread-local's destructor reads a flag as its thread exits, after the thread's view of
    // the snapshot may be gone: still the current answer.
    struct ReadsOnExit(mpsc::Sender<bool>);
    impl Drop for ReadsOnExit {
        fn drop(&mut self) {
            let _ = self.0.send(flags::get("inner").enabled());
        }
    }
    thread_local! {
        static ON_EXIT: RefCell<Option<ReadsOnExit>> = const { RefCell::new(None) };
    }
    let (send, receive) = mpsc::channel();
    std::thread::spawn(move || {
        // Registered before the thread's first read sets up its view: destroyed after the view.
        ON_EXIT.with(|slot| *slot.borrow_mut() = Some(ReadsOnExit(send)));
        assert!(!flags::get("inner").enabled());
        flags::install(Snapshot::from_values([("inner", "true")]));
    })
    .join()
    .expect("thread");
    assert_eq!(receive.recv().ok(), Some(true), "read in a destructor");
}
