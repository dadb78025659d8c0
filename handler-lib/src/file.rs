//! Local files read the one careful way: the token file, the snapshot files handlers and the
//! extension load. A path on a shared host may be anything another user put there — a symbolic
//! link to someone else's file, a FIFO that blocks a reader forever, `/dev/zero` — so a file is
//! opened without following a symbolic link and without blocking, must be a regular file, and is
//! read up to a limit; a private directory must be this user's own and writable by no one else.

use std::io::Read;
use std::path::{Path, PathBuf};

/// Why a local file could not be used. Every message names the path.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The path is a symbolic link: it is not followed.
    #[error("{path}: is a symbolic link (not followed)")]
    Symlink {
        /// The path.
        path: PathBuf,
    },
    /// The path is not a regular file (a FIFO, a device, a directory, a socket).
    #[error("{path}: not a regular file but a {kind}")]
    NotRegular {
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// The file is larger than allowed.
    #[error("{path}: larger than {limit} bytes")]
    TooLarge {
        /// The path.
        path: PathBuf,
        /// The limit.
        limit: u64,
    },
    /// A directory that must be private is not: a symbolic link, someone else's, or writable
    /// by others.
    #[error("{path}: {why}")]
    NotPrivate {
        /// The directory.
        path: PathBuf,
        /// What is wrong, and what to do.
        why: String,
    },
    /// The file could not be opened or read.
    #[error("{path}: {source}")]
    Io {
        /// The path.
        path: PathBuf,
        /// The I/O error.
        source: std::io::Error,
    },
}

/// Reads the regular file at `path`, at most `limit` bytes: a symbolic link at `path` is not
/// followed, and a FIFO or device is refused at once, never waited on.
pub fn read_regular(path: &Path, limit: u64) -> Result<Vec<u8>, FileError> {
    let io = |source| FileError::Io {
        path: path.to_owned(),
        source,
    };
    let file = open_no_follow(path)?;
    let kind = file.metadata().map_err(io)?.file_type();
    if !kind.is_file() {
        return Err(FileError::NotRegular {
            path: path.to_owned(),
            kind: kind_name(&kind),
        });
    }
    let mut bytes = Vec::new();
    file.take(limit.saturating_add(1))
        .read_to_end(&mut bytes)
        .map_err(io)?;
    if bytes.len() as u64 > limit {
        return Err(FileError::TooLarge {
            path: path.to_owned(),
            limit,
        });
    }
    Ok(bytes)
}

/// Checks that `dir` is a directory of this process's effective user that no one else may
/// write to (so no one else can swap the files in it), and not a symbolic link.
#[cfg(unix)]
pub fn check_private_dir(dir: &Path) -> Result<(), FileError> {
    open_private_dir(dir).map(drop)
}

/// Opens `dir` (not following a symbolic link) and checks, on the directory opened, that it is
/// this process's effective user's and writable by no one else: files made relative to the
/// returned handle (`openat`, `renameat`) land in that very directory, even if its path is
/// swapped after the check.
#[cfg(unix)]
pub fn open_private_dir(dir: &Path) -> Result<std::os::fd::OwnedFd, FileError> {
    use rustix::fs::{Mode, OFlags};
    let not_private = |why: String| FileError::NotPrivate {
        path: dir.to_owned(),
        why,
    };
    let io = |errno: rustix::io::Errno| FileError::Io {
        path: dir.to_owned(),
        source: errno.into(),
    };
    let flags = OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC;
    let fd = match rustix::fs::open(dir, flags, Mode::empty()) {
        Ok(fd) => fd,
        // A link there fails as ELOOP, or ENOTDIR with O_DIRECTORY (Linux): say which.
        Err(rustix::io::Errno::LOOP | rustix::io::Errno::NOTDIR) => {
            let link = std::fs::symlink_metadata(dir).is_ok_and(|m| m.file_type().is_symlink());
            return Err(not_private(if link {
                "the directory is a symbolic link (not followed): use a real directory".to_owned()
            } else {
                "not a directory".to_owned()
            }));
        }
        Err(errno) => return Err(io(errno)),
    };
    let stat = rustix::fs::fstat(&fd).map_err(io)?;
    let me = rustix::process::geteuid().as_raw();
    if stat.st_uid != me {
        return Err(not_private(format!(
            "owned by uid {}, not by this user (uid {me}): another user may have made it; remove it or choose another path",
            stat.st_uid
        )));
    }
    let mode = stat.st_mode & 0o7777;
    if mode & 0o022 != 0 {
        return Err(not_private(format!(
            "writable by its group or others (mode {mode:o}): chmod go-w, or choose another path"
        )));
    }
    Ok(fd)
}

/// Checks that `dir` is a real directory (other systems have no owner or mode to check).
#[cfg(not(unix))]
pub fn check_private_dir(dir: &Path) -> Result<(), FileError> {
    let meta = std::fs::symlink_metadata(dir).map_err(|source| FileError::Io {
        path: dir.to_owned(),
        source,
    })?;
    if meta.is_dir() {
        Ok(())
    } else {
        Err(FileError::NotPrivate {
            path: dir.to_owned(),
            why: "not a directory (or a symbolic link)".to_owned(),
        })
    }
}

