//! `ssm-flags-ctl lint` on flagd flags, end to end: the real binary against moto SSM, a path
//! marked `#flagd` holding documents and flags of their own — validated against flagd's
//! published schema and for what a schema cannot see (a targeting answer naming no variant, a
//! `defaultVariant` naming none, a `$ref` to nothing, a split weighing nothing, a name defined
//! twice) — a seed path holding a flag that looks like flagd, and a flagd file, linted offline.

use aws_sdk_ssm::types::ParameterType;
use serde_json::{Value, json};
use testkit::Moto;
use testkit::ctl::Ctl;
use testkit::lambda::{put, ssm_client};

const PATH: &str = "/shop/prod/flagd";
const MARKED: &str = "/shop/prod/flagd#flagd";
const SEED: &str = "/shop/prod/features";

/// A clean document: no finding.
const GOOD: &str = r#"{
  "$evaluators": {"gold": {"in": [{"var": "tier"}, ["gold", "platinum"]]}},
  "flags": {
    "checkout": {"state": "ENABLED", "defaultVariant": "classic",
      "variants": {"new": "new", "classic": "classic", "compact": "compact"},
      "targeting": {"if": [{"$ref": "gold"}, "new",
        {"fractional": [["classic", 50], ["compact", 50]]}]}},
    "banner": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}
  }
}"#;

/// Breaks flagd's schema: variants of two types, a state that is none.
const BROKEN: &str = r#"{"flags": {
  "mixed": {"state": "ENABLED", "variants": {"a": true, "b": "b"}, "defaultVariant": "a"},
  "misstated": {"state": "ON", "variants": {"on": true, "off": false}, "defaultVariant": "on"}
}}"#;

/// Schema-valid documents and flags that still fail where the schema cannot see.
const SEMANTIC: &str = r#"{"flags": {
  "typo-default": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "of"},
  "dangling": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off",
    "targeting": {"if": [{"$ref": "beta-users"}, "on", "off"]}}
}}"#;

const GATE: &str = r#"{"state": "ENABLED", "variants": {"on": true, "off": false},
  "defaultVariant": "off", "targeting": {"if": [{"var": "beta"}, "gold", "off"]}}"#;

const ZERO_SPLIT: &str = r#"{"state": "ENABLED", "variants": {"a": "a", "b": "b"},
  "defaultVariant": "a", "targeting": {"fractional": [["a", 0], ["b", 0]]}}"#;

/// A parameter of its own named `banner`: hides `good`'s banner.
const BANNER: &str =
    r#"{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}"#;

fn findings(report: &Value) -> &Vec<Value> {
    report["findings"].as_array().expect("findings")
}

