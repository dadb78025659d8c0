//! `ssm-flags-ctl` on flagd flags, end to end: the real binary against moto (SSM, CloudWatch
//! alarms), with flags under a path marked `#flagd` — in document parameters and in parameters
//! of their own. `set` and `kill` change one flag's entry of a document and nothing else, print
//! an undo that restores it, and report a concurrent edit; `ramp` moves one variant's
//! `fractional` share under an alarm, and refuses a targeting without exactly one `fractional`.

use std::time::{Duration, Instant};

use aws_sdk_cloudwatch::types::{ComparisonOperator, StateValue, Statistic};
use aws_sdk_ssm::types::ParameterType;
use serde_json::{Value, json};
use testkit::ctl::{Ctl, finish};
use testkit::fault::{Fault, FaultProxy};
use testkit::lambda::{put, ssm_client};
use testkit::{Moto, endpoint};

const PATH: &str = "/shop/prod/flagd";
const MARKED: &str = "/shop/prod/flagd#flagd";
const DOC: &str = "/shop/prod/flagd/doc-a";

/// A document as an operator writes it: indented, a number no `f64` holds, two flags.
const DOCUMENT: &str = r#"{
  "$evaluators": {"gold": {"in": [{"var": "tier"}, ["gold"]]}},
  "metadata": {"ticket": 123456789012345678901234567890},
  "flags": {
    "checkout": {"state": "ENABLED", "defaultVariant": "new",
                 "variants": {"new": "new", "classic": "classic"},
                 "targeting": {"if": [{"$ref": "gold"}, "new", "classic"]}},
    "banner": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}
  }
}"#;

async fn value(ssm: &aws_sdk_ssm::Client, name: &str) -> (String, i64) {
    let answer = ssm
        .get_parameter()
        .name(name)
        .with_decryption(true)
        .send()
        .await
        .expect("GetParameter");
    let p = answer.parameter().expect("parameter");
    (p.value().unwrap_or_default().to_owned(), p.version())
}

