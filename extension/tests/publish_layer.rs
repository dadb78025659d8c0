//! The layer for any function, against moto's Lambda and IAM with the AWS CLI: `make
//! publish-layer` builds the layer zip (`make layer`) and publishes it with `deploy/layer.yaml`'s
//! architecture, runtimes and licence, shares it with an account or an organization, and refuses
//! a malformed account before publishing anything; `examples/add-layer/aws-cli.sh` adds the
//! published version to an existing function beside its other layer and variables, replacing an
//! older version of the same layer, and grants the function's role the path. And the book's page
//! quotes those checked files exactly.

use std::path::{Path, PathBuf};
use std::time::Instant;

use serde_json::{Value, json};
use testkit::process::{self, Ran};
use testkit::{Moto, workspace};

/// moto's account, which owns everything published to it.
const ACCOUNT: &str = "123456789012";
const REGION: &str = "eu-west-1";
/// The account the layer is shared with: another one, so the grant names what was given.
const SHARED_WITH: &str = "210987654321";
const ORG: &str = "o-exampleorg1";
const LAYER: &str = "ssm-flags-x86_64";
/// Lambda's runtimes on Amazon Linux 2 (glibc 2.26).
const AMAZON_LINUX_2: [&str; 12] = [
    "provided.al2",
    "python3.8",
    "python3.9",
    "python3.10",
    "python3.11",
    "nodejs16.x",
    "nodejs18.x",
    "java8.al2",
    "java11",
    "java17",
    "dotnet6",
    "ruby3.2",
];

/// The AWS CLI and make, run with moto's endpoint, fake credentials and a region, and nothing of
/// this machine's AWS configuration.
struct Aws {
    env: Vec<(String, String)>,
    cli: PathBuf,
}

impl Aws {
    fn new(moto: &Moto) -> Self {
        let mut env: Vec<(String, String)> = [
            ("AWS_ENDPOINT_URL", moto.endpoint().as_str()),
            ("AWS_ACCESS_KEY_ID", "testing"),
            ("AWS_SECRET_ACCESS_KEY", "testing"),
            ("AWS_DEFAULT_REGION", REGION),
            ("AWS_REGION", REGION),
            ("AWS_CONFIG_FILE", "/dev/null"),
            ("AWS_SHARED_CREDENTIALS_FILE", "/dev/null"),
            ("AWS_EC2_METADATA_DISABLED", "true"),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        // `make layer` runs cargo: the toolchain this test was built with.
        for name in [
            "HOME",
            "CARGO",
            "CARGO_HOME",
            "RUSTUP_HOME",
            "RUSTUP_TOOLCHAIN",
            "CARGO_TARGET_DIR",
        ] {
            if let Ok(value) = std::env::var(name) {
                env.push((name.to_owned(), value));
            }
        }
        let cli = workspace().join(".venv/bin/aws");
        assert!(
            cli.exists(),
            "{} not found: run `make venv` (or `make test`)",
            cli.display()
        );
        Self { env, cli }
    }

    async fn run(&self, program: impl AsRef<Path>, args: &[&str], extra: &[(&str, &str)]) -> Ran {
        let mut env: Vec<(&str, &str)> = self
            .env
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_str()))
            .collect();
        env.extend_from_slice(extra);
        process::run(program.as_ref(), args, Some(&workspace()), &env).await
    }

    /// `aws ARGS --output json`, which must succeed; its answer.
    async fn json(&self, args: &[&str]) -> Value {
        let mut args = args.to_vec();
        args.extend(["--output", "json"]);
        let ran = self.run(&self.cli, &args, &[]).await;
        assert!(ran.success(), "aws {args:?}:\n{}", ran.text());
        ran.json()
    }

    async fn make(&self, args: &[&str]) -> Ran {
        let mut all = vec!["--no-print-directory", "-C"];
        let root = workspace();
        all.push(root.to_str().expect("a UTF-8 path"));
        all.extend_from_slice(args);
        self.run("make", &all, &[]).await
    }
}

/// `deploy/layer.yaml`'s CompatibleRuntimes: each layer's flow list, all of them equal.
fn stack_runtimes() -> Vec<String> {
    let stack = std::fs::read_to_string(workspace().join("deploy/layer.yaml")).expect("layer.yaml");
    let lists: Vec<Vec<String>> = stack
        .lines()
        .filter_map(|line| line.trim().strip_prefix("CompatibleRuntimes: ["))
        .map(|rest| {
            rest.trim_end_matches(']')
                .split(',')
                .map(|r| r.trim().to_owned())
                .collect()
        })
        .collect();
    assert_eq!(
        lists.len(),
        2,
        "one list per architecture in deploy/layer.yaml"
    );
    assert_eq!(
        lists[0], lists[1],
        "both architectures list the same runtimes"
    );
    assert!(lists[0].len() <= 15, "Lambda allows at most 15 runtimes");
    lists[0].clone()
}