/// The findings about `flag`, as (severity, field, message).
fn about<'r>(report: &'r Value, flag: &str) -> Vec<(&'r str, Option<&'r str>, &'r str)> {
    findings(report)
        .iter()
        .filter(|f| f["flag"] == flag)
        .map(|f| {
            (
                f["severity"].as_str().expect("severity"),
                f["field"].as_str(),
                f["message"].as_str().expect("message"),
            )
        })
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn lint_checks_flagd_flags_against_the_schema_and_what_it_cannot_see() {
    let moto = Moto::start().await;
    let ssm = ssm_client(moto.port);
    for (name, value) in [
        ("good", GOOD),
        ("broken", BROKEN),
        ("semantic", SEMANTIC),
        ("gate", GATE),
        ("zero-split", ZERO_SPLIT),
        ("banner", BANNER),
    ] {
        put(
            &ssm,
            &format!("{PATH}/{name}"),
            value,
            ParameterType::String,
        )
        .await;
    }
    put(
        &ssm,
        &format!("{SEED}/dark-mode"),
        "true",
        ParameterType::String,
    )
    .await;
    put(
        &ssm,
        &format!("{SEED}/new-look"),
        r#"{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}"#,
        ParameterType::String,
    )
    .await;
    let ctl = Ctl::new(moto.port);

    let ran = ctl.run(&["--json", "lint", MARKED]).await;
    assert_eq!(ran.code, Some(1), "errors exit 1: {}", ran.text());
    let report = ran.json();

    // The clean document's flags: nothing to say.
    assert_eq!(about(&report, "checkout"), vec![], "{report:#}");

    // Schema violations: the parameter, the JSON pointer, and what the schema says.
    let mixed = about(&report, "mixed");
    assert_eq!(mixed.len(), 1, "{mixed:#?}");
    assert_eq!(mixed[0].0, "error");
    assert_eq!(mixed[0].1, Some("/flags/mixed/variants"));
    assert!(
        mixed[0].2.starts_with(&format!(
            "parameter {PATH}/broken: breaks flagd's schema at `/flags/mixed/variants`: the variants fit none of flagd's flag types"
        )),
        "{mixed:#?}"
    );
    // `misstated` breaks the model too: both say it, each in its own words.
    let misstated = about(&report, "misstated");
    assert!(
        misstated.iter().any(|(s, field, message)| *s == "error"
            && *field == Some("/flags/misstated/state")
            && message.contains("breaks flagd's schema")
            && message.contains(r#""ON" is not one of"#)),
        "{misstated:#?}"
    );
    assert!(
        misstated.iter().any(|(s, field, message)| *s == "error"
            && *field == Some("flags.misstated.state")
            && message.starts_with(&format!("parameter {PATH}/broken: `flags.misstated.state`"))),
        "{misstated:#?}"
    );

    // What the schema cannot see.
    assert_eq!(
        about(&report, "gate"),
        vec![(
            "error",
            Some("flags.gate.targeting.if[1]"),
            r#"parameter /shop/prod/flagd/gate: targeting can return "gold", which names no variant (variants: "off", "on"): whoever it reaches gets the handler's default (GENERAL)"#
        )]
    );
    assert_eq!(
        about(&report, "typo-default"),
        vec![(
            "error",
            Some("flags.typo-default.defaultVariant"),
            r#"parameter /shop/prod/flagd/semantic: `defaultVariant` "of" names no variant (variants: "off", "on"): wherever the default applies, handlers get their own default (GENERAL)"#
        )]
    );
    let dangling = about(&report, "dangling");
    assert_eq!(dangling.len(), 1, "{dangling:#?}");
    assert_eq!(dangling[0].0, "error");
    assert_eq!(dangling[0].1, Some("flags.dangling.targeting.if[0].$ref"));
    assert!(
        dangling[0]
            .2
            .contains("`$ref` to evaluator `beta-users`, which `$evaluators` does not define"),
        "{dangling:#?}"
    );
    let zero = about(&report, "zero-split");
    assert_eq!(zero.len(), 1, "{zero:#?}");
    assert_eq!(
        (zero[0].0, zero[0].1),
        ("error", Some("flags.zero-split.targeting.fractional"))
    );
    assert!(zero[0].2.contains("weighs 0"), "{zero:#?}");

    // A name defined twice: the parameter of its own is served, the document's entry hidden.
    assert_eq!(
        about(&report, "banner"),
        vec![(
            "warning",
            None,
            "`banner` is defined twice: the definition in /shop/prod/flagd/banner is served and the one in /shop/prod/flagd/good is hidden; remove or rename one"
        )]
    );
    let banner = findings(&report)
        .iter()
        .find(|f| f["flag"] == "banner")
        .expect("banner");
    assert_eq!(banner["parameter"], format!("{PATH}/good"));
    let errors = findings(&report)
        .iter()
        .filter(|f| f["severity"] == "error")
        .count();
    assert_eq!(report["errors"], errors, "{report:#}");
    assert_eq!(errors, 7, "{report:#}");

    // The table names the same.
    let ran = ctl.run(&["lint", MARKED]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    for text in [
        "/flags/mixed/variants",
        "flags.gate.targeting.if[1]",
        "`banner` is defined twice",
    ] {
        assert!(ran.stdout.contains(text), "{text}: {}", ran.stdout);
    }

    // Unmarked, the same path is a seed source: no schema, every document a seed JSON flag.
    let ran = ctl.run(&["--json", "lint", PATH]).await;
    assert!(
        !ran.stdout.contains("flagd's schema"),
        "a seed source is not validated as flagd: {}",
        ran.stdout
    );

    // A seed flag that looks like flagd keeps its seed meaning; lint says how to declare it.
    let ran = ctl.run(&["--json", "lint", SEED]).await;
    assert_eq!(ran.code, Some(0), "warnings alone exit 0: {}", ran.text());
    let report = ran.json();
    let look = about(&report, "new-look");
    assert!(
        look.iter().any(|(s, field, message)| *s == "warning"
            && field.is_none()
            && message.starts_with("looks like a flagd flag")
            && message.contains(&format!("{SEED}#flagd"))
            && message.contains("https://flagd.dev/schema/v0/flags.json")),
        "{look:#?}"
    );
    assert_eq!(about(&report, "dark-mode"), vec![]);
    assert_eq!(ctl.run(&["lint", "--strict", SEED]).await.code, Some(1));

    // Marked, it is a flagd flag, and a clean one.
    put(
        &ssm,
        &format!("{SEED}/dark-mode"),
        BANNER,
        ParameterType::String,
    )
    .await;
    let ran = ctl.run(&["--json", "lint", &format!("{SEED}#flagd")]).await;
    assert_eq!(ran.code, Some(0), "{}", ran.text());
    assert_eq!(findings(&ran.json()).len(), 0, "{}", ran.stdout);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_flagd_file_is_linted_offline() {
    let dir = std::env::temp_dir().join(format!("lint-flagd-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let file = dir.join("flags.json");
    let document = json!({
        "$schema": "https://flagd.dev/schema/v0/flags.json",
        "flags": {
            "fine": {"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"},
            "split": {"state": "ENABLED", "variants": {"a": "a", "b": "b"}, "defaultVariant": "a",
                "targeting": {"fractional": [["a", 50], ["c", 50]]}},
            "typed": {"state": "ENABLED", "variants": {"low": 1, "none": null}, "defaultVariant": "low"}
        }
    });
    std::fs::write(&file, document.to_string()).expect("write");
    // No endpoint answers: a file needs no AWS (and the schema is compiled in).
    let ctl = Ctl::new(testkit::free_port());
    let path = file.display().to_string();

    let ran = ctl.run(&["--json", "lint", &path]).await;
    assert_eq!(ran.code, Some(1), "{}", ran.text());
    let report = ran.json();
    assert_eq!(about(&report, "fine"), vec![], "{report:#}");
    let unknown = format!(
        r#"parameter {path}: targeting can return "c", which names no variant (variants: "a", "b"): whoever it reaches gets the handler's default (GENERAL)"#
    );
    assert_eq!(
        about(&report, "split"),
        vec![(
            "error",
            Some("flags.split.targeting.fractional[1][0]"),
            unknown.as_str()
        )]
    );
    let typed = about(&report, "typed");
    assert_eq!(typed.len(), 1, "{typed:#?}");
    // The closest flag type (a number flag) names the variant that breaks it.
    assert_eq!(typed[0].1, Some("/flags/typed/variants/none"));
    assert_eq!(
        typed[0].2,
        format!(
            r#"parameter {path}: breaks flagd's schema at `/flags/typed/variants/none`: null is not of type "number""#
        ),
        "{typed:#?}"
    );
    std::fs::remove_dir_all(&dir).ok();
}
