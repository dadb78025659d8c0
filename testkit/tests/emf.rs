//! `testkit::emf` publishes EMF lines as CloudWatch Logs would: lines written by AWS's own
//! `aws-embedded-metrics` package (PyPI, in its Lambda mode: `emf_python.py`) and by
//! `flags::experiment::Emitter` are sent to moto's CloudWatch and read back with
//! `GetMetricData`: every Sum and SampleCount is the one the writer wrote.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

use aws_sdk_cloudwatch::primitives::DateTime;
use flags::experiment::{
    CONVERSION_VALUE, CONVERSIONS, Conversions, Counts, EVENT, EXPOSURES, Emitter, FLAG, SERVICE,
    VARIANT,
};
use testkit::{Moto, emf, process, workspace};

/// Ten minutes ago, in whole seconds (the Python package writes whole milliseconds of it).
fn ten_minutes_ago() -> SystemTime {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_secs();
    UNIX_EPOCH + Duration::from_secs(now - 600)
}

/// Five minutes either side of `at`.
fn around(at: SystemTime) -> (DateTime, DateTime) {
    let secs = at.duration_since(UNIX_EPOCH).expect("after 1970").as_secs() as i64;
    (
        DateTime::from_secs(secs - 300),
        DateTime::from_secs(secs + 300),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lines_of_the_published_python_package_read_back_exactly() {
    let moto = Moto::start().await;
    let cw = emf::client(moto.port);
    let at = ten_minutes_ago();
    let at_ms = at
        .duration_since(UNIX_EPOCH)
        .expect("after 1970")
        .as_millis();
    let script = workspace().join("testkit/tests/emf_python.py");
    let ran = process::run(
        process::python(),
        &[script.to_str().expect("utf-8 path"), &at_ms.to_string()],
        None,
        &[
            ("AWS_LAMBDA_FUNCTION_NAME", "emf-fn"),
            ("AWS_EMF_ENVIRONMENT", "lambda"),
        ],
    )
    .await;
    assert!(
        ran.success(),
        "aws-embedded-metrics comes from requirements-dev.txt (`make venv`): {}",
        ran.text()
    );
    assert_eq!(
        ran.stdout.lines().count(),
        4,
        "three EMF lines and a log line: {}",
        ran.stdout
    );
    // Line 1: 3 metrics × 2 dimension sets; line 2 (Latency's last 50): × 2; line 3: 1.
    let sent = emf::put(&cw, &ran.stdout).await.expect("valid EMF");
    assert_eq!(sent, 9);

    let window = around(at);
    let read = |name: &'static str, dims: Vec<(&'static str, &'static str)>, stat: &'static str| {
        let cw = cw.clone();
        async move { emf::statistic(&cw, "emf-python", name, &dims, stat, window, 600).await }
    };
    let cart = vec![("Service", "cart")];
    let buy = vec![("Service", "cart"), ("Route", "/buy")];
    // Latency: (i % 7) × 1.5 for i in 0..150: 21 full weeks of 0..=6 (sum 21) and 0, 1, 2.
    let latency_sum = 1.5 * f64::from(21 * 21 + 3);
    for dims in [&cart, &buy] {
        assert_eq!(
            read("Latency", dims.clone(), "Sum").await,
            Some(latency_sum),
            "{dims:?}"
        );
        assert_eq!(
            read("Latency", dims.clone(), "SampleCount").await,
            Some(150.0)
        );
        assert_eq!(read("Orders", dims.clone(), "Sum").await, Some(7.0));
        assert_eq!(read("Orders", dims.clone(), "SampleCount").await, Some(2.0));
        assert_eq!(read("Queue", dims.clone(), "Sum").await, Some(2.25));
    }
    assert_eq!(read("Latency", cart.clone(), "Maximum").await, Some(9.0));
    // The Lambda environment's default dimensions, and the one put on top.
    let pay = vec![
        ("LogGroup", "emf-fn"),
        ("ServiceName", "emf-fn"),
        ("ServiceType", "AWS::Lambda::Function"),
        ("Route", "/pay"),
    ];
    assert_eq!(read("Bytes", pay, "Sum").await, Some(1024.0));
    // A metric is found by exactly its dimensions: no set named Route alone was declared.
    assert_eq!(read("Latency", vec![("Route", "/buy")], "Sum").await, None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn experiment_lines_read_back_as_the_counts_they_carry() {
    let moto = Moto::start().await;
    let cw = emf::client(moto.port);
    let at = ten_minutes_ago();
    let emitter = Emitter::new("ssm-flags-emf-test", "checkout");
    let mut counts = Counts::default();
    counts
        .exposures
        .insert(("flow".into(), "one-page".into()), 400);
    counts
        .exposures
        .insert(("flow".into(), "classic".into()), 380);
    // 230 values: a line of 100 with the count, then 100 and 30 on lines of their own.
    let values: Vec<f64> = (0..230).map(|i| f64::from(i % 10) + 0.25).collect();
    let value_sum: f64 = values.iter().sum();
    counts.conversions.insert(
        ("flow".into(), "one-page".into(), "paid".into()),
        Conversions { count: 57, values },
    );
    counts.conversions.insert(
        ("flow".into(), "classic".into(), "paid".into()),
        Conversions {
            count: 41,
            values: Vec::new(),
        },
    );
    let lines = emitter.lines(&counts, at).join("\n");
    // 2 exposure lines; one-page: 3 lines (Conversions + ConversionValue, then 2 × values);
    // classic: 1 line (Conversions only).
    let sent = emf::put(&cw, &lines).await.expect("valid EMF");
    assert_eq!(sent, 2 + 2 + 2 + 1);

    let window = around(at);
    let ns = emitter.namespace();
    let exposure = |variant: &'static str| {
        let cw = cw.clone();
        async move {
            let dims = [(SERVICE, "checkout"), (FLAG, "flow"), (VARIANT, variant)];
            emf::statistic(&cw, ns, EXPOSURES, &dims, "Sum", window, 600).await
        }
    };
    assert_eq!(exposure("one-page").await, Some(400.0));
    assert_eq!(exposure("classic").await, Some(380.0));
    let paid = |metric: &'static str, variant: &'static str, stat: &'static str| {
        let cw = cw.clone();
        async move {
            let dims = [
                (SERVICE, "checkout"),
                (FLAG, "flow"),
                (VARIANT, variant),
                (EVENT, "paid"),
            ];
            emf::statistic(&cw, ns, metric, &dims, stat, window, 600).await
        }
    };
    assert_eq!(paid(CONVERSIONS, "one-page", "Sum").await, Some(57.0));
    assert_eq!(paid(CONVERSIONS, "classic", "Sum").await, Some(41.0));
    assert_eq!(
        paid(CONVERSION_VALUE, "one-page", "Sum").await,
        Some(value_sum)
    );
    assert_eq!(
        paid(CONVERSION_VALUE, "one-page", "SampleCount").await,
        Some(230.0)
    );
    assert_eq!(paid(CONVERSION_VALUE, "classic", "SampleCount").await, None);
}
