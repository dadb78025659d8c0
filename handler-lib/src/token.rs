//! The local API's token, one rule for the extension, the client and the health check: what a
//! valid token is, where it is configured, and the file through which the extension shares one
//! it generated. A token is never logged or quoted in an error.

use std::path::{Path, PathBuf};

use crate::file::{FileError, check_private_dir, read_regular};
use crate::wire::TOKEN_VAR;

/// The longest token accepted, in characters.
pub const MAX_TOKEN_LEN: usize = 4096;
/// The most read of a token file: a token and a line break.
const MAX_TOKEN_FILE_BYTES: u64 = MAX_TOKEN_LEN as u64 + 2;
/// The variables a token is configured in, in order: [`TOKEN_VAR`], else (in Lambda)
/// `AWS_SESSION_TOKEN`, as AWS's own extensions do.
pub const TOKEN_VARS: [&str; 2] = [TOKEN_VAR, "AWS_SESSION_TOKEN"];

/// Why a token cannot be used. The token itself is never in the message.
#[derive(Debug, thiserror::Error)]
pub enum TokenError {
    /// A variable holds a value that is not a valid token.
    #[error(
        "{var} is not a usable API token: {why} (a token is 1 to {MAX_TOKEN_LEN} printable ASCII characters, no spaces or line breaks)"
    )]
    Variable {
        /// The variable.
        var: &'static str,
        /// What is wrong with it.
        why: String,
    },
    /// The token file cannot be used.
    #[error("the token file (SSM_FLAGS_TOKEN_FILE) cannot be used: {0}")]
    File(#[from] FileError),
    /// The token file does not hold a valid token.
    #[error("the token file {path} (SSM_FLAGS_TOKEN_FILE) does not hold a usable token: {why}")]
    FileContent {
        /// The file.
        path: PathBuf,
        /// What is wrong with it.
        why: String,
    },
}

/// A token held without showing it: its `Debug` says `(redacted)`, so a configuration or a
/// target printed by an assertion or a log never carries it.
#[derive(Clone, PartialEq, Eq)]
pub struct Secret(String);

impl Secret {
    /// The token itself, to send or compare.
    pub fn expose(&self) -> &str {
        &self.0
    }

    /// The token itself, owned.
    pub fn into_inner(self) -> String {
        self.0
    }
}

impl std::ops::Deref for Secret {
    type Target = str;

    fn deref(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for Secret {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("(redacted)")
    }
}

impl From<String> for Secret {
    fn from(token: String) -> Self {
        Self(token)
    }
}

impl From<&str> for Secret {
    fn from(token: &str) -> Self {
        Self(token.to_owned())
    }
}

/// Checks that `token` is 1 to [`MAX_TOKEN_LEN`] characters, each printable ASCII without
/// spaces (0x21 to 0x7E): the bytes an HTTP header carries unchanged, so both sides compare
/// the same thing. Says what is wrong otherwise, without quoting the token.
pub fn check(token: &str) -> Result<(), String> {
    if token.is_empty() {
        return Err("it is empty".to_owned());
    }
    if token.len() > MAX_TOKEN_LEN {
        return Err(format!("it is {} bytes long", token.len()));
    }
    match token.bytes().position(|b| !(0x21..=0x7e).contains(&b)) {
        None => Ok(()),
        Some(at) => {
            let what = match token.as_bytes()[at] {
                b' ' | b'\t' => "a space or tab",
                b'\n' | b'\r' => "a line break",
                _ => "a character outside printable ASCII",
            };
            Err(format!("it holds {what} at byte {at}"))
        }
    }
}

/// The token configured in the environment (read through `get`): the first of [`TOKEN_VARS`]
/// that is set and not empty, checked. `Ok(None)`: none is configured (the extension then
/// generates one and shares it through the token file). An invalid one is an error naming its
/// variable — never a reason to fall back to the next.
pub fn configured(get: impl Fn(&str) -> Option<String>) -> Result<Option<Secret>, TokenError> {
    for var in TOKEN_VARS {
        match get(var) {
            Some(token) if !token.is_empty() => {
                return check(&token)
                    .map(|()| Some(Secret(token)))
                    .map_err(|why| TokenError::Variable { var, why });
            }
            _ => {}
        }
    }
    Ok(None)
}

/// Reads the token the extension generated from `path`: its directory must be private
/// ([`check_private_dir`]), the file a regular file read without following a link or blocking,
/// at most a token and a line break long, holding a valid token.
pub fn read_file(path: &Path) -> Result<Secret, TokenError> {
    check_private_dir(parent_of(path))?;
    let bytes = read_regular(path, MAX_TOKEN_FILE_BYTES)?;
    let content = |why: String| TokenError::FileContent {
        path: path.to_owned(),
        why,
    };
    let text = std::str::from_utf8(&bytes).map_err(|_| content("it is not text".to_owned()))?;
    let token = text
        .strip_suffix('\n')
        .map(|t| t.strip_suffix('\r').unwrap_or(t))
        .unwrap_or(text);
    check(token).map_err(content)?;
    Ok(Secret(token.to_owned()))
}

/// The directory of a token file (the current one for a bare file name).
pub fn parent_of(path: &Path) -> &Path {
    match path.parent() {
        Some(dir) if !dir.as_os_str().is_empty() => dir,
        _ => Path::new("."),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::HashMap;

    fn env(pairs: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |k| map.get(k).cloned()
    }

    #[test]
    fn a_token_is_printable_ascii_without_spaces() {
        assert!(check("tok").is_ok());
        assert!(check(&"a".repeat(MAX_TOKEN_LEN)).is_ok());
        assert!(check("!~").is_ok());
        for bad in [
            "", "tok\n", "tok ", " tok", "to\tk", "tök", "tok\r\n", "\u{7f}",
        ] {
            let why = check(bad).expect_err(bad);
            assert!(!why.contains(bad) || bad.is_empty(), "{why}");
        }
        assert!(check(&"a".repeat(MAX_TOKEN_LEN + 1)).is_err());
    }

    #[test]
    fn an_invalid_configured_token_names_its_variable_and_never_falls_back() {
        assert_eq!(
            configured(env(&[
                ("SSM_FLAGS_TOKEN", "shared"),
                ("AWS_SESSION_TOKEN", "aws")
            ]))
            .expect("valid")
            .as_deref(),
            Some("shared")
        );
        assert_eq!(
            configured(env(&[("AWS_SESSION_TOKEN", "aws")]))
                .expect("valid")
                .as_deref(),
            Some("aws")
        );
        assert_eq!(
            configured(env(&[("SSM_FLAGS_TOKEN", ""), ("AWS_SESSION_TOKEN", "")])).expect("none"),
            None
        );
        for bad in ["s3cr3t\n", "s3cr3t ", " "] {
            let err = configured(env(&[
                ("SSM_FLAGS_TOKEN", bad),
                ("AWS_SESSION_TOKEN", "aws"),
            ]))
            .expect_err("invalid");
            let text = err.to_string();
            assert!(
                text.starts_with("SSM_FLAGS_TOKEN is not a usable"),
                "{text}"
            );
            assert!(!text.contains("s3cr3t"), "the token is quoted: {text}");
        }
        let err = configured(env(&[("AWS_SESSION_TOKEN", "a b")])).expect_err("invalid");
        assert!(err.to_string().starts_with("AWS_SESSION_TOKEN"), "{err}");
    }
}
