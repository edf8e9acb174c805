//! Tar on the host side of a copy: extraction of what the engine sends (a directory through
//! the io module's safe extractor), and the archive rb builds and sends. Synchronous: runs
//! on a blocking thread, fed through a pipe.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use super::error::DockerError;
use crate::io::digest::{HashingReader, HashingWriter};

/// The Go `os.ModeDir` bit, as the engine reports a path's mode.
pub(crate) const GO_MODE_DIR: u32 = 1 << 31;

/// What a copy moved.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopyReport {
    /// The path written: the host file or directory, or the path inside the container.
    pub path: PathBuf,
    /// Whether a directory (rather than a single file) was copied.
    pub is_dir: bool,
    /// For a file, its size; for a directory, the total size of its regular files.
    pub bytes: u64,
    /// For a file, the sha256 of its content; for a directory, the sha256 of the tar
    /// stream that carried it (hex, lowercase).
    pub sha256: String,
    /// How many archive entries were written (files, directories, links).
    pub entries: u64,
}

/// Extracts the single regular file of `archive` to `dest` (temp name, fsync, rename).
pub(crate) fn extract_file(archive: impl Read, dest: &Path) -> Result<CopyReport, DockerError> {
    let mut ar = tar::Archive::new(archive);
    let mut entries = ar
        .entries()
        .map_err(|e| DockerError::io("read the archive for", dest, e))?;
    let mut entry = entries
        .next()
        .ok_or_else(|| {
            DockerError::io(
                "read the archive for",
                dest,
                io::ErrorKind::UnexpectedEof.into(),
            )
        })?
        .map_err(|e| DockerError::io("read the archive for", dest, e))?;
    if !entry.header().entry_type().is_file() {
        return Err(DockerError::io(
            "copy a non-regular file to",
            dest,
            io::Error::other("the source is not a regular file or directory"),
        ));
    }
    let mode = entry.header().mode().unwrap_or(0o644);
    let tmp = temp_sibling(dest);
    let result = (|| {
        let mut file = fs::File::create(&tmp).map_err(|e| DockerError::io("create", &tmp, e))?;
        let mut reader = HashingReader::new(&mut entry);
        io::copy(&mut reader, &mut file).map_err(|e| DockerError::io("write", &tmp, e))?;
        set_mode(&file, mode);
        file.sync_all()
            .map_err(|e| DockerError::io("sync", &tmp, e))?;
        let (_, digest) = reader
            .finish()
            .map_err(|e| DockerError::io("read", dest, e))?;
        let (bytes, sha256) = (digest.bytes, digest.sha256);
        fs::rename(&tmp, dest).map_err(|e| DockerError::io("rename into", dest, e))?;
        Ok(CopyReport {
            path: dest.to_owned(),
            is_dir: false,
            bytes,
            sha256,
            entries: 1,
        })
    })();
    if result.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    // Read the end-of-archive blocks so the engine's response ends cleanly.
    let _ = io::copy(&mut ar.into_inner(), &mut io::sink());
    result
}

/// Extracts a directory archive (whose entries all start with the directory's name) to
/// `dest`, which must not exist yet, with the io module's safe extractor: into a temporary
/// sibling, then renamed; entries that would land outside `dest` are refused.
pub(crate) fn extract_dir(archive: impl Read, dest: &Path) -> Result<CopyReport, DockerError> {
    if fs::symlink_metadata(dest).is_ok() {
        return Err(DockerError::io(
            "copy a directory to",
            dest,
            io::Error::new(io::ErrorKind::AlreadyExists, "it already exists"),
        ));
    }
    let info =
        crate::io::archive::extract_stream(archive, dest, dest, true).map_err(|e| match e {
            crate::io::Error::UnsafeEntry { entry, reason, .. } => DockerError::UnsafeEntry {
                entry: format!("{entry} ({reason})"),
                dest: dest.to_owned(),
            },
            other => DockerError::io("extract into", dest, io::Error::other(other.to_string())),
        })?;
    Ok(CopyReport {
        path: dest.to_owned(),
        is_dir: true,
        bytes: info.bytes,
        sha256: info.archive_sha256,
        // The copied directory's own entry is the destination, not an entry in it.
        entries: info.entries.saturating_sub(1),
    })
}

fn temp_sibling(dest: &Path) -> PathBuf {
    let name = dest
        .file_name()
        .map_or_else(|| "copy".into(), |n| n.to_string_lossy().into_owned());
    dest.with_file_name(format!(".{name}.rb-tmp-{}", std::process::id()))
}

fn set_mode(file: &fs::File, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    let _ = file.set_permissions(fs::Permissions::from_mode(mode & 0o7777));
}

/// Writes a tar of `src` (a file or a directory, not following symlinks inside it) to
/// `out`, its top entry named `name`. Entries are sorted, so the same tree gives the same
/// stream apart from times and owners.
pub(crate) fn build(src: &Path, name: &str, out: impl Write) -> Result<CopyReport, DockerError> {
    let meta = fs::metadata(src).map_err(|e| DockerError::io("read", src, e))?;
    let mut builder = tar::Builder::new(HashingWriter::new(out));
    builder.follow_symlinks(false);
    let write_err = |e| DockerError::io("send", src, e);
    let report = if meta.is_dir() {
        let (bytes, entries) = append_tree(&mut builder, src, Path::new(name))?;
        CopyReport {
            path: src.to_owned(),
            is_dir: true,
            bytes,
            sha256: String::new(),
            entries,
        }
    } else {
        let mut header = tar::Header::new_gnu();
        header.set_metadata(&meta);
        let file = fs::File::open(src).map_err(|e| DockerError::io("open", src, e))?;
        let mut reader = HashingReader::new(file);
        builder
            .append_data(&mut header, name, &mut reader)
            .map_err(write_err)?;
        let (_, digest) = reader
            .finish()
            .map_err(|e| DockerError::io("read", src, e))?;
        let (bytes, sha256) = (digest.bytes, digest.sha256);
        CopyReport {
            path: src.to_owned(),
            is_dir: false,
            bytes,
            sha256,
            entries: 1,
        }
    };
    let mut out = builder.into_inner().map_err(write_err)?;
    out.flush().map_err(write_err)?;
    if report.is_dir {
        let (_, digest) = out.finish();
        return Ok(CopyReport {
            sha256: digest.sha256,
            ..report
        });
    }
    Ok(report)
}

