//! Flag reads per second with N threads reading at once, against the floor read by the same
//! threads in the same run: an `Arc<HashMap<String, bool>>` (foldhash, the index's hasher), each
//! thread holding its own clone taken before it starts, so the floor's reads touch no shared
//! counter — only the map's own cache lines, shared read-only as the snapshot's are.
//!
//! Flag names are literals, as in a handler (both sides hash them at run time). Thread counts:
//! 1, 2, 8 and four per core.
//!
//! # Pairing
//! On a shared VM the speed of a core drifts by tens of percent within a second (other guests,
//! frequency changes), so two sides measured one after the other in long runs compare the noise
//! more than the code. Here both sides run on the same threads in short alternating phases: the
//! main thread flips a shared phase number every [`PHASE`], and every reader, which looks at it
//! once per [`BATCH`] reads (as it would look at a stop flag), reads the side the phase names —
//! all readers read the same side at the same time, so contention between readers of one side is
//! measured as before. Phases go floor, ours, ours, floor (so a linear drift lands on both sides
//! alike); each such group of four is one paired sample, and its ratio is ours' reads per second
//! over the floor's. The result is the median of [`SAMPLES`] paired ratios, with their spread.
//!
//! Run: `cargo bench -p ssm-flags --bench concurrent` (or `make bench`); results go to
//! `target/ssm-flags-bench/concurrent.json`, which `bench/report.py` turns into a table.

use std::collections::HashMap;
use std::hint::black_box;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Barrier};
use std::time::{Duration, Instant};

use flags::Snapshot;

/// How long all readers read one side before the main thread flips them to the other.
const PHASE: Duration = Duration::from_millis(20);
/// Paired samples per thread count; each is four phases (floor, ours, ours, floor).
const SAMPLES: usize = 25;
/// Phases per sample, and which side each reads (0: floor, 1: ours).
const ORDER: [usize; 4] = [0, 1, 1, 0];
const PHASES: usize = SAMPLES * ORDER.len();
/// Reads between two looks at the phase.
const BATCH: u64 = 1_000;
const NAME: &str = "dark-mode";

type Floor = HashMap<String, bool, foldhash::fast::RandomState>;

/// The flags: the seed's boolean plus filler, the same size on both sides.
fn values() -> Vec<(String, String)> {
    let mut values = vec![(NAME.to_owned(), "true".to_owned())];
    values.extend((0..29).map(|i| (format!("team/feature-{i}"), "false".to_owned())));
    values
}

/// One thread count's result.
struct Measured {
    ours: f64,
    floor: f64,
    ratios: Vec<f64>,
}

/// Runs `threads` readers through [`PHASES`] phases of alternating sides; returns reads per
/// second of each side (over all its phases) and the paired ratio of each sample.
fn measure(threads: usize, floor: &Arc<Floor>) -> Measured {
    let start = Arc::new(Barrier::new(threads + 1));
    // The phase readers are in; `PHASES` stops them.
    let phase = Arc::new(AtomicUsize::new(0));
    let handles: Vec<_> = (0..threads)
        .map(|_| {
            let (start, phase, map) = (Arc::clone(&start), Arc::clone(&phase), Arc::clone(floor));
            std::thread::spawn(move || {
                let floor = move || map.get(NAME).copied().unwrap_or(false);
                let ours = || flags::get(NAME).enabled();
                // Warm the thread (its first read may set up per-thread state) before counting.
                black_box((floor(), ours()));
                let mut reads = vec![0u64; PHASES];
                start.wait();
                loop {
                    let now = phase.load(Ordering::Relaxed);
                    let Some(count) = reads.get_mut(now) else {
                        break;
                    };
                    if ORDER[now % ORDER.len()] == 0 {
                        for _ in 0..BATCH {
                            black_box(floor());
                        }
                    } else {
                        for _ in 0..BATCH {
                            black_box(ours());
                        }
                    }
                    *count += BATCH;
                }
                reads
            })
        })
        .collect();
    start.wait();
    let mut spent = vec![Duration::ZERO; PHASES];
    let mut began = Instant::now();
    for (now, time) in spent.iter_mut().enumerate() {
        std::thread::sleep(PHASE);
        let ended = Instant::now();
        *time = ended - began;
        began = ended;
        phase.store(now + 1, Ordering::Relaxed);
    }
    let mut reads = vec![0u64; PHASES];
    for handle in handles {
        for (total, counted) in reads.iter_mut().zip(handle.join().expect("reader thread")) {
            *total += counted;
        }
    }
    // Reads per second of each side within each sample, then over the whole run.
    let rate = |phases: std::ops::Range<usize>, side: usize| {
        let (mut n, mut t) = (0u64, Duration::ZERO);
        for i in phases.filter(|i| ORDER[i % ORDER.len()] == side) {
            n += reads[i];
            t += spent[i];
        }
        n as f64 / t.as_secs_f64()
    };
    let ratios = (0..SAMPLES)
        .map(|s| {
            let phases = s * ORDER.len()..(s + 1) * ORDER.len();
            rate(phases.clone(), 1) / rate(phases, 0)
        })
        .collect();
    Measured {
        ours: rate(0..PHASES, 1),
        floor: rate(0..PHASES, 0),
        ratios,
    }
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
        let Measured {
            ours,
            floor: base,
            mut ratios,
        } = measure(threads, &floor);
        ratios.sort_by(f64::total_cmp);
        let (low, median, high) = (ratios[0], ratios[SAMPLES / 2], ratios[SAMPLES - 1]);
        println!(
            "{threads:>3} threads: flags::get {:>7.1} M reads/s, floor {:>7.1} M reads/s, \
             paired ratio {median:.2} (samples {low:.2}..{high:.2})",
            ours / 1e6,
            base / 1e6,
        );
        rows.push(format!(
            r#"{{"threads": {threads}, "ours_reads_per_s": {ours:.0}, "floor_reads_per_s": {base:.0}, "ratio": {median:.4}, "ratio_min": {low:.4}, "ratio_max": {high:.4}, "samples": {SAMPLES}, "phase_ms": {}}}"#,
            PHASE.as_millis()
        ));
    }
    // Beside the other harnesses' results, where `bench/report.py` reads them.
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../target/ssm-flags-bench");
    std::fs::create_dir_all(&dir).expect("results dir");
    let out = dir.join("concurrent.json");
    std::fs::write(&out, format!("[{}]\n", rows.join(",\n "))).expect("write results");
    println!("wrote {}", out.display());
}
