//! Atomic publish: nothing under the final name until commit, nothing left after an error.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use rb::io::Error;
use rb::io::atomic::{AtomicFile, AtomicOptions};
use rb::io::compress::{Format, compress_file};
use rb::io::sink::FileSink;

fn names(dir: &Path) -> Vec<String> {
    let mut v: Vec<_> = fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    v.sort();
    v
}

#[test]
fn commit_publishes_only_at_the_end() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out.dump");
    let mut f = AtomicFile::create(&path).unwrap();
    let temp = f.temp_path().to_path_buf();
    let temp_name = temp.file_name().unwrap().to_string_lossy().into_owned();
    assert_eq!(
        temp.parent(),
        Some(dir.path()),
        "temp file beside the final one"
    );
    let prefix = format!(".out.dump.rb-tmp.{}.", std::process::id());
    assert!(
        temp_name.starts_with(&prefix),
        "hidden temp name {temp_name}"
    );
    f.write_all(b"hello").unwrap();
    assert!(!path.exists(), "final name must not exist before commit");
    assert_eq!(f.commit().unwrap(), path);
    assert_eq!(fs::read(&path).unwrap(), b"hello");
    assert_eq!(
        names(dir.path()),
        ["out.dump"],
        "temp file gone after commit"
    );
}

#[test]
fn drop_without_commit_removes_the_temp_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("x");
    {
        let mut f = AtomicFile::create(&path).unwrap();
        f.write_all(&vec![7; 1_000_000]).unwrap();
        assert!(f.temp_path().exists());
    }
    assert!(names(dir.path()).is_empty(), "{:?}", names(dir.path()));
}

/// A reader that fails after some bytes, like a process's pipe breaking mid-dump.
struct Failing(usize);
impl Read for Failing {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        if self.0 == 0 {
            return Err(io::Error::other("pipe broke"));
        }
        let n = buf.len().min(self.0);
        buf[..n].fill(b'a');
        self.0 -= n;
        Ok(n)
    }
}

#[test]
fn an_error_mid_write_leaves_no_file_anywhere() {
    for compress in [None, Some(Format::Gzip), Some(Format::Zstd)] {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/out");
        let mut sink = FileSink::create(&path, compress, None).unwrap();
        let err = io::copy(&mut Failing(3_000_000), &mut sink).unwrap_err();
        assert_eq!(err.to_string(), "pipe broke");
        drop(sink);
        assert!(names(&dir.path().join("sub")).is_empty(), "{compress:?}");
    }
}

#[test]
fn a_failed_compression_leaves_no_file() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("adir");
    fs::create_dir(&src).unwrap();
    let dest = dir.path().join("adir.gz");
    // Reading a directory fails after the output was created.
    let err = compress_file(&src, Some(&dest), Format::Gzip, None, false).unwrap_err();
    assert!(err.to_string().contains("adir"), "{err}");
    assert_eq!(names(dir.path()), ["adir"]);
}

#[test]
fn refusing_to_overwrite_keeps_the_existing_file() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    let options = AtomicOptions {
        overwrite: false,
        ..AtomicOptions::default()
    };
    fs::write(&path, "old").unwrap();
    let err = AtomicFile::with_options(&path, &options).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert!(err.to_string().ends_with("/f` already exists"), "{err}");

    // The file appears while we write: the commit must not clobber it either.
    fs::remove_file(&path).unwrap();
    let mut f = AtomicFile::with_options(&path, &options).unwrap();
    f.write_all(b"new").unwrap();
    fs::write(&path, "raced").unwrap();
    assert!(matches!(f.commit(), Err(Error::AlreadyExists { .. })));
    assert_eq!(fs::read_to_string(&path).unwrap(), "raced");
    assert_eq!(names(dir.path()), ["f"]);
}

#[test]
fn overwrite_replaces_by_rename() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("f");
    fs::write(&path, "old").unwrap();
    let mut reader = fs::File::open(&path).unwrap();
    let mut f = AtomicFile::create(&path).unwrap();
    f.write_all(b"new").unwrap();
    f.commit().unwrap();
    assert_eq!(fs::read_to_string(&path).unwrap(), "new");
    // A reader of the old file keeps the old inode: the rename replaced it whole.
    let mut old = String::new();
    reader.read_to_string(&mut old).unwrap();
    assert_eq!(old, "old");
}

#[test]
fn parents_are_created_on_request_and_modes_applied() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("a/b/c");
    let err = AtomicFile::create(&path).unwrap_err();
    assert!(
        err.to_string()
            .starts_with("cannot create a temporary file in `"),
        "{err}"
    );
    let options = AtomicOptions {
        create_dirs: true,
        mode: 0o640,
        ..AtomicOptions::default()
    };
    AtomicFile::with_options(&path, &options)
        .unwrap()
        .commit()
        .unwrap();
    let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o640);
}

/// Dumps hold role password hashes and archives hold `.env` files: what rb writes (a step's
/// output file, a compressed or checksum file, a report) is created 0600, whatever the umask
/// would have allowed.
#[test]
fn files_rb_writes_are_for_their_owner_only() {
    let dir = tempfile::tempdir().unwrap();
    let mode = |p: &Path| fs::metadata(p).unwrap().permissions().mode() & 0o777;

    let plain = dir.path().join("report.json");
    AtomicFile::create(&plain).unwrap().commit().unwrap();
    assert_eq!(mode(&plain), 0o600);

    let dump = dir.path().join("d/db.dump.zst");
    let mut sink = FileSink::create(&dump, Some(Format::Zstd), None).unwrap();
    sink.write_all(b"dump").unwrap();
    sink.finish().unwrap();
    assert_eq!(mode(&dump), 0o600);
}