/// The layer zip's size, its SHA-256 as Lambda gives it (base64), and its entry
/// `extensions/ssm-flags`: mode, ELF machine, and the newest glibc 2.x symbol version it needs.
async fn zip_facts(zip: &Path) -> Value {
    let script = r#"
import base64, hashlib, json, os, re, sys, zipfile
path = sys.argv[1]
data = open(path, "rb").read()
entry = zipfile.ZipFile(path).getinfo("extensions/ssm-flags")
elf = zipfile.ZipFile(path).read(entry)
print(json.dumps({
    "size": os.path.getsize(path),
    "sha256": base64.b64encode(hashlib.sha256(data).digest()).decode(),
    "mode": (entry.external_attr >> 16) & 0o777,
    "elf": elf[:4] == b"\x7fELF",
    "machine": int.from_bytes(elf[18:20], "little"),
    "glibc": max(int(v) for v in re.findall(rb"GLIBC_2\.([0-9]+)", elf)),
}))
"#;
    let ran = process::run(
        process::python(),
        &["-c", script, zip.to_str().expect("a UTF-8 path")],
        None,
        &[],
    )
    .await;
    assert!(ran.success(), "{}", ran.text());
    ran.json()
}

/// The one statement a layer version's policy holds for `sid`.
async fn statement(aws: &Aws, version: u64, sid: &str) -> Value {
    let answer = aws
        .json(&[
            "lambda",
            "get-layer-version-policy",
            "--layer-name",
            LAYER,
            "--version-number",
            &version.to_string(),
        ])
        .await;
    let policy: Value =
        serde_json::from_str(answer["Policy"].as_str().expect("a policy")).expect("policy JSON");
    let statements = policy["Statement"].as_array().expect("statements");
    statements
        .iter()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("no statement {sid} in {policy}"))
        .clone()
}

/// The layer version ARNs a function has, in order.
async fn layers_of(aws: &Aws, function: &str) -> Vec<String> {
    let config = aws
        .json(&[
            "lambda",
            "get-function-configuration",
            "--function-name",
            function,
        ])
        .await;
    config["Layers"]
        .as_array()
        .expect("layers")
        .iter()
        .map(|l| l["Arn"].as_str().expect("an ARN").to_owned())
        .collect()
}

