//! From fetched parameters to a snapshot's entries: each parameter read in its source's
//! declared [`Format`], and every name defined twice resolved by one documented precedence,
//! never silently.
//!
//! Precedence, highest last: sources in their configured order (a later path wins; AppConfig
//! profiles come after every path); within one source, a flag defined inside a document loses
//! to a parameter of its own (a plain parameter, or a single flagd flag object), and documents
//! tie-break by parameter name (the name that sorts last wins). Each losing definition is a
//! [`Shadowed`]: health lists them and `lint` reports them.

use std::collections::HashMap;
use std::sync::Arc;

use serde_json::Value;

use crate::appconfig;
use crate::error::{Problem, kind_of};
use crate::flagd::powertools::Envelope;
use crate::flagd::{self, Bucketing};
use crate::format::{self, Format};
use crate::model::{FlagValue, Parameter, ParameterKind};
use crate::path::FlagPath;
use crate::snapshot::{FlagEntry, invalid};
pub use crate::wire::Shadowed;

/// The entries of a snapshot, one per name, and the definitions they hid.
#[derive(Debug, Default)]
pub struct Assembly {
    /// One entry per flag name, in name order.
    pub entries: Vec<FlagEntry>,
    /// Where each entry of `entries` (same index) comes from.
    pub origins: Vec<Origin>,
    /// Every hidden definition, by flag name then origin.
    pub shadowed: Vec<Shadowed>,
}

/// Where an entry was defined.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    /// The parameter's full name (or a profile's, a file's).
    pub parameter: String,
    /// Inside a flagd document (`true`), or the parameter's own flag.
    pub in_document: bool,
}

/// The configured sources in precedence order (a later one wins), each with its declared
/// format: SSM paths in their configured order, then AppConfig profiles in theirs.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Declared {
    paths: Vec<(FlagPath, Format)>,
    profiles: Vec<(String, Format)>,
    envelope: Option<Envelope>,
}

impl Declared {
    /// The paths and the profiles (`application/environment/profile`), each with its format.
    pub fn new(paths: Vec<(FlagPath, Format)>, profiles: Vec<(String, Format)>) -> Self {
        Self {
            paths,
            profiles,
            envelope: None,
        }
    }

    /// The envelope that selects each Powertools document from its value
    /// (`SSM_FLAGS_POWERTOOLS_ENVELOPE`).
    pub fn with_envelope(mut self, envelope: Option<Envelope>) -> Self {
        self.envelope = envelope;
        self
    }

    /// The Powertools envelope, if any.
    pub fn envelope(&self) -> Option<&Envelope> {
        self.envelope.as_ref()
    }

    /// Every source read in the seed's formats (no marker anywhere).
    pub fn seed(paths: &[FlagPath]) -> Self {
        Self::new(
            paths.iter().map(|p| (p.clone(), Format::Seed)).collect(),
            Vec::new(),
        )
    }

    /// The source number (its precedence) and format of a parameter, by its full name: a
    /// profile's (`appconfig:…`) or the path holding it. A name of no configured source (a
    /// test's) is source 0 in the seed's formats.
    pub fn of(&self, parameter_name: &str) -> (usize, Format) {
        if let Some(profile) = appconfig::profile_of(parameter_name)
            && let Some(i) = self.profiles.iter().position(|(p, _)| p == profile)
        {
            return (self.paths.len() + i, self.profiles[i].1);
        }
        self.paths
            .iter()
            .position(|(path, _)| path.flag_name(parameter_name).is_some())
            .map_or((0, Format::Seed), |i| (i, self.paths[i].1))
    }

    /// Whether any source is declared flagd.
    pub fn any_flagd(&self) -> bool {
        let flagd = |f: &Format| matches!(f, Format::Flagd(_));
        self.paths.iter().any(|(_, f)| flagd(f)) || self.profiles.iter().any(|(_, f)| flagd(f))
    }

