//! Commands that need no AWS load no AWS configuration, and a command that does, without a
//! region, says so in one line — run as a shell on a laptop would run the binary: no AWS
//! variables at all, the instance metadata service not disabled (so the SDK's region lookup
//! would reach for it, and warn at length, were it run).

use testkit::ctl::Ctl;

/// The CLI with none of the AWS variables the harness sets.
fn bare() -> Ctl {
    [
        "AWS_ACCESS_KEY_ID",
        "AWS_SECRET_ACCESS_KEY",
        "AWS_REGION",
        "AWS_ENDPOINT_URL",
        "AWS_EC2_METADATA_DISABLED",
    ]
    .iter()
    .fold(Ctl::new(1), |ctl, var| ctl.without(var))
    .env("HOME", &std::env::temp_dir().display().to_string())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_file_is_linted_without_loading_aws_configuration() {
    let dir = std::env::temp_dir().join(format!("ctl-no-aws-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let snapshot = dir.join("flags.json");
    std::fs::write(&snapshot, r#"{"flags": {"dark-mode": {"value": true}}}"#).expect("write");
    let features = dir.join("features.json");
    std::fs::write(&features, r#"{"premium": {"default": false}}"#).expect("write");
    let ctl = bare();
    for source in [
        snapshot.display().to_string(),
        format!("{}#powertools", features.display()),
    ] {
        let ran = ctl.run(&["lint", &source]).await;
        assert_eq!(ran.code, Some(0), "{source}: {}", ran.text());
        assert!(
            ran.stderr.is_empty(),
            "{source}: nothing on stderr: {}",
            ran.stderr
        );
    }
    let ran = ctl
        .run(&[
            "diff",
            &snapshot.display().to_string(),
            &snapshot.display().to_string(),
        ])
        .await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    assert!(ran.stderr.is_empty(), "{}", ran.stderr);
    let _ = std::fs::remove_dir_all(&dir);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_region_is_one_line_naming_the_ways_to_give_one() {
    let ran = bare().run(&["list", "/myapp/prod/flags"]).await;
    assert_eq!(ran.code, Some(2), "{}", ran.text());
    let lines: Vec<&str> = ran
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert_eq!(lines.len(), 1, "one line: {}", ran.stderr);
    assert!(
        lines[0].contains("--region") && lines[0].contains("AWS_REGION"),
        "{}",
        ran.stderr
    );
    assert!(!ran.stderr.contains("IMDS"), "{}", ran.stderr);
}
