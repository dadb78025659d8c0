//! Never older after newer (issue 21 §2), under load: one writer installs snapshot after
//! snapshot into the process-wide store while reader threads each `flags::pin()` and then read
//! through `flags::get`, checking that the read answers from the pinned snapshot or a later one
//! — never an earlier one. Names both within and past the 32 bytes remembered answers cover.
//! A release build is where the window between an install's swap and its count is hit (a debug
//! `cargo test` rarely is; the unit test `a_thread_never_reads_older_flags_than_it_has_seen`
//! holds it open with a hook instead).
//!
//! Snapshot `v` holds the flags `tick-{k}` (and their long twins) for `k` in `v+1..=v+32`, all
//! off: a read of `get_or("tick-{N}", true)` after pinning version `N` is on (the flag is
//! missing, the default applies) in snapshot `N` and every later one, off in the 32 before it.
//! No pause of a reader can make a correct read look wrong.
//!
//! Run: `cargo bench -p ssm-flags --bench order` (or `make bench`); the result goes to
//! `target/ssm-flags-bench/order.json`; any violation fails the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use flags::Snapshot;

const READERS: usize = 3;
const RUN: Duration = Duration::from_secs(5);
const WINDOW: u64 = 32;
const LONG: &str = "tick-with-a-name-well-past-the-thirty-two-bytes";

fn snapshot(version: u64) -> Snapshot {
    let names: Vec<String> = (version + 1..=version + WINDOW)
        .flat_map(|k| [format!("tick-{k}"), format!("{LONG}-{k}")])
        .collect();
    let snapshot = Snapshot::from_values(names.iter().map(|n| (n.as_str(), "false")));
    Snapshot::new(version, flags::Status::Ok, snapshot.entries().cloned())
}

fn main() {
    flags::install(snapshot(1));
    let stop = Arc::new(AtomicBool::new(false));
    let installs = Arc::new(AtomicU64::new(1));
    let writer = {
        let (stop, installs) = (Arc::clone(&stop), Arc::clone(&installs));
        std::thread::spawn(move || {
            let mut version = 1;
            while !stop.load(Ordering::Relaxed) {
                version += 1;
                flags::install(snapshot(version));
                installs.store(version, Ordering::Relaxed);
                std::thread::sleep(Duration::from_micros(100));
            }
        })
    };
    let readers: Vec<_> = (0..READERS)
        .map(|_| {
            let stop = Arc::clone(&stop);
            std::thread::spawn(move || {
                let (mut checks, mut older) = (0u64, 0u64);
                let mut names = (String::new(), String::new());
                while !stop.load(Ordering::Relaxed) {
                    let pinned = flags::pin().version();
                    names.0.clear();
                    names.1.clear();
                    use std::fmt::Write;
                    let _ = write!(names.0, "tick-{pinned}");
                    let _ = write!(names.1, "{LONG}-{pinned}");
                    for name in [&names.0, &names.1] {
                        checks += 1;
                        if !flags::get_or(name, true).enabled() {
                            older += 1;
                        }
                    }
                }
                (checks, older)
            })
        })
        .collect();
    let started = Instant::now();
    std::thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    let _ = writer.join();
    let (mut checks, mut older) = (0, 0);
    for reader in readers {
        if let Ok((c, o)) = reader.join() {
            checks += c;
            older += o;
        }
    }
    let installed = installs.load(Ordering::Relaxed);
    println!(
        "order: {checks} pin-then-get checks by {READERS} readers over {:?} while {installed} snapshots were installed: {older} answered from an older snapshot",
        started.elapsed()
    );
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ssm-flags-bench");
    let _ = std::fs::create_dir_all(&dir);
    let doc = serde_json::json!({
        "readers": READERS,
        "seconds": RUN.as_secs(),
        "installs": installed,
        "checks": checks,
        "older": older,
    });
    let _ = std::fs::write(dir.join("order.json"), doc.to_string());
    assert_eq!(
        older, 0,
        "a thread read older flags after it had pinned newer ones"
    );
}