    /// Assembles `parameters`, each read as its source declares.
    pub fn assemble<'p>(&self, parameters: impl IntoIterator<Item = &'p Parameter>) -> Assembly {
        let mut assembler = Assembler::new().with_envelope(self.envelope.clone());
        for parameter in parameters {
            let (source, format) = self.of(&parameter.name);
            assembler.add(source, format, parameter);
        }
        assembler.finish()
    }
}

/// Why `parameter`, read in `format`, cannot be read as a flag document at all (not JSON, or a
/// document — `flags`, or flagd's `$schema` — whose top level is broken), or `None`. Such a
/// parameter would take every flag it defines out of the snapshot (and un-hide what they
/// shadowed): the extension serves its last good version instead.
pub fn broken_document(
    format: Format,
    parameter: &Parameter,
    envelope: Option<&Envelope>,
) -> Option<String> {
    let bucketing = match format {
        Format::Powertools => {
            // The whole document only (its features are read once, by the assembly); its
            // problems quote nothing from it but a secure one's.
            let secure = parameter.kind == ParameterKind::SecureString;
            return crate::flagd::powertools::select_document(&parameter.value, envelope)
                .err()
                .map(|problem| if secure { problem.redacted() } else { problem }.to_string());
        }
        Format::Flagd(bucketing) => bucketing,
        Format::Seed if format::raw_declares_flagd(&parameter.value) => Bucketing::V3,
        Format::Seed => return None,
    };
    if parameter.kind == ParameterKind::StringList {
        return None;
    }
    let document = match serde_json::from_str::<Value>(&parameter.value) {
        Ok(document) => document,
        Err(e) => return Some(format!("is not JSON: {e}")),
    };
    if document.get("flags").is_none() && !format::declares_flagd(&document) {
        return None;
    }
    flagd::parse_document(&document, bucketing)
        .err()
        .map(|problem| problem.redacted().to_string())
}

/// Where a candidate stands: higher wins.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Rank {
    source: usize,
    /// A parameter of its own beats a document's entry.
    own: bool,
    /// Documents tie-break by parameter name.
    origin: String,
}

/// Collects the definitions of every source, then resolves names ([`Assembler::finish`]).
#[derive(Debug, Default)]
pub struct Assembler {
    candidates: Vec<(Rank, FlagEntry)>,
    envelope: Option<Envelope>,
}

impl Assembler {
    /// An empty assembler.
    pub fn new() -> Self {
        Self::default()
    }

    /// Selects each Powertools document with `envelope` first.
    pub fn with_envelope(mut self, envelope: Option<Envelope>) -> Self {
        self.envelope = envelope;
        self
    }

