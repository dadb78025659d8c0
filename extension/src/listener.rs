//! Where the local API listens: TCP on 127.0.0.1 (the default), or a Unix socket
//! (`SSM_FLAGS_SOCKET`) whose file permissions admit only this user and one group — on EC2 or
//! any shared host a stronger guard than a token on TCP, which every local process can reach.
//! The token is required either way.

use std::future::Future;
use std::io;
use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::path::{Path, PathBuf};

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::{TcpListener, TcpStream, UnixListener, UnixStream};

/// A listener the server accepts connections from.
pub trait Listener: Send + 'static {
    /// A connection.
    type Stream: AsyncRead + AsyncWrite + Unpin + Send + 'static;

    /// The next connection; `Ok(None)` when one was accepted and refused (not from loopback).
    fn next(&self) -> impl Future<Output = io::Result<Option<Self::Stream>>> + Send;
}

impl Listener for TcpListener {
    type Stream = TcpStream;

    async fn next(&self) -> io::Result<Option<TcpStream>> {
        let (stream, peer) = self.accept().await?;
        if !peer.ip().is_loopback() {
            tracing::warn!(%peer, "refused a connection from outside loopback");
            return Ok(None);
        }
        let _ = stream.set_nodelay(true);
        Ok(Some(stream))
    }
}

/// The API's Unix socket: removed when dropped.
#[derive(Debug)]
pub struct Socket {
    listener: UnixListener,
    path: PathBuf,
}

impl Listener for Socket {
    type Stream = UnixStream;

    async fn next(&self) -> io::Result<Option<UnixStream>> {
        let (stream, _) = self.listener.accept().await?;
        Ok(Some(stream))
    }
}

impl Drop for Socket {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

/// Why the socket could not be made.
#[derive(Debug, thiserror::Error)]
pub enum SocketError {
    /// The socket's directory is not private to this user.
    #[error("SSM_FLAGS_SOCKET: {0}")]
    Directory(flags::file::FileError),
    /// Something other than a socket is at the path.
    #[error(
        "SSM_FLAGS_SOCKET={path:?}: something other than a socket is there ({kind}): remove it or choose another path"
    )]
    NotASocket {
        /// The path.
        path: PathBuf,
        /// What is there.
        kind: &'static str,
    },
    /// Another process serves the socket already.
    #[error("SSM_FLAGS_SOCKET={path:?}: another process is serving it (an agent already running?)")]
    InUse {
        /// The path.
        path: PathBuf,
    },
    /// The group is not known.
    #[error("SSM_FLAGS_SOCKET_GROUP={0:?}: no such group (a name in /etc/group, or a numeric id)")]
    Group(String),
    /// Binding, or setting the mode or group, failed.
    #[error("SSM_FLAGS_SOCKET={path:?}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: io::Error,
    },
}

/// The mode of the socket: this user and its group may connect, no one else.
pub const SOCKET_MODE: u32 = 0o660;

/// Binds the API's socket at `path`, mode [`SOCKET_MODE`], owned by `group` when given. Its
/// directory must be this user's and writable by no one else (systemd's `RuntimeDirectory`
/// makes one); a socket left by an agent that is gone is replaced, one still served is not, and
/// anything else at the path is refused. Call within a Tokio runtime.
pub fn bind_socket(path: &Path, group: Option<&str>) -> Result<Socket, SocketError> {
    let io = |source| SocketError::Io {
        path: path.to_owned(),
        source,
    };
    flags::file::check_private_dir(flags::token::parent_of(path))
        .map_err(SocketError::Directory)?;
    let gid = group.map(group_id).transpose()?;
    match std::fs::symlink_metadata(path) {
        Ok(meta) if meta.file_type().is_socket() => {
            // A live agent answers a connect; a stale socket refuses it.
            if std::os::unix::net::UnixStream::connect(path).is_ok() {
                return Err(SocketError::InUse {
                    path: path.to_owned(),
                });
            }
            std::fs::remove_file(path).map_err(io)?;
        }
        Ok(meta) => {
            let kind = if meta.file_type().is_symlink() {
                "a symbolic link"
            } else if meta.is_dir() {
                "a directory"
            } else {
                "a file"
            };
            return Err(SocketError::NotASocket {
                path: path.to_owned(),
                kind,
            });
        }
        Err(error) if error.kind() == io::ErrorKind::NotFound => {}
        Err(error) => return Err(io(error)),
    }
    let listener = UnixListener::bind(path).map_err(io)?;
    let socket = Socket {
        listener,
        path: path.to_owned(),
    };
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(SOCKET_MODE)).map_err(io)?;
    if let Some(gid) = gid {
        std::os::unix::fs::chown(path, None, Some(gid)).map_err(io)?;
    }
    Ok(socket)
}

/// The id of `group`: numeric, or a name looked up in `/etc/group`.
fn group_id(group: &str) -> Result<u32, SocketError> {
    let group = group.trim();
    if let Ok(gid) = group.parse::<u32>() {
        return Ok(gid);
    }
    let bytes = flags::file::read_regular(Path::new("/etc/group"), 16 * 1024 * 1024)
        .map_err(|_| SocketError::Group(group.to_owned()))?;
    String::from_utf8_lossy(&bytes)
        .lines()
        .filter_map(|line| {
            let mut fields = line.split(':');
            let name = fields.next()?;
            let gid = fields.nth(1)?.parse::<u32>().ok()?;
            (name == group).then_some(gid)
        })
        .next()
        .ok_or_else(|| SocketError::Group(group.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ssm-flags-socket-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).expect("chmod");
        dir
    }

    #[tokio::test]
    async fn a_socket_is_0660_replaces_a_stale_one_and_refuses_anything_else() {
        let dir = scratch("bind");
        let path = dir.join("api.sock");
        let socket = bind_socket(&path, Some("0")).expect("bound");
        let meta = std::fs::symlink_metadata(&path).expect("there");
        assert!(meta.file_type().is_socket());
        assert_eq!(meta.mode() & 0o777, SOCKET_MODE);
        assert_eq!(meta.gid(), 0);
        // Served: a second agent is refused.
        assert!(matches!(
            bind_socket(&path, None),
            Err(SocketError::InUse { .. })
        ));
        // Left behind by an agent that is gone (the file stays, nobody answers): replaced.
        let stale = std::os::unix::net::UnixListener::bind(dir.join("stale.sock")).expect("bind");
        drop(stale);
        bind_socket(&dir.join("stale.sock"), None).expect("a stale socket is replaced");
        drop(socket);
        assert!(!path.exists(), "removed when the agent stops");
        std::fs::write(&path, "not a socket").expect("write");
        let err = bind_socket(&path, None).expect_err("a file");
        assert!(
            err.to_string().contains("something other than a socket"),
            "{err}"
        );
        assert!(matches!(
            bind_socket(&dir.join("x.sock"), Some("no-such-group-here")),
            Err(SocketError::Group(_))
        ));
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = bind_socket(&dir.join("y.sock"), None).expect_err("an open directory");
        assert!(
            err.to_string().contains("writable by its group or others"),
            "{err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn groups_are_numbers_or_names_from_etc_group() {
        assert_eq!(group_id("1234").ok(), Some(1234));
        assert_eq!(group_id("root").ok(), Some(0));
        assert!(group_id("no-such-group-here").is_err());
    }
}
