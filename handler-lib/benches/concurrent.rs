//! Flag reads per second with N threads reading at once, against the floor read by the same
//! threads in the same run: an `Arc<HashMap<String, bool>>` (foldhash, the index's hasher), each
//! thread holding its own clone taken before it starts, so the floor's reads touch no shared
//! counter — only the map's own cache lines, shared read-only as the snapshot's are.
//!
//! Flag names are literals, as in a handler (both sides hash them at run time). Thread counts:
//! 1, 2, 8 and four per core. Each measurement runs every thread for a fixed
//! time; the two sides alternate and repeat, and the medians are compared.
//!
//! Run: `cargo bench -p ssm-flags --bench concurrent` (or `make bench`); results go to
//! `target/ssm-flags-bench/concurrent.json`, which `bench/report.py` turns into a table.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use flags::Snapshot;

const RUN: Duration = Duration::from_millis(250);
const REPS: usize = 5;
const BATCH: u64 = 1_000;
const NAME: &str = "dark-mode";

type Floor = HashMap<String, bool, foldhash::fast::RandomState>;

/// The flags: the seed's boolean plus filler, the same size on both sides.
fn values() -> Vec<(String, String)> {
    let mut values = vec![(NAME.to_owned(), "true".to_owned())];
    values.extend((0..29).map(|i| (format!("team/feature-{i}"), "false".to_owned())));
    values
}

/// Runs `read` on `threads` threads for [`RUN`]; returns reads per second.
fn throughput<F>(threads: usize, read: F) -> f64
where
    F: Fn() -> bool + Send + Sync + Clone + 'static,
{
    let start = Arc::new(Barrier::new(threads + 1));
    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (start, stop, read) = (Arc::clone(&start), Arc::clone(&stop), read.clone());
            std::thread::spawn(move || {
                // Warm the thread (its first read may set up per-thread state) before counting.
                black_box(read());
                start.wait();
                let mut reads = 0u64;
                while !stop.load(Ordering::Relaxed) {
                    for _ in 0..BATCH {
                        black_box(read());
                    }
                    reads += BATCH;
                }
                reads
            })
        })
        .collect();
    start.wait();
    let began = Instant::now();
    std::thread::sleep(RUN);
    stop.store(true, Ordering::Relaxed);
    let reads: u64 = handles
        .into_iter()
        .map(|h| h.join().expect("reader thread"))
        .sum();
    reads as f64 / began.elapsed().as_secs_f64()
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

fn main() {
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
    let mut counts = vec![1, 2, 8, cores * 4];
    counts.sort_unstable();
    counts.dedup();
    flags::install(Snapshot::from_values(
        values().iter().map(|(n, v)| (n.as_str(), v.as_str())),
    ));
    let floor: Arc<Floor> = Arc::new(
        values()
            .into_iter()
            .map(|(name, raw)| (name, raw == "true"))
            .collect(),
    );
    let mut rows = Vec::new();
    for threads in counts {
        let (mut ours, mut base) = (Vec::new(), Vec::new());
        for _ in 0..REPS {
            let map = Arc::clone(&floor);
            base.push(throughput(threads, move || {
                map.get(NAME).copied().unwrap_or(false)
            }));
            ours.push(throughput(threads, || flags::get(NAME).enabled()));
        }
        let (ours, base) = (median(ours), median(base));
        println!(
            "{threads:>3} threads: flags::get {:>7.1} M reads/s, floor {:>7.1} M reads/s, ratio {:.2}",
            ours / 1e6,
            base / 1e6,
            ours / base
        );
        rows.push(format!(
            r#"{{"threads": {threads}, "ours_reads_per_s": {ours:.0}, "floor_reads_per_s": {base:.0}, "reps": {REPS}, "run_ms": {}}}"#,
            RUN.as_millis()
        ));
    }
    // Beside the other harnesses' results, where `bench/report.py` reads them.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ssm-flags-bench");
    std::fs::create_dir_all(&dir).expect("results dir");
    let out = dir.join("concurrent.json");
    std::fs::write(&out, format!("[{}]\n", rows.join(",\n "))).expect("write results");
    println!("wrote {}", out.display());
}
