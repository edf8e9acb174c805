//! `sha256sum`-format files, checked against coreutils both ways.

use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use rb::io::Error;
use rb::io::checksum::{
    read_checksum_file, verify_checksum_file, verify_checksum_files, write_checksum_file,
};
use rb::io::error::VerifyFailure;

fn sha256sum(dir: &Path, args: &[&str]) -> std::process::Output {
    Command::new("sha256sum")
        .args(args)
        .current_dir(dir)
        .output()
        .unwrap_or_else(|e| panic!("`sha256sum` (coreutils) is required by this test: {e}"))
}

/// Files with awkward names: a space, a backslash, a newline, a subdirectory.
fn tree(dir: &Path) -> Vec<PathBuf> {
    fs::create_dir(dir.join("sub")).unwrap();
    let names = [
        "a.dump",
        "with space",
        "back\\slash",
        "new\nline",
        "sub/b.tar.zst",
    ];
    names
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let p = dir.join(n);
            fs::write(&p, format!("content {i}\n").repeat(i * 1000 + 1)).unwrap();
            p
        })
        .collect()
}

#[test]
fn coreutils_accepts_what_rb_writes() {
    let dir = tempfile::tempdir().unwrap();
    let files = tree(dir.path());
    let outside = tempfile::NamedTempFile::new().unwrap();
    fs::write(outside.path(), "elsewhere").unwrap();
    let mut all = files.clone();
    all.push(outside.path().to_path_buf());
    let list = dir.path().join("SHA256SUMS");
    let digests = write_checksum_file(&list, &all).unwrap();
    assert_eq!(digests.len(), 6);
    let text = fs::read_to_string(&list).unwrap();
    assert!(text.contains("  a.dump\n"), "{text}");
    assert!(text.contains("  sub/b.tar.zst\n"), "relative names: {text}");
    assert!(
        text.contains(&format!("  {}\n", outside.path().display())),
        "{text}"
    );
    assert!(text.contains("  new\\nline\n"), "escaped newline: {text}");
    let out = sha256sum(dir.path(), &["-c", "--strict", "SHA256SUMS"]);
    assert!(
        out.status.success(),
        "sha256sum -c: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    // And rb reads its own file back, resolving names beside the list; the file outside the
    // list's directory is verified only when named.
    assert_eq!(verify_checksum_files(&list, &all).unwrap(), digests);
    let err = verify_checksum_file(&list).unwrap_err().to_string();
    assert!(
        err.contains("not under the checksum file's directory"),
        "{err}"
    );
}

#[test]
fn verify_reads_only_the_named_files_and_only_regular_files_under_the_list() {
    // A sums file an attacker wrote: other people's files, a device, a missing file.
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    fs::create_dir(p("sub")).unwrap();
    fs::write(p("sub/good.tar"), "backup").unwrap();
    write_checksum_file(&p("sub/SHA256SUMS"), &[p("sub/good.tar")]).unwrap();
    let zero = "0".repeat(64);
    let mut text = fs::read_to_string(p("sub/SHA256SUMS")).unwrap();
    for name in ["/etc/passwd", "../../etc/passwd", "/dev/zero", "missing"] {
        text.push_str(&zero);
        text.push_str("  ");
        text.push_str(name);
        text.push('\n');
    }
    fs::write(p("sub/SHA256SUMS"), &text).unwrap();
    let list = p("sub/SHA256SUMS");
    // Named: only that file is read.
    let only = verify_checksum_files(&list, &[p("sub/good.tar")]).unwrap();
    assert_eq!(only.len(), 1);
    // All: every other line fails without being read (the device would never end).
    let started = std::time::Instant::now();
    let err = verify_checksum_file(&list).unwrap_err().to_string();
    assert!(started.elapsed() < std::time::Duration::from_secs(10));
    assert!(!err.contains("expected"), "nothing else was hashed: {err}");
    for name in ["/etc/passwd", "/dev/zero", "missing"] {
        assert!(err.contains(name), "{name}: {err}");
    }
    assert!(
        err.contains("not under the checksum file's directory"),
        "{err}"
    );
    let named_device = verify_checksum_files(&list, &[PathBuf::from("/dev/zero")]);
    assert!(
        named_device
            .unwrap_err()
            .to_string()
            .contains("not a regular file")
    );
}

#[test]
fn rb_verifies_what_coreutils_writes() {
    let dir = tempfile::tempdir().unwrap();
    tree(dir.path());
    let names = [
        "a.dump",
        "with space",
        "back\\slash",
        "new\nline",
        "sub/b.tar.zst",
    ];
    for (flags, list) in [
        (&[][..], "text.sha256"),
        (&["-b"][..], "bin.sha256"),
        (&["--tag"][..], "tag.sha256"),
    ] {
        let mut args = flags.to_vec();
        args.extend(names);
        let out = sha256sum(dir.path(), &args);
        assert!(out.status.success());
        let list = dir.path().join(list);
        fs::write(&list, &out.stdout).unwrap();
        let entries = read_checksum_file(&list).unwrap();
        let got: Vec<_> = entries.iter().map(|e| e.name.to_str().unwrap()).collect();
        assert_eq!(got, names, "{flags:?}");
        assert_eq!(entries[0].binary, !flags.is_empty(), "{flags:?}");
        // Verified from another working directory: names resolve beside the list.
        assert_eq!(verify_checksum_file(&list).unwrap().len(), 5, "{flags:?}");
    }
}

#[test]
fn mismatch_and_missing_name_the_files() {
    let dir = tempfile::tempdir().unwrap();
    let files = tree(dir.path());
    let list = dir.path().join("SUMS");
    let digests = write_checksum_file(&list, &files).unwrap();
    fs::write(&files[0], "tampered").unwrap();
    fs::remove_file(&files[4]).unwrap();
    let err = verify_checksum_file(&list).unwrap_err();
    let Error::Verification {
        failures, total, ..
    } = &err
    else {
        panic!("{err}")
    };
    assert_eq!(*total, 5);
    assert_eq!(failures.len(), 2);
    assert!(
        matches!(&failures[0], VerifyFailure::Mismatch { path, expected, .. }
        if path.ends_with("a.dump") && *expected == digests[0].sha256)
    );
    let msg = err.to_string();
    assert!(msg.starts_with("2 of 5 files listed in `"), "{msg}");
    assert!(msg.contains("a.dump` does not match: expected "), "{msg}");
    assert!(msg.contains(&digests[0].sha256), "{msg}");
    assert!(
        msg.contains("sub/b.tar.zst` cannot be read: No such file"),
        "{msg}"
    );
    // coreutils agrees.
    assert!(!sha256sum(dir.path(), &["-c", "SUMS"]).status.success());
}

#[test]
fn malformed_lines_are_errors_with_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let list = dir.path().join("bad");
    fs::write(&list, "# comment\n\nnot a checksum line\n").unwrap();
    let err = read_checksum_file(&list).unwrap_err();
    assert!(
        err.to_string().ends_with(
            "bad` line 3: expected a 64-digit SHA-256, a space, a mode marker and a name"
        ),
        "{err}"
    );
    fs::write(&list, "").unwrap();
    assert!(
        verify_checksum_file(&list)
            .unwrap_err()
            .to_string()
            .ends_with("lists no files")
    );
}

