//! `export`: a source's flags as a snapshot file, the format `flags::load_file` and the
//! extension's deployed fallback (`SSM_FLAGS_FALLBACK_FILE`) read. SecureString flags are written
//! only when asked for, marked `secure`; without it they are left out, by name.

use std::io::Write;
use std::path::Path;
use std::time::SystemTime;

use flags::wire::SnapshotDoc;
use flags::{Snapshot, Status};
use serde::Serialize;

use crate::error::{CtlError, Outcome};
use crate::output;
use crate::sources::Flags;

#[derive(Debug, Serialize)]
struct Summary<'a> {
    source: String,
    file: Option<&'a str>,
    flags: usize,
    invalid: Vec<&'a str>,
    left_out_secure: Vec<&'a str>,
    left_out_undecrypted: Vec<&'a str>,
}

/// Writes the snapshot of `flags` to `out` (stdout when `None`). Exits 1 when flags asked for
/// could not be written (SecureStrings SSM would not decrypt).
pub fn export(flags: &Flags, include_secure: bool, out: Option<&Path>, json: bool) -> Outcome {
    let mut left_out_secure = Vec::new();
    let mut left_out_undecrypted = Vec::new();
    let mut invalid = Vec::new();
    let mut entries = Vec::new();
    for (name, loaded) in &flags.flags {
        if loaded.undecrypted {
            left_out_undecrypted.push(name.as_str());
        } else if loaded.entry.is_secure() && !include_secure {
            left_out_secure.push(name.as_str());
        } else {
            if loaded.entry.value().is_err() {
                invalid.push(name.as_str());
            }
            entries.push(loaded.entry.clone());
        }
    }
    let count = entries.len();
    let snapshot = Snapshot::new(1, Status::Ok, entries).with_fetched_at(Some(SystemTime::now()));
    let mut bytes = serde_json::to_vec_pretty(&SnapshotDoc::from_snapshot(&snapshot))
        .map_err(|e| CtlError::Source(e.to_string()))?;
    bytes.push(b'\n');
    match out {
        Some(path) => write_file(path, &bytes, include_secure)?,
        None => {
            let mut stdout = std::io::stdout().lock();
            stdout.write_all(&bytes).map_err(|source| CtlError::File {
                path: "stdout".to_owned(),
                source,
            })?;
        }
    }
    let file = out.map(|p| p.to_str().unwrap_or_default());
    let summary = Summary {
        source: flags.spec.to_string(),
        file,
        flags: count,
        invalid,
        left_out_secure,
        left_out_undecrypted,
    };
    if json && out.is_some() {
        output::print_json(&summary);
    } else {
        eprintln!(
            "exported {} flag(s) from {} to {}",
            summary.flags,
            summary.source,
            file.unwrap_or("stdout")
        );
        if !summary.left_out_secure.is_empty() {
            eprintln!(
                "left out {} SecureString flag(s): {} (pass --include-secure to write them, marked secure)",
                summary.left_out_secure.len(),
                summary.left_out_secure.join(", ")
            );
        }
        if !summary.invalid.is_empty() {
            eprintln!(
                "{} invalid flag(s) exported as they are (they read as their default): {}",
                summary.invalid.len(),
                summary.invalid.join(", ")
            );
        }
    }
    if summary.left_out_undecrypted.is_empty() {
        return Ok(false);
    }
    eprintln!(
        "left out {} SecureString flag(s) SSM would not decrypt: {} (the caller needs kms:Decrypt on their key)",
        summary.left_out_undecrypted.len(),
        summary.left_out_undecrypted.join(", ")
    );
    Ok(include_secure)
}

/// Writes beside the target and renames, so a reader never sees half a file; a file holding
/// secrets is readable by its owner only.
fn write_file(path: &Path, bytes: &[u8], secret: bool) -> Result<(), CtlError> {
    let error = |source| CtlError::File {
        path: path.display().to_string(),
        source,
    };
    let mut temporary = path.as_os_str().to_owned();
    temporary.push(".tmp");
    let temporary = std::path::PathBuf::from(temporary);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(if secret { 0o600 } else { 0o644 });
    }
    let mut file = options.open(&temporary).map_err(error)?;
    file.write_all(bytes).map_err(error)?;
    file.sync_all().map_err(error)?;
    std::fs::rename(&temporary, path).map_err(error)
}
