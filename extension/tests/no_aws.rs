//! The binary started where it cannot work says so in one line, before any AWS configuration is
//! loaded: outside Lambda without `SSM_FLAGS_MODE=sidecar`, and as a sidecar without a region —
//! with the instance metadata service not disabled, so the SDK's region lookup would reach for
//! it (and warn at length) were it run first.

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

#[test]
fn a_sidecar_without_a_region_says_so_in_one_line() {
    let token_dir = std::env::temp_dir().join(format!("no-aws-token-{}", std::process::id()));
    let token_file = token_dir.join("token");
    let token_file = token_file.display().to_string();
    let port = testkit::free_port().to_string();
    let (code, text) = run(&[
        ("SSM_FLAGS_PATH", "/myapp/prod/flags"),
        ("SSM_FLAGS_MODE", "sidecar"),
        ("SSM_FLAGS_PORT", &port),
        ("SSM_FLAGS_TOKEN_FILE", &token_file),
    ]);
    assert_eq!(code, Some(1), "{text}");
    let errors = errors(&text);
    assert_eq!(errors.len(), 1, "one error line: {text}");
    assert!(errors[0].contains("AWS_REGION"), "{text}");
    assert!(!text.contains("IMDS"), "{text}");
    let _ = std::fs::remove_dir_all(&token_dir);
}
