//! A cold-start storm: many extensions start at once against an SSM limited to 40 requests/s
//! (Parameter Store's default quota), through a proxy in front of moto that throttles the excess
//! in AWS's wire format. Every instance must be ready or degraded within the init budget, none
//! may fail, total calls must stay bounded, and all must converge to the full flag set. The same
//! storm without backoff and jitter shows what they buy.
//!
//! The default run (part of `make test`) starts 200 instances with 10 flags each; `make storm`
//! runs the long variant, 200 instances with 100 flags each (`STORM_FLAGS=100`).

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;
use flags::wire::Status;
use ssm_flags_extension::refresh::{RefreshPolicy, Refresher};
use ssm_flags_extension::source::SsmSource;
use testkit::Moto;
use testkit::fault::{Fault, FaultProxy};

const INSTANCES: usize = 200;
const QUOTA: u32 = 40;
const INIT_BUDGET: Duration = Duration::from_secs(2);
const INVOKE_EVERY: Duration = Duration::from_millis(250);
const MAX_AGE: Duration = Duration::from_secs(60);
const PATH: &str = "/storm/features";

fn flags_per_instance() -> usize {
    std::env::var("STORM_FLAGS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(10)
}

fn client(port: u16) -> aws_sdk_ssm::Client {
    let timeouts = aws_sdk_ssm::config::timeout::TimeoutConfig::builder()
        .operation_timeout(INIT_BUDGET)
        .build();
    aws_sdk_ssm::Client::from_conf(
        testkit::lambda::ssm_config(port)
            .retry_config(aws_sdk_ssm::config::retry::RetryConfig::standard().with_max_attempts(2))
            .timeout_config(timeouts)
            .build(),
    )
}

struct Outcome {
    ready_or_degraded_at_init: usize,
    converged: usize,
    slowest_init: Duration,
    all_converged_in: Option<Duration>,
    requests: u64,
    throttled: u64,
}

/// Starts every instance at once; each loads at init (bounded by the init budget), then handles
/// an INVOKE every 250 ms, refreshing when its policy says so, until it holds every flag.
async fn storm(proxy: &FaultProxy, flags: usize, backoff: bool, limit: Duration) -> Outcome {
    let before = proxy.requests();
    let throttled_before = proxy
        .counts()
        .throttled
        .load(std::sync::atomic::Ordering::Relaxed);
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..INSTANCES {
        let source = SsmSource::new(
            client(proxy.port),
            vec![flags::FlagPath::parse(PATH).expect("path")],
        );
        let mut policy = RefreshPolicy::new(MAX_AGE);
        if !backoff {
            policy = policy.without_backoff();
        }
        let mut refresher = Refresher::new(source, MAX_AGE, INIT_BUDGET).with_policy(policy);
        tasks.push(tokio::spawn(async move {
            let init_started = Instant::now();
            refresher.refresh().await;
            let init = init_started.elapsed();
            let shared = refresher.shared();
            let status = shared.load().status();
            let ready_or_degraded = matches!(status, Status::Ok | Status::Degraded);
            while started.elapsed() < limit {
                let served = shared.load();
                if served.status() == Status::Ok && served.snapshot.len() == flags {
                    return (ready_or_degraded, init, Some(started.elapsed()));
                }
                tokio::time::sleep(INVOKE_EVERY).await;
                refresher.refresh_if_due(INIT_BUDGET).await;
            }
            (ready_or_degraded, init, None)
        }));
    }
    let mut outcome = Outcome {
        ready_or_degraded_at_init: 0,
        converged: 0,
        slowest_init: Duration::ZERO,
        all_converged_in: Some(Duration::ZERO),
        requests: 0,
        throttled: 0,
    };
    for task in tasks {
        let (ready, init, converged) = task.await.expect("no instance panicked");
        outcome.ready_or_degraded_at_init += usize::from(ready);
        outcome.slowest_init = outcome.slowest_init.max(init);
        match (converged, outcome.all_converged_in) {
            (Some(at), Some(worst)) => {
                outcome.converged += 1;
                outcome.all_converged_in = Some(worst.max(at));
            }
            (Some(_), None) => outcome.converged += 1,
            (None, _) => outcome.all_converged_in = None,
        }
    }
    outcome.requests = proxy.requests() - before;
    outcome.throttled = proxy
        .counts()
        .throttled
        .load(std::sync::atomic::Ordering::Relaxed)
        - throttled_before;
    outcome
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_storm_converges_within_the_quota() {
    let flags = flags_per_instance();
    let moto = Moto::start().await;
    let ssm = common::ssm_client(moto.port);
    for i in 0..flags {
        let value = if i % 2 == 0 { "true" } else { "false" };
        testkit::lambda::put(
            &ssm,
            &format!("{PATH}/flag-{i:03}"),
            value,
            ParameterType::String,
        )
        .await;
    }
    let proxy = Arc::new(FaultProxy::start(moto.port).await);
    proxy.set(Fault::RateLimit(QUOTA));
    let pages = flags / 10 + 1; // moto ends with an empty page when the count is a multiple of 10
    let floor_s = (INSTANCES * pages) as f64 / f64::from(QUOTA);
    let limit = Duration::from_secs_f64(floor_s * 6.0 + 30.0);

    let with = storm(&proxy, flags, true, limit).await;
    println!(
        "with backoff+jitter: {INSTANCES} instances x {flags} flags: all converged in {:?} (floor {floor_s:.1} s at {QUOTA}/s); {} requests ({} throttled), {} minimum; slowest init {:?}",
        with.all_converged_in,
        with.requests,
        with.throttled,
        INSTANCES * pages,
        with.slowest_init
    );
    assert_eq!(
        with.ready_or_degraded_at_init, INSTANCES,
        "every instance ready or degraded at init"
    );
    assert!(
        with.slowest_init <= INIT_BUDGET + Duration::from_millis(500),
        "init exceeded its budget: {:?}",
        with.slowest_init
    );
    assert_eq!(
        with.converged, INSTANCES,
        "every instance converged to the full flag set"
    );

    let without = storm(&proxy, flags, false, limit).await;
    println!(
        "without backoff:     all converged in {:?}; {} requests ({} throttled)",
        without.all_converged_in, without.requests, without.throttled
    );
    assert!(
        with.requests < without.requests,
        "backoff must save calls: {} with, {} without",
        with.requests,
        without.requests
    );
    // Bounded: with backoff, no more than a few attempts per instance beyond the minimum.
    let bound = (INSTANCES * pages * 8) as u64;
    assert!(
        with.requests <= bound,
        "{} requests, bound {bound}",
        with.requests
    );
}