fn append_tree<W: Write>(
    builder: &mut tar::Builder<W>,
    dir: &Path,
    name: &Path,
) -> Result<(u64, u64), DockerError> {
    builder
        .append_path_with_name(dir, name)
        .map_err(|e| DockerError::io("send", dir, e))?;
    let (mut bytes, mut entries) = (0, 1);
    let mut children: Vec<_> = fs::read_dir(dir)
        .map_err(|e| DockerError::io("list", dir, e))?
        .collect::<Result<_, _>>()
        .map_err(|e| DockerError::io("list", dir, e))?;
    children.sort_by_key(fs::DirEntry::file_name);
    for child in children {
        let path = child.path();
        let child_name = name.join(child.file_name());
        let meta = fs::symlink_metadata(&path).map_err(|e| DockerError::io("read", &path, e))?;
        if meta.is_dir() {
            let (b, e) = append_tree(builder, &path, &child_name)?;
            bytes += b;
            entries += e;
        } else {
            if meta.is_file() {
                bytes += meta.len();
            }
            builder
                .append_path_with_name(&path, &child_name)
                .map_err(|e| DockerError::io("send", &path, e))?;
            entries += 1;
        }
    }
    Ok((bytes, entries))
}

#[cfg(test)]
mod tests {
    use super::extract_dir;
    use crate::docker::DockerError;

    /// A tar whose entries are written raw, bypassing the builder's own path checks.
    fn raw_tar(entries: &[(&str, tar::EntryType, &str)]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (path, kind, link) in entries {
            let mut h = tar::Header::new_old();
            h.as_old_mut().name[..path.len()].copy_from_slice(path.as_bytes());
            h.as_old_mut().linkname[..link.len()].copy_from_slice(link.as_bytes());
            h.set_entry_type(*kind);
            h.set_mode(0o755);
            h.set_size(0);
            h.set_cksum();
            b.append(&h, &[][..]).unwrap();
        }
        b.into_inner().unwrap()
    }

    #[test]
    fn extraction_refuses_escapes() {
        use tar::EntryType::{Directory, Link, Regular, Symlink};
        let cases: [&[(&str, tar::EntryType, &str)]; 4] = [
            &[("d/", Directory, ""), ("d/../../evil", Regular, "")],
            &[("d/", Directory, ""), ("d/l", Symlink, "../../etc")],
            &[("d/", Directory, ""), ("d/l", Symlink, "/etc")],
            &[("d/", Directory, ""), ("d/h", Link, "/etc/passwd")],
        ];
        for entries in cases {
            let tmp = tempfile::tempdir().unwrap();
            let dest = tmp.path().join("out");
            let err = extract_dir(&raw_tar(entries)[..], &dest).unwrap_err();
            assert!(matches!(err, DockerError::UnsafeEntry { .. }), "{err}");
            assert!(!dest.exists(), "nothing left under the final name");
            assert_eq!(
                std::fs::read_dir(tmp.path()).unwrap().count(),
                0,
                "temp dir removed"
            );
        }
        // Through a chain of links that each look harmless: `s/a -> ..` is the root, so
        // `s/a/b -> ..` lands at the root and leaves it; a hard link or a file through `b`
        // would then reach outside.
        for last in [("d/h", Link, "d/b/victim"), ("d/s/a/b/pwned", Regular, "")] {
            let tmp = tempfile::tempdir().unwrap();
            std::fs::write(tmp.path().join("victim"), "outside").unwrap();
            let dest = tmp.path().join("out");
            let entries = [
                ("d/", Directory, ""),
                ("d/s/", Directory, ""),
                ("d/s/a", Symlink, ".."),
                ("d/s/a/b", Symlink, ".."),
                last,
            ];
            let err = extract_dir(&raw_tar(&entries)[..], &dest).unwrap_err();
            assert!(matches!(err, DockerError::UnsafeEntry { .. }), "{err}");
            assert!(!dest.exists());
            let left: Vec<_> = std::fs::read_dir(tmp.path()).unwrap().collect();
            assert_eq!(left.len(), 1, "only the victim: {left:?}");
            assert_eq!(
                std::fs::read_to_string(tmp.path().join("victim")).unwrap(),
                "outside"
            );
        }
        let tmp = tempfile::tempdir().unwrap();
        let ok = raw_tar(&[
            ("d/", Directory, ""),
            ("d/s/", Directory, ""),
            ("d/s/l", Symlink, "../x"),
            ("d/f", Regular, ""),
            ("d/s/h", Link, "d/f"),
        ]);
        let out = tmp.path().join("out");
        let report = extract_dir(&ok[..], &out).unwrap();
        assert_eq!(report.entries, 4);
        assert!(out.join("s/h").is_file(), "hard link target stripped too");
        assert!(out.join("s/l").symlink_metadata().unwrap().is_symlink());
    }
}