    /// Reads `parameter` of source number `source` (its precedence: a later source wins) in
    /// that source's declared `format`. A value carrying flagd's `$schema` is a flagd document
    /// in any source.
    pub fn add(&mut self, source: usize, format: Format, parameter: &Parameter) {
        let secure = parameter.kind == ParameterKind::SecureString;
        let bucketing = match format {
            Format::Powertools => return self.add_powertools(source, parameter),
            Format::Flagd(bucketing) => bucketing,
            Format::Seed if format::raw_declares_flagd(&parameter.value) => Bucketing::V3,
            Format::Seed => {
                return self.add_entry(
                    source,
                    &parameter.name,
                    FlagEntry::from_parameter(parameter),
                );
            }
        };
        let own = |entry| (true, entry);
        let fail = |problem: Problem| {
            let problem = if secure { problem.redacted() } else { problem };
            let raw = if secure { "" } else { parameter.value.as_str() };
            own(FlagEntry::invalid(
                parameter.flag.as_str(),
                parameter.version,
                secure,
                raw,
                invalid(&parameter.name, problem),
            ))
        };
        let value = match parameter.kind {
            ParameterKind::StringList => Err(Problem::Definition {
                field: String::new(),
                problem: "a flagd source holds flag documents or flag objects, not a StringList"
                    .into(),
            }),
            _ => serde_json::from_str::<Value>(&parameter.value).map_err(|e| Problem::Definition {
                field: String::new(),
                problem: format!("is not JSON: {e}"),
            }),
        };
        let entries: Vec<(bool, FlagEntry)> = match value {
            Err(problem) => vec![fail(problem)],
            Ok(document)
                if document.get("flags").is_some() || format::declares_flagd(&document) =>
            {
                match FlagEntry::from_flagd_document(
                    &parameter.name,
                    parameter.version,
                    secure,
                    &document,
                    bucketing,
                ) {
                    Ok(entries) => entries.into_iter().map(|e| (false, e)).collect(),
                    Err(problem) => vec![fail(problem)],
                }
            }
            Ok(flag @ Value::Object(_)) => {
                match flagd::parse_flag(&parameter.flag, &flag, bucketing) {
                    Ok(definition) => vec![own(FlagEntry::valid(
                        parameter.flag.as_str(),
                        parameter.version,
                        secure,
                        FlagValue::Flagd(Arc::new(definition)),
                    ))],
                    Err(problem) => vec![fail(problem)],
                }
            }
            Ok(other) => vec![fail(Problem::Definition {
                field: String::new(),
                problem: format!(
                    "a flagd source holds flag documents or flag objects, got {}",
                    kind_of(&other)
                ),
            })],
        };
        for (is_own, entry) in entries {
            let rank = Rank {
                source,
                own: is_own,
                origin: parameter.name.clone(),
            };
            self.candidates.push((rank, entry));
        }
    }

    /// A Powertools document: an entry per feature; a value that is not a document at all is
    /// an error entry of the parameter's own name.
    fn add_powertools(&mut self, source: usize, parameter: &Parameter) {
        let secure = parameter.kind == ParameterKind::SecureString;
        let read = match parameter.kind {
            ParameterKind::StringList => Err(Problem::Definition {
                field: String::new(),
                problem: "a Powertools source holds feature documents, not a StringList".into(),
            }),
            _ => FlagEntry::from_powertools_document(
                &parameter.name,
                parameter.version,
                secure,
                &parameter.value,
                self.envelope.as_ref(),
            ),
        };
        let entries = match read {
            Ok(entries) => entries.into_iter().map(|e| (false, e)).collect(),
            Err(problem) => {
                let problem = if secure { problem.redacted() } else { problem };
                let raw = if secure { "" } else { parameter.value.as_str() };
                vec![(
                    true,
                    FlagEntry::invalid(
                        parameter.flag.as_str(),
                        parameter.version,
                        secure,
                        raw,
                        invalid(&parameter.name, problem),
                    ),
                )]
            }
        };
        for (own, entry) in entries {
            let rank = Rank {
                source,
                own,
                origin: parameter.name.clone(),
            };
            self.candidates.push((rank, entry));
        }
    }

    /// Adds an entry of its own parameter (named `origin`), already read.
    pub fn add_entry(&mut self, source: usize, origin: &str, entry: FlagEntry) {
        let rank = Rank {
            source,
            own: true,
            origin: origin.to_owned(),
        };
        self.candidates.push((rank, entry));
    }

