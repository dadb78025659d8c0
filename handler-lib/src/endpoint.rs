//! Where the local API is served, one rule for the extension, the client and the health check:
//! TCP on 127.0.0.1 (the default: Lambda, ECS, the OFREP SDKs), or a Unix socket
//! ([`SOCKET_VAR`]) on a shared host, where file permissions guard the API before the token does.

use std::path::PathBuf;

use crate::env::{NumberError, parse_port};
use crate::wire::DEFAULT_PORT;

/// `SSM_FLAGS_SOCKET`: a Unix socket path to serve the API on instead of TCP.
pub const SOCKET_VAR: &str = "SSM_FLAGS_SOCKET";
/// `SSM_FLAGS_SOCKET_GROUP`: the group given access to the socket (a name or a numeric id).
pub const SOCKET_GROUP_VAR: &str = "SSM_FLAGS_SOCKET_GROUP";
/// `SSM_FLAGS_PORT`: the TCP port on 127.0.0.1.
pub const PORT_VAR: &str = "SSM_FLAGS_PORT";

/// Where the local API is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Endpoint {
    /// TCP on 127.0.0.1, this port.
    Tcp(u16),
    /// A Unix socket at this path.
    Unix(PathBuf),
}

/// A setting of the endpoint that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EndpointError {
    /// The port is not a port.
    #[error(transparent)]
    Port(#[from] NumberError),
    /// The socket path is not absolute.
    #[error("{SOCKET_VAR}={0:?} is invalid: use an absolute path, such as /run/ssm-flags/api.sock")]
    Socket(String),
}

impl Endpoint {
    /// The endpoint configured through `get`: the socket in [`SOCKET_VAR`] when set, else TCP on
    /// [`PORT_VAR`] (default [`DEFAULT_PORT`]).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self, EndpointError> {
        if let Some(path) = socket_path(&get)? {
            return Ok(Self::Unix(path));
        }
        match get(PORT_VAR).filter(|v| !v.trim().is_empty()) {
            Some(v) => Ok(Self::Tcp(parse_port(PORT_VAR, &v)?)),
            None => Ok(Self::Tcp(DEFAULT_PORT)),
        }
    }
}

/// The socket path in [`SOCKET_VAR`], if set: it must be absolute.
pub fn socket_path(get: impl Fn(&str) -> Option<String>) -> Result<Option<PathBuf>, EndpointError> {
    match get(SOCKET_VAR).map(|v| v.trim().to_owned()) {
        None => Ok(None),
        Some(path) if path.is_empty() => Ok(None),
        Some(path) if path.starts_with('/') => Ok(Some(PathBuf::from(path))),
        Some(path) => Err(EndpointError::Socket(path)),
    }
}

impl std::fmt::Display for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Tcp(port) => write!(f, "127.0.0.1:{port}"),
            Self::Unix(path) => write!(f, "unix:{}", path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env(pairs: &'static [(&'static str, &'static str)]) -> impl Fn(&str) -> Option<String> {
        move |var| {
            pairs
                .iter()
                .find(|(k, _)| *k == var)
                .map(|(_, v)| (*v).to_owned())
        }
    }

    #[test]
    fn a_socket_wins_over_the_port_and_must_be_absolute() {
        assert_eq!(
            Endpoint::from_env(env(&[])),
            Ok(Endpoint::Tcp(DEFAULT_PORT))
        );
        assert_eq!(
            Endpoint::from_env(env(&[("SSM_FLAGS_PORT", "9100")])),
            Ok(Endpoint::Tcp(9100))
        );
        let both = env(&[
            ("SSM_FLAGS_PORT", "9100"),
            ("SSM_FLAGS_SOCKET", "/run/f/api.sock"),
        ]);
        assert_eq!(
            Endpoint::from_env(both),
            Ok(Endpoint::Unix("/run/f/api.sock".into()))
        );
        assert_eq!(
            Endpoint::from_env(env(&[("SSM_FLAGS_SOCKET", "")])),
            Ok(Endpoint::Tcp(DEFAULT_PORT))
        );
        let err =
            Endpoint::from_env(env(&[("SSM_FLAGS_SOCKET", "api.sock")])).expect_err("relative");
        assert!(err.to_string().starts_with("SSM_FLAGS_SOCKET"), "{err}");
        assert_eq!(Endpoint::Tcp(2774).to_string(), "127.0.0.1:2774");
        assert_eq!(Endpoint::Unix("/a.sock".into()).to_string(), "unix:/a.sock");
    }
}
