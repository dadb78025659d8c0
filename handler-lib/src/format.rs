//! How a source's values are read. A format is declared — a marker after the source
//! (`/myapp/prod/flags#flagd`, `app/env/profile#flagd-v2`, `app/env/profile#powertools`) or
//! flagd's `$schema` in a document —
//! never guessed from a value's shape: a seed JSON flag may hold any field (`state`,
//! `variants`) as config, and must keep its meaning.

use serde_json::Value;

use crate::flagd::Bucketing;

/// The format of a source's values.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Format {
    /// The seed's formats: booleans, JSON rules flags, lists, text (see [`crate::FlagValue`]).
    #[default]
    Seed,
    /// OpenFeature's flag definition format (flagd's): every value is a flag document
    /// (`{"flags": {…}}`, contributing each flag by its key) or a single flag object (one flag
    /// named after its parameter), bucketed as given.
    Flagd(Bucketing),
    /// Powertools for AWS Lambda's feature-flags schema: every value is a document of features
    /// (`{"premium": {"default": false, "rules": {…}}}`), each feature a flag named by its key
    /// (see [`crate::flagd::powertools`]), after the envelope when one is configured.
    Powertools,
}

/// A marker that names no format.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error(
    "{given:?} carries the unknown format marker \"#{marker}\" (known: #flagd, #flagd-v2, #powertools)"
)]
pub struct UnknownFormat {
    /// The source as written.
    pub given: String,
    /// The marker after `#`.
    pub marker: String,
}

impl Format {
    /// Splits a source as configured into the source and its declared format: `/a/b#flagd` →
    /// (`/a/b`, flagd with v3 bucketing); `/a/b#flagd-v2` → v2; `/a/b` → the seed's formats.
    pub fn split(raw: &str) -> Result<(&str, Format), UnknownFormat> {
        let Some((source, marker)) = raw.rsplit_once('#') else {
            return Ok((raw, Format::Seed));
        };
        let format = match marker.trim() {
            "flagd" => Format::Flagd(Bucketing::V3),
            "flagd-v2" => Format::Flagd(Bucketing::V2),
            "powertools" => Format::Powertools,
            other => {
                return Err(UnknownFormat {
                    given: raw.trim().to_owned(),
                    marker: other.to_owned(),
                });
            }
        };
        Ok((source.trim_end(), format))
    }

    /// The marker that declares this format (`#flagd`, `#flagd-v2`, `#powertools`), or `""`.
    pub fn marker(self) -> &'static str {
        match self {
            Format::Seed => "",
            Format::Flagd(Bucketing::V3) => "#flagd",
            Format::Flagd(Bucketing::V2) => "#flagd-v2",
            Format::Powertools => "#powertools",
        }
    }
}

/// Whether `value` is a flagd document by its own declaration: an object whose `$schema` is
/// flagd's published flag-definition schema (`https://flagd.dev/schema/v0/flags.json`, any
/// schema version). Such a document reads as flagd (v3 bucketing) wherever it is found.
pub fn declares_flagd(value: &Value) -> bool {
    value
        .get("$schema")
        .and_then(Value::as_str)
        .is_some_and(is_flagd_schema)
}

/// Whether `url` is flagd's flag-definition schema.
pub fn is_flagd_schema(url: &str) -> bool {
    let Some(rest) = url
        .strip_prefix("https://flagd.dev/schema/v")
        .or_else(|| url.strip_prefix("http://flagd.dev/schema/v"))
    else {
        return false;
    };
    rest.split_once('/').is_some_and(|(version, file)| {
        !version.is_empty() && version.bytes().all(|b| b.is_ascii_digit()) && file == "flags.json"
    })
}

/// Whether a raw value carries flagd's `$schema` (parsed only when it could: an object).
pub fn raw_declares_flagd(raw: &str) -> bool {
    let raw = raw.trim_start();
    raw.starts_with('{')
        && raw.contains("flagd.dev/schema")
        && serde_json::from_str::<Value>(raw).is_ok_and(|v| declares_flagd(&v))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn markers_declare_the_format_and_an_unknown_one_is_named() {
        assert_eq!(Format::split("/a/b"), Ok(("/a/b", Format::Seed)));
        assert_eq!(
            Format::split("/a/b#flagd"),
            Ok(("/a/b", Format::Flagd(Bucketing::V3)))
        );
        assert_eq!(
            Format::split("app/env/profile#flagd-v2"),
            Ok(("app/env/profile", Format::Flagd(Bucketing::V2)))
        );
        let err = Format::split("/a/b#flagdv2").expect_err("unknown");
        assert_eq!(
            err.to_string(),
            "\"/a/b#flagdv2\" carries the unknown format marker \"#flagdv2\" (known: #flagd, #flagd-v2, #powertools)"
        );
        assert_eq!(
            Format::split("app/env/features#powertools"),
            Ok(("app/env/features", Format::Powertools))
        );
        for format in [
            Format::Flagd(Bucketing::V3),
            Format::Flagd(Bucketing::V2),
            Format::Powertools,
        ] {
            let marked = format!("/x{}", format.marker());
            assert_eq!(Format::split(&marked), Ok(("/x", format)));
        }
    }

    #[test]
    fn only_flagds_schema_declares_a_document() {
        assert!(declares_flagd(
            &json!({"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": {}})
        ));
        assert!(declares_flagd(
            &json!({"$schema": "https://flagd.dev/schema/v1/flags.json"})
        ));
        for other in [
            json!({"flags": {}}),
            json!({"$schema": "https://json-schema.org/draft/2020-12/schema"}),
            json!({"$schema": "https://flagd.dev/schema/v0/targeting.json"}),
            json!({"$schema": "https://flagd.dev.evil.example/schema/v0/flags.json"}),
            json!({"$schema": 1}),
            json!(["$schema"]),
        ] {
            assert!(!declares_flagd(&other), "{other}");
        }
        assert!(raw_declares_flagd(
            r#" {"$schema": "https://flagd.dev/schema/v0/flags.json", "flags": {}}"#
        ));
        assert!(!raw_declares_flagd(
            r#"{"enabled": true, "note": "flagd.dev/schema"}"#
        ));
        assert!(!raw_declares_flagd("true"));
    }
}