#[cfg(unix)]
fn open_no_follow(path: &Path) -> Result<std::fs::File, FileError> {
    use rustix::fs::{Mode, OFlags};
    let flags = OFlags::RDONLY | OFlags::NOFOLLOW | OFlags::NONBLOCK | OFlags::CLOEXEC;
    match rustix::fs::open(path, flags, Mode::empty()) {
        Ok(fd) => Ok(std::fs::File::from(fd)),
        // O_NOFOLLOW on a symbolic link: ELOOP.
        Err(rustix::io::Errno::LOOP) => Err(FileError::Symlink {
            path: path.to_owned(),
        }),
        Err(errno) => Err(FileError::Io {
            path: path.to_owned(),
            source: errno.into(),
        }),
    }
}

#[cfg(not(unix))]
fn open_no_follow(path: &Path) -> Result<std::fs::File, FileError> {
    let meta = std::fs::symlink_metadata(path).map_err(|source| FileError::Io {
        path: path.to_owned(),
        source,
    })?;
    if meta.file_type().is_symlink() {
        return Err(FileError::Symlink {
            path: path.to_owned(),
        });
    }
    std::fs::File::open(path).map_err(|source| FileError::Io {
        path: path.to_owned(),
        source,
    })
}

fn kind_name(kind: &std::fs::FileType) -> &'static str {
    #[cfg(unix)]
    {
        use std::os::unix::fs::FileTypeExt;
        if kind.is_fifo() {
            return "FIFO";
        }
        if kind.is_char_device() || kind.is_block_device() {
            return "device";
        }
        if kind.is_socket() {
            return "socket";
        }
    }
    if kind.is_dir() {
        "directory"
    } else {
        "special file"
    }
}

#[cfg(all(test, unix))]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;
    use std::time::{Duration, Instant};

    fn scratch(name: &str) -> PathBuf {
        let dir =
            std::env::temp_dir().join(format!("ssm-flags-file-{}-{name}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("dir");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        dir
    }

    #[test]
    fn only_regular_files_within_the_limit_are_read() {
        let dir = scratch("read");
        let file = dir.join("token");
        std::fs::write(&file, "abc").expect("write");
        assert_eq!(read_regular(&file, 3).expect("read"), b"abc");
        assert!(matches!(
            read_regular(&file, 2),
            Err(FileError::TooLarge { limit: 2, .. })
        ));
        let link = dir.join("link");
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        let err = read_regular(&link, 64).expect_err("a link");
        assert!(matches!(err, FileError::Symlink { .. }), "{err}");
        assert!(err.to_string().contains("link"), "{err}");
        assert!(matches!(
            read_regular(&dir, 64),
            Err(FileError::NotRegular {
                kind: "directory",
                ..
            })
        ));
        assert!(matches!(
            read_regular(Path::new("/dev/zero"), 64),
            Err(FileError::NotRegular { kind: "device", .. })
        ));
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_fifo_is_refused_at_once_never_waited_on() {
        let dir = scratch("fifo");
        let fifo = dir.join("token");
        let made = std::process::Command::new("mkfifo")
            .arg(&fifo)
            .status()
            .expect("mkfifo");
        assert!(made.success());
        let started = Instant::now();
        let err = read_regular(&fifo, 64).expect_err("a FIFO");
        assert!(
            matches!(err, FileError::NotRegular { kind: "FIFO", .. }),
            "{err}"
        );
        assert!(started.elapsed() < Duration::from_secs(5), "it blocked");
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn a_private_directory_is_ours_and_writable_by_no_one_else() {
        let dir = scratch("private");
        check_private_dir(&dir).expect("private");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o777)).expect("chmod");
        let err = check_private_dir(&dir).expect_err("world-writable");
        assert!(err.to_string().contains("777"), "{err}");
        std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)).expect("chmod");
        let link = dir.with_extension("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&dir, &link).expect("symlink");
        let err = check_private_dir(&link).expect_err("a link");
        assert!(err.to_string().contains("symbolic link"), "{err}");
        let _ = std::fs::remove_file(&link);
        let _ = std::fs::remove_dir_all(&dir);
        // A directory owned by another user: / is root's; as root, a directory owned by nobody.
        if rustix::process::geteuid().as_raw() != 0 {
            let err = check_private_dir(Path::new("/")).expect_err("root's");
            assert!(err.to_string().contains("not by this user"), "{err}");
        } else {
            let theirs = scratch("theirs");
            std::os::unix::fs::chown(&theirs, Some(65534), None).expect("chown");
            let err = check_private_dir(&theirs).expect_err("nobody's");
            assert!(err.to_string().contains("uid 65534"), "{err}");
            let _ = std::fs::remove_dir_all(&theirs);
        }
    }
}
