//! `sha256sum`-format checksum files: write them so `sha256sum -c` accepts them, and read
//! and verify the ones coreutils writes.

use std::ffi::OsString;
use std::fs::File;
use std::io::{BufRead, BufReader, Write};
use std::os::unix::ffi::{OsStrExt, OsStringExt};
use std::path::{Component, Path, PathBuf};

use super::atomic::{AtomicFile, AtomicOptions};
use super::digest::{FileDigest, sha256_file};
use super::error::{Error, IoContext, Result, VerifyFailure};

/// One line of a checksum file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ChecksumEntry {
    /// The name as listed, unescaped.
    pub name: PathBuf,
    /// The name resolved against the checksum file's directory (unchanged when absolute).
    pub path: PathBuf,
    /// The listed SHA-256, lowercase hex.
    pub sha256: String,
    /// Listed with the binary marker (` *`); meaningless on POSIX, kept for round trips.
    pub binary: bool,
}

/// The directory names in a checksum file are relative to.
fn base_dir(list: &Path) -> PathBuf {
    let dir = match list.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    std::path::absolute(dir).unwrap_or_else(|_| dir.to_path_buf())
}

/// The name to write for `file`: relative to `base` when under it, otherwise absolute.
fn listed_name(base: &Path, file: &Path) -> Result<PathBuf> {
    let norm = lexical(file)?;
    Ok(norm
        .strip_prefix(base)
        .map_or_else(|_| norm.clone(), Path::to_path_buf))
}

/// `file` made absolute and normalised lexically (`dir/./a` and `dir/x/../a` are `dir/a`).
fn lexical(file: &Path) -> Result<PathBuf> {
    let abs = std::path::absolute(file).ctx("resolve", file)?;
    let mut norm = PathBuf::new();
    for c in abs.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                norm.pop();
            }
            other => norm.push(other),
        }
    }
    Ok(norm)
}

/// Formats one line as coreutils does: a leading `\` and escaped name when the name holds a
/// backslash, newline or carriage return.
fn format_line(sha256: &str, name: &Path) -> Vec<u8> {
    let bytes = name.as_os_str().as_bytes();
    let needs_escape = bytes.iter().any(|b| matches!(b, b'\\' | b'\n' | b'\r'));
    let mut line = Vec::with_capacity(bytes.len() + 70);
    if needs_escape {
        line.push(b'\\');
    }
    line.extend_from_slice(sha256.as_bytes());
    line.extend_from_slice(b"  ");
    for &b in bytes {
        match b {
            b'\\' if needs_escape => line.extend_from_slice(b"\\\\"),
            b'\n' => line.extend_from_slice(b"\\n"),
            b'\r' => line.extend_from_slice(b"\\r"),
            _ => line.push(b),
        }
    }
    line.push(b'\n');
    line
}

/// Hashes `files` and writes `list` (atomically, parents created) in `sha256sum` format,
/// names relative to `list`'s directory when under it, so `sha256sum -c` run in that
/// directory accepts it. Returns each file's digest, in order.
///
/// When `list` exists, its lines for other files that still exist are kept (first, as they
/// were): a second backup into the same directory must not take the first one's digests
/// away. Lines for files that are gone are dropped, so the list stays verifiable.
pub fn write_checksum_file(list: &Path, files: &[PathBuf]) -> Result<Vec<FileDigest>> {
    let base = base_dir(list);
    let kept: Vec<ChecksumEntry> = if list.exists() {
        let new: Vec<PathBuf> = files
            .iter()
            .map(|f| listed_name(&base, f).map(|n| base.join(n)))
            .collect::<Result<_>>()?;
        read_checksum_file(list)?
            .into_iter()
            .filter(|e| !new.contains(&e.path) && e.path.is_file())
            .collect()
    } else {
        Vec::new()
    };
    let mut out = AtomicFile::with_options(
        list,
        &AtomicOptions {
            create_dirs: true,
            ..AtomicOptions::default()
        },
    )?;
    for e in &kept {
        out.write_all(&format_line(&e.sha256, &e.name))
            .ctx("write", list)?;
    }
    let mut digests = Vec::with_capacity(files.len());
    for file in files {
        let digest = sha256_file(file)?;
        let name = listed_name(&base, file)?;
        out.write_all(&format_line(&digest.sha256, &name))
            .ctx("write", list)?;
        digests.push(digest);
    }
    out.commit()?;
    Ok(digests)
}

/// Reads a checksum file written by `sha256sum` (text or binary markers, escaped names,
/// `--tag` lines; `#` comment and blank lines skipped), resolving names against its
/// directory.
pub fn read_checksum_file(list: &Path) -> Result<Vec<ChecksumEntry>> {
    let base = base_dir(list);
    let reader = BufReader::new(File::open(list).ctx("open", list)?);
    let mut entries = Vec::new();
    for (i, line) in reader.split(b'\n').enumerate() {
        let mut line = line.ctx("read", list)?;
        if line.last() == Some(&b'\r') {
            line.pop();
        }
        if line.is_empty() || line[0] == b'#' {
            continue;
        }
        let (name, sha256, binary) =
            parse_line(&line).map_err(|reason| Error::MalformedChecksumLine {
                path: list.to_path_buf(),
                line: i + 1,
                reason: reason.to_owned(),
            })?;
        let name = PathBuf::from(OsString::from_vec(name));
        entries.push(ChecksumEntry {
            path: base.join(&name),
            name,
            sha256,
            binary,
        });
    }
    Ok(entries)
}

