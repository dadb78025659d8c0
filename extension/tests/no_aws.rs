//! The binary started where it cannot work says so in its own words: outside Lambda without
//! `SSM_FLAGS_MODE=sidecar`, one line before any AWS configuration is loaded; as a sidecar
//! without a region, degraded, naming `AWS_REGION` — with the instance metadata service not
//! disabled, so the SDK's region lookup reaches for it, and none of its warnings logged.

use std::process::{Command, Stdio};

use testkit::lambda::binary;

/// Runs `ssm-flags` with exactly `env` (and a text log): its exit code and everything it wrote.
fn run(env: &[(&str, &str)]) -> (Option<i32>, String) {
    let home = std::env::temp_dir();
    let output = Command::new(binary("ssm-flags"))
        .env_clear()
        .env("HOME", &home)
        .env("SSM_FLAGS_LOG_FORMAT", "text")
        .envs(env.iter().copied())
        .stdin(Stdio::null())
        .output()
        .expect("run ssm-flags");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    (output.status.code(), text)
}

fn errors(text: &str) -> Vec<&str> {
    text.lines()
        .filter(|l| l.contains("ERROR") || l.contains("WARN"))
        .collect()
}

#[test]
fn outside_lambda_the_one_error_names_sidecar_mode() {
    let (code, text) = run(&[("SSM_FLAGS_PATH", "/myapp/prod/flags")]);
    assert_eq!(code, Some(1), "{text}");
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "one error line: {text}");
    assert!(errors[0].contains("SSM_FLAGS_MODE=sidecar"), "{text}");
    assert!(!text.contains("IMDS"), "{text}");
}

/// Without a region a sidecar starts degraded (the flags' defaults) and says what to set — in
/// its own words, with none of the SDK loader's lookups (instance metadata) logged before them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_sidecar_without_a_region_says_so_without_the_sdks_noise() {
    let moto = testkit::Moto::start().await;
    let dir = std::env::temp_dir().join(format!("no-aws-home-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let home = dir.display().to_string();
    let env: Vec<(String, String)> = testkit::sidecar::Sidecar::env(
        moto.port,
        "/myapp/prod/flags",
        testkit::free_port(),
        60,
        &[("HOME", home.as_str())],
    )
    .into_iter()
    .filter(|(k, _)| k != "AWS_REGION" && k != "AWS_EC2_METADATA_DISABLED")
    .collect();
    let sidecar = testkit::sidecar::Sidecar::start_with(env).await;
    let health = sidecar.health().await.expect("health");
    assert_eq!(health["status"], "degraded", "{health}");
    let log = sidecar.proc.log();
    assert!(
        log.contains("no AWS region") && log.contains("AWS_REGION"),
        "{log}"
    );
    assert!(!log.contains("IMDS"), "{log}");
    let _ = std::fs::remove_dir_all(&dir);
}
