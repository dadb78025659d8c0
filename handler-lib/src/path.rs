//! Flag paths and flag names: the one rule for naming a flag after its parameter.
//!
//! A path is normalised once ([`FlagPath::parse`]): it starts with `/`, has no empty segment,
//! and has no trailing `/` (except the root `/`). A flag's name is its parameter's name relative
//! to the path, nested segments included: under `/myapp/prod/features`, the parameter
//! `/myapp/prod/features/checkout/v2` is the flag `checkout/v2`; under `/`, `/dark-mode` is
//! `dark-mode`. A parameter outside the path has no flag name there.

use std::fmt;

/// Why a path cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PathError {
    /// An empty entry in a comma-separated list, or an empty path.
    #[error("contains an empty path")]
    Empty,
    /// A path that does not start with `/`.
    #[error("path {0:?} must start with '/'")]
    Relative(String),
    /// A path with an empty segment (`//`) or whitespace.
    #[error("path {0:?} must not contain '//' or spaces")]
    Malformed(String),
    /// A path SSM would reject: characters other than `a-zA-Z0-9_.-/`, a first segment that
    /// starts with `aws` or `ssm`, or more than 15 levels.
    #[error("path {path:?} is not a valid SSM path: {reason}")]
    NotSsm {
        /// The path.
        path: String,
        /// What SSM does not allow.
        reason: &'static str,
    },
    /// Two paths of which one holds the other: the same parameters would be two flags.
    #[error("paths {outer:?} and {inner:?} overlap: {inner:?} is inside {outer:?}")]
    Overlapping {
        /// The path that holds the other.
        outer: String,
        /// The path inside it.
        inner: String,
    },
}

/// SSM's limit on the levels of a parameter hierarchy.
const MAX_DEPTH: usize = 15;

/// A normalised parameter path under which every parameter is a flag.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub struct FlagPath(String);

impl FlagPath {
    /// The root path `/` (every parameter).
    pub fn root() -> Self {
        Self("/".to_owned())
    }

    /// Validates and normalises one path: `/a/b/` and `/a/b` are the same path.
    pub fn parse(raw: &str) -> Result<Self, PathError> {
        let path = raw.trim();
        if path.is_empty() {
            return Err(PathError::Empty);
        }
        if !path.starts_with('/') {
            return Err(PathError::Relative(path.to_owned()));
        }
        let trimmed = path.trim_end_matches('/');
        if trimmed.contains("//") || path.chars().any(char::is_whitespace) {
            return Err(PathError::Malformed(path.to_owned()));
        }
        let not_ssm = |reason| PathError::NotSsm {
            path: path.to_owned(),
            reason,
        };
        // https://docs.aws.amazon.com/systems-manager/latest/userguide/sysman-paramstore-su-create.html
        let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-' | '/');
        if !trimmed.chars().all(allowed) {
            return Err(not_ssm(
                "only a-z, A-Z, 0-9, '_', '.', '-' and '/' are allowed",
            ));
        }
        let first = trimmed.trim_start_matches('/').to_ascii_lowercase();
        if first.starts_with("aws") || first.starts_with("ssm") {
            return Err(not_ssm("names may not begin with 'aws' or 'ssm'"));
        }
        if trimmed.matches('/').count() > MAX_DEPTH {
            return Err(not_ssm("a hierarchy has at most 15 levels"));
        }
        Ok(match trimmed {
            "" => Self::root(),
            trimmed => Self(trimmed.to_owned()),
        })
    }

    /// Whether `other` is this path or inside it.
    pub fn contains(&self, other: &FlagPath) -> bool {
        *self == *other || self.flag_name(&other.0).is_some()
    }

    /// Parses a comma-separated list of paths, dropping repeats (first one kept). Paths that
    /// overlap (`/a` and `/a/b`) are refused: a parameter would be two flags.
    pub fn parse_list(raw: &str) -> Result<Vec<Self>, PathError> {
        let mut paths: Vec<Self> = Vec::new();
        for part in raw.split(',') {
            let path = Self::parse(part)?;
            if paths.contains(&path) {
                continue;
            }
            if let Some(other) = paths.iter().find(|p| p.contains(&path) || path.contains(p)) {
                let (outer, inner) = if other.contains(&path) {
                    (other, &path)
                } else {
                    (&path, other)
                };
                return Err(PathError::Overlapping {
                    outer: outer.to_string(),
                    inner: inner.to_string(),
                });
            }
            paths.push(path);
        }
        Ok(paths)
    }

    /// Whether this is the root path `/` (every parameter of the account and region).
    pub fn is_root(&self) -> bool {
        self.0 == "/"
    }

    /// The normalised path.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The flag name of `parameter` under this path, or `None` when the parameter is not under
    /// it (or is the path itself).
    pub fn flag_name<'a>(&self, parameter: &'a str) -> Option<&'a str> {
        let prefix = if self.0 == "/" { "" } else { self.0.as_str() };
        parameter
            .strip_prefix(prefix)
            .and_then(|rest| rest.strip_prefix('/'))
            .filter(|name| !name.is_empty())
    }
}

