//! A cold-start storm: many extensions start at once against an SSM limited to 40 requests/s
//! (Parameter Store's default quota), through a proxy in front of moto that throttles the excess
//! in AWS's wire format. Every instance must be ready or degraded within the init budget, none
//! may fail, total calls must stay bounded, and all must converge to the full flag set. The same
//! storm without backoff and jitter shows what they buy.
//!
//! The default run (part of `make test`) starts 200 instances with 10 flags each; `make storm`
//! runs the long variant, 200 instances with 100 flags each (`STORM_FLAGS=100`). The same storm
//! against an AppConfig profile (the testkit stand-in, limited to the same 40 requests/s) shows
//! what moving from a path to a profile buys at fleet scale: two calls per cold start, whatever
//! the number of flags.

mod common;

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_ssm::types::ParameterType;
use flags::wire::Status;
use ssm_flags_extension::appconfig::{AppConfigProfile, ProfileId, Sources};
use ssm_flags_extension::refresh::{RefreshPolicy, Refresher};
use ssm_flags_extension::source::{Source, SsmSource};
use testkit::Moto;
use testkit::appconfig::{AppConfigData, AppConfigFault, profile_key};
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

/// What a storm's requests are counted by: the proxy in front of moto, or the stand-in.
trait Counted {
    fn requests(&self) -> u64;
    fn throttled(&self) -> u64;
}

impl Counted for FaultProxy {
    fn requests(&self) -> u64 {
        FaultProxy::requests(self)
    }
    fn throttled(&self) -> u64 {
        self.counts()
            .throttled
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

impl Counted for AppConfigData {
    fn requests(&self) -> u64 {
        let counts = self.counts();
        counts.sessions.load(std::sync::atomic::Ordering::Relaxed)
            + counts.polls.load(std::sync::atomic::Ordering::Relaxed)
            + counts.throttled.load(std::sync::atomic::Ordering::Relaxed)
    }
    fn throttled(&self) -> u64 {
        self.counts()
            .throttled
            .load(std::sync::atomic::Ordering::Relaxed)
    }
}

/// Starts every instance at once; each loads at init (bounded by the init budget), then handles
/// an INVOKE every 250 ms, refreshing when its policy says so, until it holds every flag.
async fn storm<S: Source + 'static>(
    counted: &impl Counted,
    source: impl Fn() -> S,
    flags: usize,
    backoff: bool,
    limit: Duration,
) -> Outcome {
    let before = counted.requests();
    let throttled_before = counted.throttled();
    let started = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..INSTANCES {
        let source = source();
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
    outcome.requests = counted.requests() - before;
    outcome.throttled = counted.throttled() - throttled_before;
    outcome
}

fn ssm_source(port: u16) -> impl Fn() -> SsmSource {
    move || {
        SsmSource::new(
            client(port),
            vec![flags::FlagPath::parse(PATH).expect("path")],
        )
    }
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

    let with = storm(&*proxy, ssm_source(proxy.port), flags, true, limit).await;
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

    let without = storm(&*proxy, ssm_source(proxy.port), flags, false, limit).await;
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

/// The same storm against an AppConfig profile holding the same flags, the data API limited to
/// the same 40 requests/s (AppConfig's own quota is not verified here): two calls per cold start
/// (a session, then the configuration) whatever the number of flags.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_cold_start_storm_on_an_appconfig_profile_costs_two_calls_per_instance() {
    let flags = flags_per_instance();
    let standin = AppConfigData::start().await;
    let document: serde_json::Map<String, serde_json::Value> = (0..flags)
        .map(|i| {
            (
                format!("flag-{i:03}"),
                serde_json::json!({"enabled": i % 2 == 0}),
            )
        })
        .collect();
    standin.deploy(
        &profile_key("storm", "prod", "flags"),
        &serde_json::Value::Object(document).to_string(),
        "application/json",
        Some("v1"),
    );
    standin.set_fault(AppConfigFault::RateLimit(QUOTA));
    let endpoint = standin.endpoint();
    let source = move || {
        let config = aws_sdk_appconfigdata::Config::builder()
            .behavior_version(aws_sdk_appconfigdata::config::BehaviorVersion::latest())
            .region(aws_sdk_appconfigdata::config::Region::new(
                testkit::lambda::REGION,
            ))
            .endpoint_url(&endpoint)
            .credentials_provider(aws_sdk_appconfigdata::config::Credentials::new(
                "test", "test", None, None, "storm",
            ))
            .retry_config(
                aws_sdk_appconfigdata::config::retry::RetryConfig::standard().with_max_attempts(2),
            )
            .timeout_config(
                aws_sdk_appconfigdata::config::timeout::TimeoutConfig::builder()
                    .operation_timeout(INIT_BUDGET)
                    .build(),
            )
            .build();
        let id = ProfileId::parse_list("storm/prod/flags")
            .expect("profile")
            .remove(0);
        Sources::<SsmSource>::new(
            None,
            vec![AppConfigProfile::new(
                id,
                aws_sdk_appconfigdata::Client::from_conf(config),
            )],
        )
    };
    let floor_s = (INSTANCES * 2) as f64 / f64::from(QUOTA);
    let limit = Duration::from_secs_f64(floor_s * 6.0 + 30.0);
    let outcome = storm(&standin, source, flags, true, limit).await;
    println!(
        "AppConfig: {INSTANCES} instances x {flags} flags: all converged in {:?} (floor {floor_s:.1} s at {QUOTA}/s); {} requests ({} throttled), {} minimum; slowest init {:?}",
        outcome.all_converged_in,
        outcome.requests,
        outcome.throttled,
        INSTANCES * 2,
        outcome.slowest_init
    );
    assert_eq!(outcome.ready_or_degraded_at_init, INSTANCES);
    assert_eq!(outcome.converged, INSTANCES, "every instance converged");
    let bound = (INSTANCES * 2 * 8) as u64;
    assert!(
        outcome.requests <= bound,
        "{} requests, bound {bound}",
        outcome.requests
    );
}
