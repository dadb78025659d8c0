//! A project outside the repository, following only the book: the `ssm-flags` crate as
//! `cargo package` writes it (the `.crate` a user downloads from crates.io, unpacked, wired in with
//! `[patch.crates-io]` because it is not published from here), the handler and the dependencies
//! exactly as the book's "Keeping the handler current" gives them, built as its own cargo
//! project, then run under the Lambda emulator with the real extension beside it: the flag put in
//! SSM reaches the handler.

use std::path::PathBuf;
use std::process::Command;

use aws_sdk_ssm::types::ParameterType;
use lambda_simulator::FreezeMode;
use serde_json::json;
use testkit::lambda::{Function, ssm_client};
use testkit::{Moto, workspace};

/// The Cargo.toml a user writes from the book: the dependencies its handler section lists.
const MANIFEST: &str = r#"[package]
name = "scratch-handler"
version = "0.1.0"
edition = "2024"
publish = false

[dependencies]
ssm-flags = "0.1"
lambda_runtime = "1"
serde_json = "1"
tokio = { version = "1", features = ["macros", "rt-multi-thread"] }

[patch.crates-io]
ssm-flags = { path = "../vendor/ssm-flags-0.1.0" }

[workspace]
"#;

/// The workspace's target directory (the test runs from `<target>/debug/deps`).
fn target_dir() -> PathBuf {
    let exe = std::env::current_exe().expect("test path");
    exe.ancestors()
        .nth(3)
        .expect("the target directory")
        .to_path_buf()
}

fn run(command: &mut Command, what: &str) {
    let output = command.output().unwrap_or_else(|e| panic!("{what}: {e}"));
    assert!(
        output.status.success(),
        "{what} failed:\n{}\n{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
}

/// The book's handler: the `rust,no_run` block of "Keeping the handler current", as written.
fn book_handler() -> String {
    let chapter = std::fs::read_to_string(workspace().join("docs/src/handler.md")).expect("book");
    let start =
        chapter.find("```rust,no_run\n").expect("the handler block") + "```rust,no_run\n".len();
    let end = start + chapter[start..].find("\n```").expect("its end");
    chapter[start..end]
        .lines()
        .map(|line| line.strip_prefix("# ").unwrap_or(line))
        .collect::<Vec<_>>()
        .join("\n")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_project_outside_the_repository_builds_on_the_packaged_crate_and_runs_with_the_layer() {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let target = target_dir();
    // The .crate, as `cargo publish` would upload it.
    run(
        Command::new(&cargo)
            .current_dir(workspace())
            .args(["package", "-p", "ssm-flags", "--no-verify", "--allow-dirty"])
            .env("CARGO_TARGET_DIR", &target),
        "cargo package",
    );
    let packaged = target.join("package/ssm-flags-0.1.0.crate");
    let scratch = std::env::temp_dir().join(format!("ssm-flags-scratch-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&scratch);
    let vendor = scratch.join("vendor");
    let app = scratch.join("app");
    std::fs::create_dir_all(&vendor).expect("vendor dir");
    std::fs::create_dir_all(app.join("src")).expect("app dir");
    run(
        Command::new("tar")
            .arg("xzf")
            .arg(&packaged)
            .arg("-C")
            .arg(&vendor),
        "unpack the .crate",
    );
    assert!(
        vendor.join("ssm-flags-0.1.0/Cargo.toml").is_file(),
        "the .crate unpacks to ssm-flags-0.1.0/"
    );
    std::fs::write(app.join("Cargo.toml"), MANIFEST).expect("manifest");
    std::fs::write(app.join("src/main.rs"), book_handler()).expect("main.rs");
    // The same versions as the workspace resolves (what its tests proved), where they apply.
    std::fs::copy(workspace().join("Cargo.lock"), app.join("Cargo.lock")).expect("lock");
    // Its own target directory: a separate project, as on a user's machine.
    let scratch_target = target.join("scratch-project");
    run(
        Command::new(&cargo)
            .current_dir(&app)
            .args(["build", "-j2"])
            .env("CARGO_TARGET_DIR", &scratch_target)
            .env_remove("RUSTFLAGS"),
        "cargo build of the scratch project",
    );
    let handler = scratch_target.join("debug/scratch-handler");

    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    testkit::lambda::put(
        &ssm,
        "/scratch/flags/dark-mode",
        "true",
        ParameterType::String,
    )
    .await;
    let function = Function::start_program(
        moto.port,
        "/scratch/flags",
        60,
        FreezeMode::None,
        &[],
        &handler,
        &[],
    )
    .await;
    let answer = function.invoke(json!({"any": "event"})).await;
    assert_eq!(answer["dark_mode"], json!(true), "{answer}");
    assert!(answer["request"].is_string(), "{answer}");
    let _ = std::fs::remove_dir_all(&scratch);
}