impl fmt::Display for FlagPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for FlagPath {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

/// The flag name of `parameter` under the first of `paths` that holds it.
pub fn flag_name<'a>(paths: &[FlagPath], parameter: &'a str) -> Option<&'a str> {
    paths.iter().find_map(|path| path.flag_name(parameter))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn path(raw: &str) -> FlagPath {
        FlagPath::parse(raw).expect("valid path")
    }

    #[test]
    fn paths_are_normalised() {
        assert_eq!(
            path("/myapp/prod/features").as_str(),
            "/myapp/prod/features"
        );
        assert_eq!(path(" /a/b/ ").as_str(), "/a/b");
        assert_eq!(path("/a/b///").as_str(), "/a/b");
        assert_eq!(path("/").as_str(), "/");
        assert_eq!(path("//").as_str(), "/");
    }

    #[test]
    fn bad_paths_say_why() {
        assert_eq!(FlagPath::parse("  "), Err(PathError::Empty));
        assert_eq!(
            FlagPath::parse("myapp/features").map_err(|e| e.to_string()),
            Err("path \"myapp/features\" must start with '/'".to_owned())
        );
        for bad in ["/a//b", "/a b", "/a/\tb/"] {
            assert!(
                matches!(FlagPath::parse(bad), Err(PathError::Malformed(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn paths_ssm_would_reject_are_refused() {
        for bad in [
            "/a:b",
            "/a/é",
            "/a/b*",
            "/aws/features",
            "/SSM-flags",
            "/a?x",
        ] {
            assert!(
                matches!(FlagPath::parse(bad), Err(PathError::NotSsm { .. })),
                "{bad:?}"
            );
        }
        let deep = "/a".repeat(16);
        assert!(matches!(
            FlagPath::parse(&deep),
            Err(PathError::NotSsm { .. })
        ));
        assert!(FlagPath::parse(&"/a".repeat(15)).is_ok());
        assert!(FlagPath::parse("/my_app-1.0/prod/features").is_ok());
        assert!(
            FlagPath::parse("/app/awsome").is_ok(),
            "only the first segment"
        );
    }

    #[test]
    fn overlapping_paths_are_refused() {
        assert_eq!(
            FlagPath::parse_list("/a,/a/b").map_err(|e| e.to_string()),
            Err("paths \"/a\" and \"/a/b\" overlap: \"/a/b\" is inside \"/a\"".to_owned())
        );
        assert!(matches!(
            FlagPath::parse_list("/a/b/c,/a"),
            Err(PathError::Overlapping { .. })
        ));
        assert!(matches!(
            FlagPath::parse_list("/,/a"),
            Err(PathError::Overlapping { .. })
        ));
        assert!(
            FlagPath::parse_list("/a,/ab").is_ok(),
            "siblings sharing a prefix"
        );
    }

    #[test]
    fn lists_drop_repeats_and_reject_empty_entries() {
        let list = FlagPath::parse_list(" /a/features/ , /b/flags,/a/features").expect("valid");
        assert_eq!(list, [path("/a/features"), path("/b/flags")]);
        assert_eq!(FlagPath::parse_list("/a,,/b"), Err(PathError::Empty));
    }

    #[test]
    fn names_are_relative_to_the_path() {
        let features = path("/myapp/prod/features");
        assert_eq!(
            features.flag_name("/myapp/prod/features/dark-mode"),
            Some("dark-mode")
        );
        assert_eq!(
            features.flag_name("/myapp/prod/features/checkout/v2"),
            Some("checkout/v2"),
            "nested names keep their segments, so they never collide"
        );
        assert_eq!(
            path("/myapp/prod/features/").flag_name("/myapp/prod/features/x"),
            Some("x")
        );
    }

    #[test]
    fn the_root_path_names_every_parameter_without_its_slash() {
        assert_eq!(FlagPath::root().flag_name("/dark-mode"), Some("dark-mode"));
        assert_eq!(path("/").flag_name("/a/b"), Some("a/b"));
        assert_eq!(FlagPath::root().flag_name("no-slash"), None);
    }

    #[test]
    fn names_outside_the_path_have_no_flag_name() {
        let a = path("/a");
        assert_eq!(a.flag_name("/ab/c"), None, "a sibling sharing a prefix");
        assert_eq!(a.flag_name("/a"), None, "the path itself");
        assert_eq!(a.flag_name("/a/"), None);
        assert_eq!(a.flag_name("/b/c"), None);
        let paths = [path("/a"), path("/b")];
        assert_eq!(flag_name(&paths, "/b/x"), Some("x"));
        assert_eq!(flag_name(&paths, "/c/x"), None);
    }
}