/// Parses `[\]HEX  NAME`, `[\]HEX *NAME` or `[\]SHA256 (NAME) = HEX`.
fn parse_line(line: &[u8]) -> std::result::Result<(Vec<u8>, String, bool), &'static str> {
    let (escaped, line) = match line.strip_prefix(b"\\") {
        Some(rest) => (true, rest),
        None => (false, line),
    };
    let (raw_name, hex, binary) = if let Some(rest) = line.strip_prefix(b"SHA256 (") {
        let split = rest
            .windows(4)
            .rposition(|w| w == b") = ")
            .ok_or("expected `SHA256 (NAME) = DIGEST`")?;
        (&rest[..split], &rest[split + 4..], true)
    } else {
        if line.len() < 66 || line[64] != b' ' {
            return Err("expected a 64-digit SHA-256, a space, a mode marker and a name");
        }
        let binary = match line[65] {
            b' ' => false,
            b'*' => true,
            _ => return Err("expected ` ` or `*` before the name"),
        };
        (&line[66..], &line[..64], binary)
    };
    if hex.len() != 64 || !hex.iter().all(u8::is_ascii_hexdigit) {
        return Err("the digest is not 64 hexadecimal digits");
    }
    if raw_name.is_empty() {
        return Err("the file name is empty");
    }
    let name = if escaped {
        unescape(raw_name)?
    } else {
        raw_name.to_vec()
    };
    Ok((
        name,
        String::from_utf8_lossy(hex).to_ascii_lowercase(),
        binary,
    ))
}

fn unescape(raw: &[u8]) -> std::result::Result<Vec<u8>, &'static str> {
    let mut out = Vec::with_capacity(raw.len());
    let mut it = raw.iter();
    while let Some(&b) = it.next() {
        if b != b'\\' {
            out.push(b);
            continue;
        }
        match it.next() {
            Some(b'\\') => out.push(b'\\'),
            Some(b'n') => out.push(b'\n'),
            Some(b'r') => out.push(b'\r'),
            _ => return Err("invalid `\\` escape in the file name"),
        }
    }
    Ok(out)
}

/// Verifies every file listed in `list` (see [`verify_checksum_files`]).
pub fn verify_checksum_file(list: &Path) -> Result<Vec<FileDigest>> {
    verify_checksum_files(list, &[])
}

/// Verifies the files `only` names (each must be listed), or with `only` empty every file
/// listed in `list` that lies under its directory. Only regular files are read: a listed
/// `/etc/shadow`, `../x` (without `only` naming it) or `/dev/zero` is a failure, never
/// hashed. Succeeds with each file's digest, or fails with [`Error::Verification`] naming
/// every missing, refused or mismatching file with the expected and actual digests.
pub fn verify_checksum_files(list: &Path, only: &[PathBuf]) -> Result<Vec<FileDigest>> {
    let entries = read_checksum_file(list)?;
    if entries.is_empty() {
        return Err(Error::Invalid(format!(
            "`{}` lists no files",
            list.display()
        )));
    }
    let mut chosen = Vec::with_capacity(only.len());
    for f in only {
        let want = lexical(f)?;
        let listed = entries
            .iter()
            .find(|e| lexical(&e.path).is_ok_and(|p| p == want))
            .ok_or_else(|| {
                Error::Invalid(format!(
                    "`{}` is not listed in `{}`",
                    f.display(),
                    list.display()
                ))
            })?;
        chosen.push(listed);
    }
    if only.is_empty() {
        chosen = entries.iter().collect();
    }
    let base = base_dir(list).canonicalize().ctx("resolve", list)?;
    let mut digests = Vec::with_capacity(chosen.len());
    let mut failures = Vec::new();
    for entry in &chosen {
        if let Some(reason) = refusal(entry, &base, only.is_empty()) {
            failures.push(VerifyFailure::Unreadable {
                path: entry.path.clone(),
                reason,
            });
            continue;
        }
        match sha256_file(&entry.path) {
            Ok(d) if d.sha256 == entry.sha256 => digests.push(d),
            Ok(d) => failures.push(VerifyFailure::Mismatch {
                path: entry.path.clone(),
                expected: entry.sha256.clone(),
                actual: d.sha256,
            }),
            Err(Error::Io { source, .. }) => failures.push(VerifyFailure::Unreadable {
                path: entry.path.clone(),
                reason: source.to_string(),
            }),
            Err(e) => return Err(e),
        }
    }
    if failures.is_empty() {
        Ok(digests)
    } else {
        Err(Error::Verification {
            list: list.to_path_buf(),
            total: chosen.len(),
            failures,
        })
    }
}

/// Why a listed file is not read: not a regular file, or (unless named explicitly) not
/// under the checksum file's directory once links are followed.
fn refusal(entry: &ChecksumEntry, base: &Path, implicit: bool) -> Option<String> {
    let real = match entry.path.canonicalize() {
        Ok(p) => p,
        Err(e) => return Some(e.to_string()),
    };
    if implicit && !real.starts_with(base) {
        return Some(
            "not under the checksum file's directory (name it in `files` to verify it)".into(),
        );
    }
    match std::fs::metadata(&real) {
        Ok(m) if m.is_file() => None,
        Ok(_) => Some("not a regular file".into()),
        Err(e) => Some(e.to_string()),
    }
}
