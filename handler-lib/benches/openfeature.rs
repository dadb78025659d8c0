//! An OpenFeature boolean evaluation through the ssm-flags provider vs `flags::get` vs the floor
//! (a `HashMap<String, bool>` lookup with foldhash, the index's own hasher), in the same run.
//!
//! - `openfeature/client_*`: through the OpenFeature API as a handler calls it
//!   (`client.get_bool_value`), provider included;
//! - `openfeature/provider_*`: the provider's `resolve_bool_value` alone;
//! - `openfeature/flags_get_*`: the library's own read;
//! - `*_static` reads `dark-mode` with no user; `*_rollout` evaluates the 50% rollout for a user.
//!
//! The provider's futures never wait (no I/O): each is polled once with a no-op waker, so no
//! executor's cost is measured. Flag names are literals, as in a handler (and in `lookup`).
//! `make bench` runs this (`--features openfeature`).

use std::collections::HashMap;
use std::future::Future;
use std::hint::black_box;
use std::pin::pin;
use std::task::{Context as TaskContext, Poll, Waker};

use criterion::{Criterion, criterion_group, criterion_main};
use flags::{Context, FlagEntry, Parameter, ParameterKind, Snapshot, Status};
use open_feature::provider::FeatureProvider;
use open_feature::{EvaluationContext, OpenFeature};

/// Polls a future that completes without waiting.
fn now<F: Future>(future: F) -> F::Output {
    let mut future = pin!(future);
    match future
        .as_mut()
        .poll(&mut TaskContext::from_waker(Waker::noop()))
    {
        Poll::Ready(output) => output,
        Poll::Pending => panic!("an evaluation waited: it must not do I/O"),
    }
}

fn install() {
    let mut params = vec![
        ("dark-mode".to_owned(), "true".to_owned()),
        (
            "new-payment-processor".to_owned(),
            r#"{"enabled": true, "rollout_percentage": 50, "fallback_on_error": true}"#.to_owned(),
        ),
    ];
    params.extend((0..28).map(|i| (format!("team/feature-{i}"), "false".to_owned())));
    let entries = params.into_iter().map(|(flag, value)| {
        FlagEntry::from_parameter(&Parameter {
            name: format!("/app/features/{flag}"),
            flag,
            kind: ParameterKind::String,
            value,
            version: 1,
        })
    });
    flags::install(Snapshot::new(1, Status::Ok, entries));
}

fn bench(c: &mut Criterion) {
    install();
    let runtime = tokio::runtime::Builder::new_current_thread()
        .build()
        .expect("runtime");
    let client = runtime.block_on(async {
        let mut api = OpenFeature::singleton_mut().await;
        api.set_provider(flags::openfeature::SnapshotProvider::new())
            .await;
        api.create_client()
    });
    let provider = flags::openfeature::SnapshotProvider::new();
    let anonymous = EvaluationContext::default();
    let user = EvaluationContext::default().with_targeting_key("user-42");
    let mut floor: HashMap<String, bool, foldhash::fast::RandomState> = HashMap::default();
    floor.insert("dark-mode".to_owned(), true);
    for i in 0..29 {
        floor.insert(format!("team/feature-{i}"), false);
    }

    let mut group = c.benchmark_group("openfeature");
    group.bench_function("client_static", |b| {
        b.iter(|| now(client.get_bool_value("dark-mode", Some(&anonymous), None)))
    });
    group.bench_function("provider_static", |b| {
        b.iter(|| now(provider.resolve_bool_value("dark-mode", &anonymous)))
    });
    group.bench_function("flags_get_static", |b| {
        b.iter(|| flags::get("dark-mode").enabled())
    });
    group.bench_function("hashmap_foldhash_floor", |b| {
        b.iter(|| floor.get("dark-mode").copied())
    });
    group.bench_function("client_rollout", |b| {
        b.iter(|| now(client.get_bool_value("new-payment-processor", Some(&user), None)))
    });
    group.bench_function("flags_get_rollout", |b| {
        b.iter(|| {
            flags::get("new-payment-processor").enabled_for(&Context::user(black_box("user-42")))
        })
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