    /// One entry per name, by precedence, and every definition hidden.
    pub fn finish(self) -> Assembly {
        let mut by_name: HashMap<Box<str>, Vec<(Rank, FlagEntry)>> = HashMap::new();
        for (rank, entry) in self.candidates {
            by_name
                .entry(Box::from(entry.name()))
                .or_default()
                .push((rank, entry));
        }
        let mut assembly = Assembly::default();
        let mut kept_entries = Vec::new();
        for (name, mut candidates) in by_name {
            // A stable sort: of two equal ranks (one parameter defining a name twice cannot
            // happen; a test's repeated entry can) the later added wins, as `Snapshot::new`.
            candidates.sort_by(|a, b| a.0.cmp(&b.0));
            let Some((kept, entry)) = candidates.pop() else {
                continue;
            };
            for (hidden, _) in candidates {
                assembly.shadowed.push(Shadowed {
                    flag: name.to_string(),
                    kept: kept.origin.clone(),
                    hidden: hidden.origin,
                });
            }
            let origin = Origin {
                parameter: kept.origin,
                in_document: !kept.own,
            };
            kept_entries.push((entry, origin));
        }
        kept_entries.sort_by(|a, b| a.0.name().cmp(b.0.name()));
        (assembly.entries, assembly.origins) = kept_entries.into_iter().unzip();
        assembly
            .shadowed
            .sort_by(|a, b| (&a.flag, &a.hidden).cmp(&(&b.flag, &b.hidden)));
        assembly
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parameter(name: &str, flag: &str, value: &str) -> Parameter {
        Parameter {
            flag: flag.into(),
            name: name.into(),
            kind: ParameterKind::String,
            value: value.into(),
            version: 1,
        }
    }

    fn doc(flags: &[(&str, bool)]) -> String {
        let flags: serde_json::Map<String, Value> = flags
            .iter()
            .map(|(key, on)| {
                let flag = serde_json::json!({
                    "state": "ENABLED",
                    "variants": {"on": true, "off": false},
                    "defaultVariant": if *on { "on" } else { "off" },
                });
                ((*key).to_owned(), flag)
            })
            .collect();
        serde_json::json!({ "flags": flags }).to_string()
    }

    fn on(assembly: &Assembly, name: &str) -> Option<bool> {
        let snapshot = crate::Snapshot::new(1, crate::Status::Ok, assembly.entries.clone());
        snapshot.get(name).bool_for(&crate::Context::new())
    }

    #[test]
    fn a_flagd_source_reads_documents_and_single_flags() {
        let flagd = Format::Flagd(Bucketing::V3);
        let mut assembler = Assembler::new();
        let a = parameter("/f/doc-a", "doc-a", &doc(&[("x", true), ("y", false)]));
        assembler.add(0, flagd, &a);
        let single = r#"{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "on"}"#;
        assembler.add(0, flagd, &parameter("/f/z", "z", single));
        let assembly = assembler.finish();
        let names: Vec<&str> = assembly.entries.iter().map(FlagEntry::name).collect();
        assert_eq!(names, ["x", "y", "z"]);
        assert_eq!(on(&assembly, "x"), Some(true));
        assert_eq!(on(&assembly, "y"), Some(false));
        assert_eq!(on(&assembly, "z"), Some(true));
        assert!(assembly.shadowed.is_empty());
    }

    #[test]
    fn a_seed_source_keeps_flagd_looking_fields_and_reads_a_schema_document() {
        let mut assembler = Assembler::new();
        let looks = r#"{"enabled": true, "state": "DISABLED", "variants": {"a": 1}}"#;
        assembler.add(0, Format::Seed, &parameter("/s/looks", "looks", looks));
        let declared = format!(
            r#"{{"$schema": "https://flagd.dev/schema/v0/flags.json", {}"#,
            &doc(&[("d", true)])[1..]
        );
        assembler.add(0, Format::Seed, &parameter("/s/doc", "doc", &declared));
        let assembly = assembler.finish();
        let snapshot = crate::Snapshot::new(1, crate::Status::Ok, assembly.entries.clone());
        assert!(
            snapshot.get("looks").enabled(),
            "a seed JSON flag keeps its meaning"
        );
        assert!(
            snapshot.get("d").enabled(),
            "$schema declares a document anywhere"
        );
        assert!(snapshot.get("doc").error().is_none() && !snapshot.get("doc").is_known());
    }

    #[test]
    fn precedence_is_source_then_own_parameter_then_document_name_and_never_silent() {
        let flagd = Format::Flagd(Bucketing::V3);
        let mut assembler = Assembler::new();
        // Source 0: two documents both define `n`; `doc-b` sorts last and wins among them, but
        // the parameter of its own named `n` beats both.
        assembler.add(
            0,
            flagd,
            &parameter("/f/doc-b", "doc-b", &doc(&[("n", true), ("m", true)])),
        );
        assembler.add(
            0,
            flagd,
            &parameter("/f/doc-a", "doc-a", &doc(&[("n", false), ("m", false)])),
        );
        let own = r#"{"state": "ENABLED", "variants": {"on": true, "off": false}, "defaultVariant": "off"}"#;
        assembler.add(0, flagd, &parameter("/f/n", "n", own));
        // Source 1 (a later path) defines `m` again.
        assembler.add(1, Format::Seed, &parameter("/later/m", "m", "false"));
        let assembly = assembler.finish();
        assert_eq!(
            on(&assembly, "n"),
            Some(false),
            "the parameter of its own wins"
        );
        let snapshot = crate::Snapshot::new(1, crate::Status::Ok, assembly.entries.clone());
        assert!(!snapshot.get("m").enabled(), "the later source wins");
        let hidden: Vec<(&str, &str, &str)> = assembly
            .shadowed
            .iter()
            .map(|s| (s.flag.as_str(), s.kept.as_str(), s.hidden.as_str()))
            .collect();
        assert_eq!(
            hidden,
            [
                ("m", "/later/m", "/f/doc-a"),
                ("m", "/later/m", "/f/doc-b"),
                ("n", "/f/n", "/f/doc-a"),
                ("n", "/f/n", "/f/doc-b"),
            ]
        );
        // Between documents alone, the later name wins.
        let mut assembler = Assembler::new();
        assembler.add(
            0,
            flagd,
            &parameter("/f/doc-b", "doc-b", &doc(&[("n", true)])),
        );
        assembler.add(
            0,
            flagd,
            &parameter("/f/doc-a", "doc-a", &doc(&[("n", false)])),
        );
        let assembly = assembler.finish();
        assert_eq!(on(&assembly, "n"), Some(true));
        assert_eq!(assembly.shadowed[0].hidden, "/f/doc-a");
    }

    #[test]
    fn a_bad_value_is_an_error_named_after_its_parameter_and_hides_nothing() {
        let flagd = Format::Flagd(Bucketing::V2);
        let mut assembler = Assembler::new();
        assembler.add(0, flagd, &parameter("/f/broken", "broken", "{not json"));
        assembler.add(0, flagd, &parameter("/f/number", "number", "5"));
        assembler.add(
            0,
            flagd,
            &parameter("/f/good", "good", &doc(&[("g", true)])),
        );
        let mut list = parameter("/f/list", "list", "a,b");
        list.kind = ParameterKind::StringList;
        assembler.add(0, flagd, &list);
        let mut secret = parameter(
            "/f/secret",
            "secret",
            r#"{"state": "NOPE", "token": "hunter2"}"#,
        );
        secret.kind = ParameterKind::SecureString;
        assembler.add(0, flagd, &secret);
        let assembly = assembler.finish();
        let snapshot = crate::Snapshot::new(1, crate::Status::Ok, assembly.entries.clone());
        assert_eq!(on(&assembly, "g"), Some(true));
        for (name, says) in [
            ("broken", "/f/broken"),
            ("number", "got a number"),
            ("list", "not a StringList"),
            ("secret", "/f/secret"),
        ] {
            let error = snapshot.get(name).error().map(ToString::to_string);
            let error = error.unwrap_or_else(|| panic!("{name} is an error"));
            assert!(error.contains(says), "{name}: {error}");
            assert!(!error.contains("hunter2"), "{error}");
        }
        let secret = snapshot.entry("secret").expect("an entry");
        assert_eq!(
            secret.invalid_raw(),
            Some(""),
            "a SecureString's value is never kept"
        );
    }

    #[test]
    fn a_document_broken_as_a_whole_is_told_apart_from_a_broken_flag() {
        let flagd = Format::Flagd(Bucketing::V3);
        let broken =
            |format, value: &str| broken_document(format, &parameter("/f/d", "d", value), None);
        assert!(broken(flagd, "{\"flags\": {").is_some_and(|why| why.contains("not JSON")));
        assert!(broken(flagd, r#"{"flags": [], "x": 1}"#).is_some());
        assert!(broken(flagd, &doc(&[("a", true)])).is_none());
        // One bad flag, or a single flag object: not the document's problem.
        assert!(broken(flagd, r#"{"flags": {"a": {"state": "NOPE"}}}"#).is_none());
        assert!(broken(flagd, r#"{"state": "NOPE"}"#).is_none());
        // A seed source: only a value declaring flagd's $schema is a document.
        assert!(broken(Format::Seed, "{not json").is_none());
        let declared = r#"{"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": 5}"#;
        assert!(broken(Format::Seed, declared).is_some());
    }

    #[test]
    fn a_variant_nested_past_what_readers_accept_is_refused_at_load() {
        // Readable as a parameter (127 levels), not once wrapped as a document for the wire (129).
        let deep = format!("{}1{}", "[".repeat(125), "]".repeat(125));
        let flag = format!(
            r#"{{"state": "ENABLED", "variants": {{"a": {deep}}}, "defaultVariant": "a"}}"#
        );
        assert!(
            serde_json::from_str::<Value>(&flag).is_ok(),
            "SSM's value reads"
        );
        let mut assembler = Assembler::new();
        assembler.add(
            0,
            Format::Flagd(Bucketing::V3),
            &parameter("/f/deep", "deep", &flag),
        );
        let snapshot = crate::Snapshot::new(1, crate::Status::Ok, assembler.finish().entries);
        let error = snapshot.get("deep").error().map(ToString::to_string);
        assert!(
            error.is_some_and(|e| e.contains("nest deeper")),
            "refused at load"
        );
    }

    #[test]
    fn a_powertools_source_reads_each_feature_through_the_envelope_and_keeps_bad_ones_apart() {
        let document = r#"{"app": {"features": {
            "premium": {"default": false, "rules": {"gold": {"when_match": true,
                "conditions": [{"action": "EQUALS", "key": "tier", "value": "gold"}]}}},
            "bad": {"default": "yes"}}}}"#;
        let envelope = Envelope::new("app.features").expect("valid");
        let mut assembler = Assembler::new().with_envelope(Some(envelope.clone()));
        assembler.add(0, Format::Powertools, &parameter("/p/doc", "doc", document));
        let assembly = assembler.finish();
        let names: Vec<&str> = assembly.entries.iter().map(FlagEntry::name).collect();
        assert_eq!(names, ["bad", "premium"]);
        let snapshot = Arc::new(crate::Snapshot::new(1, crate::Status::Ok, assembly.entries));
        let gold = serde_json::json!({"tier": "gold"});
        let gold = crate::Context::new().with_fields(gold.as_object().expect("object"));
        assert!(snapshot.get("premium").enabled_for(&gold));
        let error = snapshot.get("bad").error().map(ToString::to_string);
        assert!(
            error
                .as_deref()
                .is_some_and(|e| e.contains("/p/doc") && e.contains("bad.default")),
            "{error:?}"
        );
        // A value the envelope finds nothing in is a broken document: the last good is kept.
        let other = parameter("/p/doc", "doc", r#"{"elsewhere": {}}"#);
        let why = broken_document(Format::Powertools, &other, Some(&envelope));
        assert!(why.is_some_and(|w| w.contains("selects nothing")));
        assert!(
            broken_document(
                Format::Powertools,
                &parameter("/p/doc", "doc", document),
                Some(&envelope)
            )
            .is_none()
        );
    }
}