#[test]
fn a_second_write_keeps_the_lines_of_other_files_that_still_exist() {
    let dir = tempfile::tempdir().unwrap();
    let p = |n: &str| dir.path().join(n);
    for (n, c) in [
        ("first.dump", "1"),
        ("gone.dump", "2"),
        ("second.dump", "3"),
    ] {
        fs::write(p(n), c).unwrap();
    }
    let list = p("SHA256SUMS");
    write_checksum_file(&list, &[p("first.dump"), p("gone.dump")]).unwrap();
    fs::remove_file(p("gone.dump")).unwrap();
    fs::write(p("first.dump"), "1").unwrap();
    write_checksum_file(&list, &[p("second.dump")]).unwrap();
    let names: Vec<PathBuf> = read_checksum_file(&list)
        .unwrap()
        .into_iter()
        .map(|e| e.name)
        .collect();
    assert_eq!(
        names,
        [PathBuf::from("first.dump"), PathBuf::from("second.dump")]
    );
    let out = sha256sum(dir.path(), &["-c", "--strict", "SHA256SUMS"]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );

    // Writing a file again replaces its line rather than adding a second one.
    fs::write(p("second.dump"), "changed").unwrap();
    write_checksum_file(&list, &[p("second.dump")]).unwrap();
    assert_eq!(read_checksum_file(&list).unwrap().len(), 2);
    assert!(verify_checksum_file(&list).is_ok());
}