fn flag_of(document: &str, key: &str) -> Value {
    let document: Value = serde_json::from_str(document).expect("JSON");
    document["flags"][key].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn set_and_kill_change_one_flag_of_a_document_and_print_an_undo() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    put(&ssm, DOC, DOCUMENT, ParameterType::String).await;
    let solo = json!({"state": "ENABLED", "variants": {"on": true, "off": false},
                      "defaultVariant": "on", "targeting": {"if": [{"var": "beta"}, "on", "off"]}});
    put(
        &ssm,
        &format!("{PATH}/solo"),
        &solo.to_string(),
        ParameterType::String,
    )
    .await;
    let ctl = Ctl::new(moto.port).env("SSM_FLAGS_PATH", MARKED);

    // set: the banner's entry alone changes; the rest of the document keeps every byte.
    let banner =
        r#"{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}"#;
    let ran = ctl.run(&["set", "banner", banner]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let (now, version) = value(&ssm, DOC).await;
    assert_eq!(version, 2);
    assert_eq!(
        flag_of(&now, "banner"),
        serde_json::from_str::<Value>(banner).expect("JSON")
    );
    let untouched = DOCUMENT.replace(
        r#"{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}"#,
        "",
    );
    let now_without = now.replace(
        &serde_json::to_string(&flag_of(&now, "banner")).expect("json"),
        "",
    );
    assert_eq!(now_without, untouched, "every other byte as stored");

    // An invalid definition is refused, naming the field; SSM is unchanged.
    let broken = r#"{"state": "ENABLED", "variants": {"on": true}, "defaultVariant": "on", "targeting": {"like": [1, 2]}}"#;
    let ran = ctl.run(&["set", "banner", broken]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    assert!(
        ran.stderr.contains("unknown operator `like`"),
        "{}",
        ran.stderr
    );
    assert_eq!(value(&ssm, DOC).await.1, 2);

    // kill: the default variant is the one named, the targeting goes; the undo restores both.
    let ran = ctl.run(&["kill", "checkout", "--variant", "classic"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let (now, version) = value(&ssm, DOC).await;
    assert_eq!(version, 3);
    let killed = flag_of(&now, "checkout");
    assert_eq!(killed["defaultVariant"], "classic");
    assert!(killed.get("targeting").is_none(), "{killed}");
    let undo = ran
        .stdout
        .lines()
        .find_map(|l| l.strip_prefix("undo: "))
        .expect("an undo line");
    let prefix = format!("ssm-flags-ctl --path '{MARKED}' set 'checkout' '");
    let old = undo
        .strip_prefix(&prefix)
        .and_then(|rest| rest.strip_suffix('\''))
        .unwrap_or_else(|| panic!("an undo that sets the old definition: {undo}"));
    let ran = ctl.run(&["set", "checkout", old]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let restored = flag_of(&value(&ssm, DOC).await.0, "checkout");
    assert_eq!(
        restored,
        flag_of(DOCUMENT, "checkout"),
        "default variant and targeting back"
    );

    // A boolean flag of its own: its `false` variant; one without a `false` variant needs
    // --variant.
    let ran = ctl.run(&["kill", "solo"]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let (solo_now, version) = value(&ssm, &format!("{PATH}/solo")).await;
    assert_eq!(version, 2);
    let solo_now: Value = serde_json::from_str(&solo_now).expect("JSON");
    assert_eq!(solo_now["defaultVariant"], "off");
    assert!(solo_now.get("targeting").is_none());
    let ran = ctl.run(&["kill", "checkout"]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    assert!(ran.stderr.contains("--variant"), "{}", ran.stderr);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_concurrent_edit_of_a_document_is_reported() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    put(&ssm, DOC, DOCUMENT, ParameterType::String).await;
    // Every call through the proxy takes 4 s: another writer changes the document after this
    // command read it (list, GetParameter, DescribeParameters: 3 answers) and before its write
    // (held 4 s by the proxy: room for a busy machine).
    let proxy = FaultProxy::start(moto.port).await;
    proxy.set(Fault::Slow(Duration::from_secs(4)));
    let ctl = Ctl::new(moto.port)
        .env("SSM_FLAGS_PATH", MARKED)
        .env("AWS_ENDPOINT_URL", &endpoint(proxy.port));
    let banner =
        r#"{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}"#;
    let child = ctl.spawn(&["set", "banner", banner]);
    let deadline = Instant::now() + Duration::from_secs(60);
    while proxy
        .counts()
        .forwarded
        .load(std::sync::atomic::Ordering::Relaxed)
        < 3
    {
        assert!(
            Instant::now() < deadline,
            "the command never read the document"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let theirs = DOCUMENT.replace("\"classic\"]}}", "\"new\"]}}");
    put(&ssm, DOC, &theirs, ParameterType::String).await;
    let ran = finish(child).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    assert!(
        ran.stderr.contains("concurrent edit") && ran.stderr.contains("version 1"),
        "{}",
        ran.stderr
    );
    assert_eq!(
        value(&ssm, DOC).await.1,
        3,
        "read 1, theirs 2, this write 3"
    );
}

fn cloudwatch(port: u16) -> aws_sdk_cloudwatch::Client {
    let config = aws_sdk_cloudwatch::Config::builder()
        .behavior_version(aws_sdk_cloudwatch::config::BehaviorVersion::latest())
        .region(aws_sdk_cloudwatch::config::Region::new(
            testkit::lambda::REGION,
        ))
        .endpoint_url(endpoint(port))
        .credentials_provider(aws_sdk_cloudwatch::config::Credentials::new(
            "test", "test", None, None, "test",
        ))
        .build();
    aws_sdk_cloudwatch::Client::from_conf(config)
}

async fn set_alarm(cw: &aws_sdk_cloudwatch::Client, name: &str, state: StateValue) {
    cw.set_alarm_state()
        .alarm_name(name)
        .state_value(state)
        .state_reason("set by the test")
        .send()
        .await
        .expect("SetAlarmState");
}

/// The weights of the `search` flag's buckets.
async fn weights(ssm: &aws_sdk_ssm::Client) -> Value {
    let (raw, _) = value(ssm, &format!("{PATH}/experiments")).await;
    flag_of(&raw, "search")["targeting"]["fractional"].clone()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ramp_moves_one_variants_share_and_refuses_without_exactly_one_fractional() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    let cw = cloudwatch(moto.port);
    cw.put_metric_alarm()
        .alarm_name("search-errors")
        .namespace("Shop")
        .metric_name("SearchErrors")
        .statistic(Statistic::Sum)
        .period(60)
        .evaluation_periods(1)
        .threshold(1.0)
        .comparison_operator(ComparisonOperator::GreaterThanThreshold)
        .send()
        .await
        .expect("PutMetricAlarm");
    set_alarm(&cw, "search-errors", StateValue::Ok).await;
    let document = json!({"flags": {
        "search": {"state": "ENABLED", "variants": {"classic": "c", "semantic": "s"},
                   "defaultVariant": "classic",
                   "targeting": {"fractional": [["classic", 90], ["semantic", 10]]}},
        "two": {"state": "ENABLED", "variants": {"a": 1, "b": 2}, "defaultVariant": "a",
                "targeting": {"if": [{"var": "x"}, {"fractional": [["a", 50], ["b", 50]]},
                                     {"fractional": [["a", 10], ["b", 90]]}]}},
        "plain": {"state": "ENABLED", "variants": {"a": 1}, "defaultVariant": "a"}
    }});
    let start = document.to_string();
    put(
        &ssm,
        &format!("{PATH}/experiments"),
        &start,
        ParameterType::String,
    )
    .await;
    let ctl = Ctl::new(moto.port).env("SSM_FLAGS_PATH", MARKED);
    let ramp = |flag: &'static str, steps: &'static str, every: &'static str| {
        vec![
            "ramp",
            flag,
            "--variant",
            "semantic",
            "--steps",
            steps,
            "--every",
            every,
            "--check-every",
            "100ms",
            "--alarm",
            "search-errors",
        ]
    };

    for (flag, count) in [("two", "holds 2"), ("plain", "holds 0")] {
        let mut args = ramp(flag, "50", "1s");
        args[3] = "b";
        let ran = ctl.run(&args).await;
        assert_eq!(ran.code, Some(1), "{}", ran.text());
        assert!(ran.stderr.contains(count), "{flag}: {}", ran.stderr);
    }
    assert_eq!(
        value(&ssm, &format!("{PATH}/experiments")).await.1,
        1,
        "nothing written"
    );

    let ran = ctl.run(&ramp("search", "25,50", "1s")).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    assert_eq!(
        weights(&ssm).await,
        json!([["classic", 50], ["semantic", 50]])
    );
    let (after, version) = value(&ssm, &format!("{PATH}/experiments")).await;
    assert_eq!(version, 3, "start, 25%, 50%");
    assert_eq!(
        flag_of(&after, "two"),
        document["flags"]["two"],
        "other flags untouched"
    );

    // An alarm during a step rolls the whole document back to the ramp's start.
    let child = ctl.spawn(&ramp("search", "60,70", "30s"));
    let deadline = Instant::now() + Duration::from_secs(30);
    while weights(&ssm).await != json!([["classic", 40], ["semantic", 60]]) {
        assert!(Instant::now() < deadline, "the ramp never reached 60%");
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    set_alarm(&cw, "search-errors", StateValue::Alarm).await;
    let ran = finish(child).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    assert_eq!(
        weights(&ssm).await,
        json!([["classic", 50], ["semantic", 50]])
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn explain_shows_the_conditions_the_branch_and_the_bucket() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    let stories = std::fs::read_to_string(testkit::workspace().join("examples/flagd/stories.json"))
        .expect("the stories");
    put(
        &ssm,
        &format!("{PATH}/stories"),
        &stories,
        ParameterType::String,
    )
    .await;
    let ctl = Ctl::new(moto.port).env("SSM_FLAGS_PATH", MARKED);

    let gold = r#"{"tier": "gold", "app": {"version": "2.4.1"}}"#;
    let ran = ctl
        .run(&[
            "--json",
            "explain",
            "checkout",
            "--user",
            "tenant-9",
            "--context",
            gold,
        ])
        .await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let answer = ran.json();
    assert_eq!(answer["variant"], "new", "{answer}");
    assert_eq!(answer["reason"], "TARGETING_MATCH");
    assert_eq!(
        answer["conditions"],
        json!([{"field": "targeting.if[0]", "held": true}])
    );
    assert_eq!(answer["branch"], "targeting.if[1]");
    assert!(answer.get("bucket").is_none(), "{answer}");

    // String attributes (--attr): an older app is not matched; the split decides.
    let ran = ctl
        .run(&[
            "--json",
            "explain",
            "checkout",
            "--user",
            "user-7",
            "--attr",
            "tier=gold",
        ])
        .await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let answer = ran.json();
    assert_eq!(answer["reason"], "SPLIT", "{answer}");
    assert_eq!(
        answer["conditions"],
        json!([{"field": "targeting.if[0]", "held": false}])
    );
    assert_eq!(answer["branch"], "targeting.if[2]");
    let point = answer["bucket"]["point"].as_u64().expect("a bucket point");
    assert_eq!(answer["bucket"]["total"], 100);
    let expected = match point {
        0..33 => "classic",
        33..66 => "compact",
        _ => "express",
    };
    assert_eq!(
        answer["variant"], expected,
        "the point falls in the variant's range"
    );

    // Text for people; --context and --attr together is a usage error.
    let ran = ctl.run(&["explain", "checkout", "--user", "user-7"]).await;
    assert!(
        ran.stdout.contains("branch taken: targeting.if[2]"),
        "{}",
        ran.stdout
    );
    assert!(
        ran.stdout.contains("fractional: bucket point"),
        "{}",
        ran.stdout
    );
    let ran = ctl
        .run(&["explain", "checkout", "--attr", "a=b", "--context", "{}"])
        .await;
    assert_eq!(ran.code, Some(2), "{}", ran.text());
}

/// `export` writes flagd flags into the snapshot file's `flagd` field (what
/// `SSM_FLAGS_FALLBACK_FILE` and `flags::load_file` read back); `diff` compares a flagd flag field
/// by field, wherever each source keeps it — a document in one, a parameter of its own in the
/// other.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn export_and_diff_handle_flagd_flags_and_documents() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    put(&ssm, DOC, DOCUMENT, ParameterType::String).await;
    let staging = "/shop/staging/flagd";
    let mut banner = flag_of(DOCUMENT, "banner");
    banner["defaultVariant"] = json!("off");
    put(
        &ssm,
        &format!("{staging}/banner"),
        &banner.to_string(),
        ParameterType::String,
    )
    .await;
    let ctl = Ctl::new(moto.port);

    let dir = std::env::temp_dir().join(format!("ctl-flagd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("dir");
    let file = dir.join("flags.json");
    let file_arg = file.to_str().expect("utf-8");
    let ran = ctl.run(&["export", MARKED, "-o", file_arg]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    let snapshot = std::sync::Arc::new(flags::wire::read_file(&file).expect("the file loads"));
    let gold = serde_json::Map::from_iter([("tier".to_owned(), json!("gold"))]);
    let user = flags::Context::user("u1").with_fields(&gold);
    assert_eq!(snapshot.get("checkout").string_for(&user), Some("new"));
    assert_eq!(snapshot.get("banner").bool_for(&user), Some(true));
    let written: Value =
        serde_json::from_str(&std::fs::read_to_string(&file).expect("read")).expect("JSON");
    assert!(written["flagd"]["checkout"]["definition"]["$evaluators"]["gold"].is_object());

    let staging_marked = format!("{staging}#flagd");
    let ran = ctl.run(&["--json", "diff", MARKED, &staging_marked]).await;
    assert_eq!(ran.code, Some(1), "differences exit 1: {}", ran.text());
    let report = ran.json();
    assert_eq!(report["removed"], json!(["checkout"]), "{report}");
    let changed = &report["changed"][0];
    assert_eq!(changed["flag"], "banner");
    // Field by field, not the whole document: the default variant, and the flag set's metadata
    // the document gives its flags (the parameter of its own has none).
    let fields: Vec<&str> = changed["changes"]
        .as_array()
        .map(|c| c.iter().filter_map(|c| c["field"].as_str()).collect())
        .unwrap_or_default();
    assert_eq!(fields, ["$flagSetMetadata", "defaultVariant"], "{report}");
    assert_eq!(
        changed["changes"][1],
        json!({"field": "defaultVariant", "old": "\"on\"", "new": "\"off\""})
    );
    let _ = std::fs::remove_dir_all(&dir);
}