fn arn(version: u64) -> String {
    format!("arn:aws:lambda:{REGION}:{ACCOUNT}:layer:{LAYER}:{version}")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn make_publish_layer_publishes_and_shares_then_the_cli_script_adds_it_to_a_function() {
    let moto = Moto::start().await;
    let aws = Aws::new(&moto);

    // Published with the build (a no-op when the zip is current).
    let started = Instant::now();
    let share = format!("SHARE_WITH_ACCOUNT={SHARED_WITH}");
    let ran = aws
        .make(&["publish-layer", "LAYER_ARCHS=x86_64", &share])
        .await;
    eprintln!(
        "make publish-layer (build included): {:.1} s",
        started.elapsed().as_secs_f64()
    );
    assert!(ran.success(), "make publish-layer:\n{}", ran.text());
    assert!(
        ran.stdout.contains(&format!("x86_64: {}", arn(1))),
        "{}",
        ran.stdout
    );

    let versions = aws
        .json(&["lambda", "list-layer-versions", "--layer-name", LAYER])
        .await;
    let versions = versions["LayerVersions"].as_array().expect("versions");
    assert_eq!(versions.len(), 1, "{versions:?}");
    let version = &versions[0];
    assert_eq!(version["LayerVersionArn"], arn(1));
    assert_eq!(version["CompatibleArchitectures"], json!(["x86_64"]));
    assert_eq!(version["CompatibleRuntimes"], json!(stack_runtimes()));
    assert_eq!(version["LicenseInfo"], "MIT OR Apache-2.0");

    // What was published is the zip `make layer` wrote: the executable extension, for x86_64.
    let zip = workspace().join("target/lambda/x86_64/extensions/ssm-flags.zip");
    let facts = zip_facts(&zip).await;
    assert_eq!(facts["mode"], 0o755, "{facts}");
    assert_eq!(facts["elf"], true, "{facts}");
    assert_eq!(facts["machine"], 62, "EM_X86_64: {facts}");
    // The runtimes listed must be able to run it: Amazon Linux 2023's glibc is 2.34, Amazon
    // Linux 2's 2.26.
    let glibc = facts["glibc"].as_u64().expect("a glibc version");
    assert!(
        glibc <= 34,
        "the extension needs glibc 2.{glibc}: Amazon Linux 2023 has 2.34"
    );
    if glibc > 26 {
        for runtime in stack_runtimes() {
            assert!(
                !AMAZON_LINUX_2.contains(&runtime.as_str()),
                "{runtime} runs on Amazon Linux 2 (glibc 2.26), the extension needs glibc 2.{glibc}"
            );
        }
    }
    let published = aws
        .json(&[
            "lambda",
            "get-layer-version",
            "--layer-name",
            LAYER,
            "--version-number",
            "1",
        ])
        .await;
    assert_eq!(published["Content"]["CodeSize"], facts["size"]);
    assert_eq!(published["Content"]["CodeSha256"], facts["sha256"]);

    let shared = statement(&aws, 1, &format!("share-with-account-{SHARED_WITH}")).await;
    assert_eq!(shared["Action"], "lambda:GetLayerVersion", "{shared}");
    assert_eq!(shared["Principal"], SHARED_WITH, "{shared}");
    assert_eq!(shared["Effect"], "Allow", "{shared}");
    assert_eq!(shared["Resource"], arn(1), "{shared}");

    // The zip already built, published again and shared with an organization.
    let org = format!("SHARE_WITH_ORG={ORG}");
    let ran = aws
        .make(&[
            "publish-layer",
            "LAYER_ARCHS=x86_64",
            "LAYER_BUILD=no",
            &org,
        ])
        .await;
    assert!(ran.success(), "make publish-layer:\n{}", ran.text());
    assert!(
        ran.stdout.contains(&format!("x86_64: {}", arn(2))),
        "{}",
        ran.stdout
    );
    let shared = statement(&aws, 2, &format!("share-with-org-{ORG}")).await;
    assert_eq!(shared["Action"], "lambda:GetLayerVersion", "{shared}");
    assert_eq!(shared["Principal"], "*", "{shared}");
    // moto keeps the organization as given (AWS turns it into an aws:PrincipalOrgID condition).
    assert!(shared.to_string().contains(ORG), "{shared}");

    // A malformed account is refused before anything is published.
    let ran = aws
        .make(&[
            "publish-layer",
            "LAYER_ARCHS=x86_64",
            "LAYER_BUILD=no",
            "SHARE_WITH_ACCOUNT=12345",
        ])
        .await;
    assert!(!ran.success(), "{}", ran.text());
    assert!(
        ran.stderr.contains("SHARE_WITH_ACCOUNT: 12345"),
        "{}",
        ran.stderr
    );
    let versions = aws
        .json(&["lambda", "list-layer-versions", "--layer-name", LAYER])
        .await;
    assert_eq!(versions["LayerVersions"].as_array().map(Vec::len), Some(2));

    add_the_layer_to_an_existing_function(&aws).await;
}

/// `examples/add-layer/aws-cli.sh` on a function that already has another layer, version 1 of
/// ours and a variable of its own.
async fn add_the_layer_to_an_existing_function(aws: &Aws) {
    let scratch = std::env::temp_dir().join(format!("ssm-flags-add-layer-{}", std::process::id()));
    std::fs::create_dir_all(&scratch).expect("scratch directory");
    let code = scratch.join("function.zip");
    let ran = process::run(
        process::python(),
        &[
            "-c",
            "import sys, zipfile; zipfile.ZipFile(sys.argv[1], 'w').writestr('bootstrap', '#!/bin/sh\\n')",
            code.to_str().expect("a UTF-8 path"),
        ],
        None,
        &[],
    )
    .await;
    assert!(ran.success(), "{}", ran.text());
    let code_arg = format!("fileb://{}", code.display());

    let other = aws
        .json(&[
            "lambda",
            "publish-layer-version",
            "--layer-name",
            "other-layer",
            "--zip-file",
            &code_arg,
        ])
        .await;
    let other = other["LayerVersionArn"]
        .as_str()
        .expect("an ARN")
        .to_owned();
    let trust = json!({"Version": "2012-10-17", "Statement": [{"Effect": "Allow",
        "Principal": {"Service": "lambda.amazonaws.com"}, "Action": "sts:AssumeRole"}]});
    let role = aws
        .json(&[
            "iam",
            "create-role",
            "--role-name",
            "existing-function-role",
            "--path",
            "/service-role/",
            "--assume-role-policy-document",
            &trust.to_string(),
        ])
        .await;
    let role = role["Role"]["Arn"].as_str().expect("a role ARN").to_owned();
    aws.json(&[
        "lambda",
        "create-function",
        "--function-name",
        "existing",
        "--runtime",
        "provided.al2023",
        "--handler",
        "bootstrap",
        "--architectures",
        "x86_64",
        "--role",
        &role,
        "--zip-file",
        &code_arg,
        "--layers",
        &other,
        &arn(1),
        "--environment",
        "Variables={EXISTING=kept}",
    ])
    .await;

    let script = workspace().join("examples/add-layer/aws-cli.sh");
    let cli = aws.cli.to_str().expect("a UTF-8 path");
    let new_arn = arn(2);
    let variables = [
        ("FUNCTION_NAME", "existing"),
        ("LAYER_ARN", new_arn.as_str()),
        ("SSM_FLAGS_PATH", "/myapp/test/features"),
        ("AWS", cli),
    ];

    // Without a layer ARN: refused, naming it, the function untouched.
    let ran = aws
        .run(&script, &[], &[variables[0], variables[2], variables[3]])
        .await;
    assert!(!ran.success(), "{}", ran.text());
    assert!(ran.stderr.contains("LAYER_ARN"), "{}", ran.stderr);
    assert_eq!(layers_of(aws, "existing").await, [other.clone(), arn(1)]);

    // Twice: the second run changes nothing.
    for run in 1..=2 {
        let ran = aws.run(&script, &[], &variables).await;
        assert!(ran.success(), "aws-cli.sh (run {run}):\n{}", ran.text());

        assert_eq!(
            layers_of(aws, "existing").await,
            [other.clone(), new_arn.clone()],
            "run {run}"
        );
        let config = aws
            .json(&[
                "lambda",
                "get-function-configuration",
                "--function-name",
                "existing",
            ])
            .await;
        assert_eq!(
            config["Environment"]["Variables"],
            json!({"EXISTING": "kept", "SSM_FLAGS_PATH": "/myapp/test/features"}),
            "run {run}"
        );

        let policy = aws
            .json(&[
                "iam",
                "get-role-policy",
                "--role-name",
                "existing-function-role",
                "--policy-name",
                "ssm-flags-read",
            ])
            .await;
        let path = format!("arn:aws:ssm:{REGION}:{ACCOUNT}:parameter/myapp/test/features");
        let statements = &policy["PolicyDocument"]["Statement"];
        assert_eq!(
            *statements,
            json!([
                {"Sid": "ReadFlagsPath", "Effect": "Allow",
                 "Action": "ssm:GetParametersByPath", "Resource": path},
                {"Sid": "CheckVanishedFlags", "Effect": "Allow",
                 "Action": "ssm:GetParameters", "Resource": format!("{path}/*")},
            ]),
            "run {run}: {policy}"
        );
    }
    let _ = std::fs::remove_dir_all(&scratch);
}

/// Every code block of `docs/src/add-the-layer.md` under `<!-- quoted from PATH -->` is an exact
/// run of whole lines of that file, and every checked example is quoted.
#[test]
fn the_layer_page_quotes_the_checked_files() {
    let root = workspace();
    let page = std::fs::read_to_string(root.join("docs/src/add-the-layer.md")).expect("the page");
    let mut quoted = Vec::new();
    let mut lines = page.lines();
    while let Some(line) = lines.next() {
        let Some(path) = line
            .trim()
            .strip_prefix("<!-- quoted from ")
            .and_then(|rest| rest.strip_suffix(" -->"))
        else {
            continue;
        };
        let fence = lines.next().unwrap_or_default();
        assert!(
            fence.starts_with("```"),
            "{path}: the quote must be a code block right under the comment, found {fence:?}"
        );
        let block: Vec<&str> = lines.by_ref().take_while(|l| *l != "```").collect();
        let file = std::fs::read_to_string(root.join(path))
            .unwrap_or_else(|e| panic!("{path}, quoted by the page: {e}"));
        let file: Vec<&str> = file.lines().collect();
        assert!(!block.is_empty(), "{path}: an empty quote");
        assert!(
            file.windows(block.len()).any(|w| w == block.as_slice()),
            "docs/src/add-the-layer.md quotes {path}, but these lines are not in it as they are:\n{}",
            block.join("\n")
        );
        quoted.push(path.to_owned());
    }
    for checked in [
        "deploy/layer.yaml",
        "examples/add-layer/sam.yaml",
        "examples/add-layer/aws-cli.sh",
        "examples/add-layer/cdk/bin/app.ts",
        "examples/add-layer/main.tf",
    ] {
        assert!(
            quoted.iter().any(|q| q == checked),
            "docs/src/add-the-layer.md does not quote {checked}"
        );
    }
}
