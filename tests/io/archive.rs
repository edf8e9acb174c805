//! Archives: round trips with GNU tar both ways, and hostile archives refused.

use std::collections::BTreeMap;
use std::fs;
use std::os::unix::fs::{PermissionsExt, symlink};
use std::path::{Path, PathBuf};
use std::process::Command;

use rb::io::Error;
use rb::io::archive::{ArchiveFormat, create_archive, extract_archive};
use tar::{EntryType, Header};
use walkdir::WalkDir;

const FORMATS: [(ArchiveFormat, &str, &str); 3] = [
    (ArchiveFormat::Tar, "tar", "-f"),
    (ArchiveFormat::TarGz, "tar.gz", "-zf"),
    (ArchiveFormat::TarZst, "tar.zst", "--zstd"),
];

fn tar(args: &[&str]) {
    let out = Command::new("tar")
        .args(args)
        .output()
        .unwrap_or_else(|e| panic!("GNU `tar` (and `zstd`) is required by this test: {e}"));
    assert!(
        out.status.success(),
        "`tar {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// GNU tar with the compression flag of `format` (`--zstd` takes the file after `-f`).
fn gnu_tar(mode: &str, flag: &str, file: &Path, dir: &Path, extra: &[&str]) {
    let mut args = vec![mode, "-C", dir.to_str().unwrap()];
    if flag == "--zstd" {
        args.extend(["--zstd", "-f"]);
    } else {
        args.push(flag);
    }
    args.push(file.to_str().unwrap());
    args.extend(extra);
    tar(&args);
}

fn set_mtime(p: &Path, secs: i64) {
    let t = filetime::FileTime::from_unix_time(secs, 0);
    filetime::set_symlink_file_times(p, t, t).unwrap();
}

/// A data-directory-like tree: modes, nested and empty directories, symlinks, a long name.
fn make_tree(root: &Path) {
    fs::create_dir_all(root.join("base/1/sub")).unwrap();
    fs::create_dir_all(root.join("pg_wal/archive_status")).unwrap();
    fs::create_dir(root.join("empty")).unwrap();
    let long = "n".repeat(120);
    let files: [(&str, u32, usize); 6] = [
        ("PG_VERSION", 0o600, 3),
        ("base/1/16384", 0o600, 300_000),
        ("base/1/sub/x y", 0o640, 10),
        ("run.sh", 0o755, 20),
        ("pg_wal/000000010000000000000001", 0o600, 100_000),
        ("server.log", 0o644, 5),
    ];
    for (i, (name, mode, size)) in files.iter().enumerate() {
        let p = root.join(name);
        let body: Vec<u8> = (0..*size)
            .map(|j| u8::try_from((i * 31 + j * 7) % 251).unwrap())
            .collect();
        fs::write(&p, body).unwrap();
        fs::set_permissions(&p, fs::Permissions::from_mode(*mode)).unwrap();
    }
    fs::write(root.join("base").join(&long), "long name").unwrap();
    symlink("base/1/16384", root.join("rel-link")).unwrap();
    symlink("../PG_VERSION", root.join("base/up-link")).unwrap();
    symlink("dangling-but-inside", root.join("dangling")).unwrap();
    fs::set_permissions(root.join("empty"), fs::Permissions::from_mode(0o700)).unwrap();
    for e in WalkDir::new(root).min_depth(1) {
        set_mtime(e.unwrap().path(), 1_600_000_000);
    }
}

#[derive(Debug, PartialEq)]
enum Node {
    File {
        mode: u32,
        mtime: i64,
        body: Vec<u8>,
    },
    Dir {
        mode: u32,
    },
    Link(PathBuf),
}

fn snapshot(root: &Path) -> BTreeMap<PathBuf, Node> {
    WalkDir::new(root)
        .min_depth(1)
        .into_iter()
        .map(|e| {
            let e = e.unwrap();
            let m = e.path().symlink_metadata().unwrap();
            let node = if m.file_type().is_symlink() {
                Node::Link(fs::read_link(e.path()).unwrap())
            } else if m.is_dir() {
                Node::Dir {
                    mode: m.permissions().mode() & 0o7777,
                }
            } else {
                Node::File {
                    mode: m.permissions().mode() & 0o7777,
                    mtime: filetime::FileTime::from_last_modification_time(&m).unix_seconds(),
                    body: fs::read(e.path()).unwrap(),
                }
            };
            (e.path().strip_prefix(root).unwrap().to_path_buf(), node)
        })
        .collect()
}

#[test]
fn gnu_tar_reads_what_rb_writes() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src);
    let expected = snapshot(&src);
    for (format, ext, flag) in FORMATS {
        let file = work.path().join(format!("out.{ext}"));
        assert_eq!(ArchiveFormat::from_extension(&file), Some(format));
        let info = create_archive(&[".".into()], &src, &file, &[], format).unwrap();
        assert_eq!(info.entries, expected.len() as u64);
        assert_eq!(info.bytes, fs::metadata(&file).unwrap().len());
        assert_eq!(
            info.sha256,
            rb::io::digest::sha256_file(&file).unwrap().sha256
        );
        let out = work.path().join(format!("gnu-{ext}"));
        fs::create_dir(&out).unwrap();
        gnu_tar("-x", flag, &file, &out, &[]);
        assert_eq!(snapshot(&out), expected, "{ext}");
    }
}

#[test]
fn rb_reads_what_gnu_tar_writes() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src);
    let expected = snapshot(&src);
    for (format, ext, flag) in FORMATS {
        let file = work.path().join(format!("gnu.{ext}"));
        gnu_tar("-c", flag, &file, &src, &["."]);
        let dest = work.path().join(format!("rb-{ext}"));
        let info = extract_archive(&file, &dest, format).unwrap();
        assert_eq!(snapshot(&dest), expected, "{ext}");
        assert_eq!(info.entries, expected.len() as u64 + 1, "plus `./`");
        assert_eq!(info.archive_bytes, fs::metadata(&file).unwrap().len());
        assert_eq!(
            info.archive_sha256,
            rb::io::digest::sha256_file(&file).unwrap().sha256
        );
    }
}

#[test]
fn excludes_work_like_gnu_tar() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src);
    let file = src.join("inside.tar.zst");
    let excludes = [
        "pg_wal".to_owned(),
        "*.log".to_owned(),
        "base/1/sub".to_owned(),
    ];
    // The archive sits inside its own source tree and must not archive itself.
    create_archive(&[".".into()], &src, &file, &excludes, ArchiveFormat::TarZst).unwrap();
    let dest = work.path().join("x");
    extract_archive(&file, &dest, ArchiveFormat::TarZst).unwrap();
    let names: Vec<_> = snapshot(&dest).into_keys().collect();
    assert!(!names.iter().any(|n| n.starts_with("pg_wal")), "{names:?}");
    assert!(
        !names.iter().any(|n| n.starts_with("base/1/sub")),
        "{names:?}"
    );
    assert!(!names.contains(&PathBuf::from("server.log")));
    assert!(!names.contains(&PathBuf::from("inside.tar.zst")));
    assert!(names.contains(&PathBuf::from("base/1/16384")));
    // Sources are named relative to base_dir.
    let file = work.path().join("two.tar");
    let info = create_archive(
        &["PG_VERSION".into(), src.join("base/1")],
        &src,
        &file,
        &[],
        ArchiveFormat::Tar,
    )
    .unwrap();
    assert_eq!(info.entries, 5);
}

/// A source outside `base_dir` (absolute, or `..` leading out) is archived under its own
/// name, as `tar -C PARENT NAME`; paths are normalised lexically (`base_dir` too); no entry
/// name holds `..`; two sources that would share a name are refused.
#[test]
fn sources_outside_base_dir_are_archived_under_their_own_names() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src);
    let uploads = work.path().join("srv/uploads");
    fs::create_dir_all(uploads.join("2026")).unwrap();
    fs::write(uploads.join("2026/a.pdf"), b"pdf").unwrap();
    let env_file = work.path().join("etc/app.env");
    fs::create_dir_all(env_file.parent().unwrap()).unwrap();
    fs::write(&env_file, b"KEY=1\n").unwrap();
    let file = work.path().join("out.tar");
    // base_dir with `..` in it, a relative source leading out, an absolute one elsewhere, and
    // one inside written the long way round.
    let base = src.join("base/..");
    create_archive(
        &[
            "../srv/uploads".into(),
            env_file.clone(),
            "base/../PG_VERSION".into(),
        ],
        &base,
        &file,
        &[],
        ArchiveFormat::Tar,
    )
    .unwrap();
    let names: Vec<PathBuf> = tar::Archive::new(fs::File::open(&file).unwrap())
        .entries()
        .unwrap()
        .map(|e| e.unwrap().path().unwrap().components().collect())
        .collect();
    for want in [
        "uploads",
        "uploads/2026",
        "uploads/2026/a.pdf",
        "app.env",
        "PG_VERSION",
    ] {
        assert!(names.contains(&PathBuf::from(want)), "{want} in {names:?}");
    }
    assert!(
        !names
            .iter()
            .any(|n| n.components().any(|c| c == std::path::Component::ParentDir)),
        "{names:?}"
    );
    let out = work.path().join("back");
    fs::create_dir(&out).unwrap();
    extract_archive(&file, &out, ArchiveFormat::Tar).unwrap();
    assert_eq!(fs::read(out.join("uploads/2026/a.pdf")).unwrap(), b"pdf");

    let twice = create_archive(
        &[uploads.clone(), work.path().join("srv/../srv/uploads")],
        &src,
        &work.path().join("twice.tar"),
        &[],
        ArchiveFormat::Tar,
    )
    .unwrap_err();
    assert_eq!(
        twice.to_string(),
        "two sources would both be archived as `uploads`"
    );
}

#[test]
fn existing_destination_keeps_its_mode_and_refuses_collisions() {
    let work = tempfile::tempdir().unwrap();
    let src = work.path().join("src");
    make_tree(&src);
    let file = work.path().join("a.tar.gz");
    create_archive(&[".".into()], &src, &file, &[], ArchiveFormat::TarGz).unwrap();
    let pgdata = work.path().join("pgdata");
    fs::create_dir(&pgdata).unwrap();
    fs::set_permissions(&pgdata, fs::Permissions::from_mode(0o700)).unwrap();
    extract_archive(&file, &pgdata, ArchiveFormat::TarGz).unwrap();
    assert_eq!(snapshot(&pgdata), snapshot(&src));
    assert_eq!(
        fs::metadata(&pgdata).unwrap().permissions().mode() & 0o777,
        0o700
    );
    // Again: every top-level name now exists, so nothing is merged.
    let before = snapshot(&pgdata);
    let err = extract_archive(&file, &pgdata, ArchiveFormat::TarGz).unwrap_err();
    assert!(matches!(err, Error::AlreadyExists { .. }), "{err}");
    assert_eq!(
        snapshot(&pgdata),
        before,
        "no staging directory left, nothing changed"
    );
}

// ---- hostile archives ----

/// Appends an entry with raw name and link fields, bypassing the `tar` crate's checks.
fn raw_entry(b: &mut tar::Builder<Vec<u8>>, kind: EntryType, name: &str, link: &str, body: &[u8]) {
    let mut h = Header::new_gnu();
    h.set_entry_type(kind);
    h.set_mode(0o644);
    h.set_size(body.len() as u64);
    h.set_mtime(1_600_000_000);
    let g = h.as_gnu_mut().unwrap();
    g.name[..name.len()].copy_from_slice(name.as_bytes());
    g.linkname[..link.len()].copy_from_slice(link.as_bytes());
    h.set_cksum();
    b.append(&h, body).unwrap();
}

/// Entry type, name, link target.
type RawEntry<'a> = (EntryType, &'a str, &'a str);

fn hostile(entries: &[RawEntry]) -> Vec<u8> {
    let mut b = tar::Builder::new(Vec::new());
    for (kind, name, link) in entries {
        let body: &[u8] = if *kind == EntryType::Regular {
            b"pwned\n"
        } else {
            b""
        };
        raw_entry(&mut b, *kind, name, link, body);
    }
    b.into_inner().unwrap()
}

/// Extracts `archive` into a fresh `dest`; it must be refused naming `entry`, and leave
/// nothing in `work` (besides the archive) nor in `outside`.
fn assert_refused(work: &Path, outside: &Path, archive: &Path, entry: &str, reason: &str) {
    let dest = work.join("dest");
    let before = snapshot(outside);
    let err = extract_archive(archive, &dest, ArchiveFormat::Tar).unwrap_err();
    let msg = err.to_string();
    assert!(matches!(err, Error::UnsafeEntry { .. }), "{msg}");
    assert!(
        msg.starts_with(&format!("refusing archive entry `{entry}` in `")),
        "{msg}"
    );
    assert!(msg.contains(reason), "{msg}");
    assert!(!dest.exists());
    let left: Vec<_> = fs::read_dir(work)
        .unwrap()
        .map(|e| e.unwrap().file_name())
        .collect();
    assert_eq!(left.len(), 1, "staging removed: {left:?}");
    assert_eq!(snapshot(outside), before, "nothing written outside");
}

#[test]
fn hostile_archives_built_with_the_tar_crate_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let o = outside.path().to_str().unwrap().to_owned();
    let abs = format!("{o}/abs");
    let cases: Vec<(Vec<RawEntry>, &str, String)> = vec![
        (
            vec![(EntryType::Regular, "../evil", "")],
            "../evil",
            "has a `..` component".into(),
        ),
        (
            vec![(EntryType::Regular, "a/../../evil", "")],
            "a/../../evil",
            "`..`".into(),
        ),
        (
            vec![(EntryType::Regular, &abs, "")],
            &abs,
            "is absolute".into(),
        ),
        (
            vec![(EntryType::Symlink, "l", &o)],
            "l",
            "leaves the destination".into(),
        ),
        (
            vec![(EntryType::Symlink, "l", "../x")],
            "l",
            "leaves the destination".into(),
        ),
        (
            vec![(EntryType::Symlink, "d/l", "../../x")],
            "d/l",
            "leaves the destination".into(),
        ),
        // The classic: a harmless-looking link, then a file written through it.
        (
            vec![
                (EntryType::Symlink, "l", "."),
                (EntryType::Regular, "l/f", ""),
            ],
            "l/f",
            "its parent `l` is a symbolic link made by an earlier entry".into(),
        ),
        (
            vec![
                (EntryType::Symlink, "l", &o),
                (EntryType::Regular, "l/pwned", ""),
            ],
            "l",
            "leaves the destination".into(),
        ),
        // Escapes only through another link: `a` is the root, so `a/..` is outside.
        (
            vec![
                (EntryType::Symlink, "a", "."),
                (EntryType::Symlink, "b", "a/../x"),
            ],
            "b",
            "leaves the destination".into(),
        ),
        // Same, with the link made after the one that goes through it.
        (
            vec![
                (EntryType::Directory, "d", ""),
                (EntryType::Symlink, "d/b", "x/../../out"),
                (EntryType::Symlink, "d/x", ".."),
            ],
            "d/b",
            "leaves the destination".into(),
        ),
        (
            vec![(EntryType::Link, "h", "/etc/passwd")],
            "h",
            "hard link target is absolute".into(),
        ),
        (
            vec![(EntryType::Link, "h", "../../etc/passwd")],
            "h",
            "hard link target has a `..`".into(),
        ),
        (
            vec![(EntryType::Link, "h", "nothing")],
            "h",
            "not a file extracted earlier".into(),
        ),
        (
            vec![
                (EntryType::Symlink, "l", "."),
                (EntryType::Link, "h", "l/x"),
            ],
            "h",
            "not a file extracted earlier".into(),
        ),
    ];
    for (entries, entry, reason) in cases {
        let work = tempfile::tempdir().unwrap();
        let archive = work.path().join("evil.tar");
        fs::write(&archive, hostile(&entries)).unwrap();
        assert_refused(work.path(), outside.path(), &archive, entry, &reason);
    }
}

#[test]
fn hostile_archives_built_with_gnu_tar_are_refused() {
    let outside = tempfile::tempdir().unwrap();
    let target = outside.path().join("victim");
    fs::write(&target, "original").unwrap();
    let payload = tempfile::tempdir().unwrap();
    let p = payload.path();
    fs::write(p.join("payload"), "pwned").unwrap();
    symlink(outside.path(), p.join("escape")).unwrap();
    let victim = target.to_str().unwrap();
    let cases: Vec<(Vec<String>, String, &str)> = vec![
        // `-P` keeps an absolute name.
        (
            vec![
                "-P".into(),
                format!("--transform=s,^.*payload$,{victim},"),
                "payload".into(),
            ],
            victim.trim_start_matches('/').to_owned(),
            "is absolute",
        ),
        (
            vec!["--transform=s,^,../../,".into(), "payload".into()],
            "../../payload".into(),
            "`..`",
        ),
        (
            vec!["escape".into()],
            "escape".into(),
            "leaves the destination",
        ),
    ];
    for (args, entry, reason) in cases {
        let work = tempfile::tempdir().unwrap();
        let archive = work.path().join("evil.tar");
        let mut a = vec![
            "-c".to_owned(),
            "-C".into(),
            p.to_str().unwrap().into(),
            "-f".into(),
        ];
        a.push(archive.to_str().unwrap().into());
        a.extend(args);
        tar(&a.iter().map(String::as_str).collect::<Vec<_>>());
        let entry = if reason == "is absolute" {
            format!("/{entry}")
        } else {
            entry
        };
        assert_refused(work.path(), outside.path(), &archive, &entry, reason);
    }
    // Symlink, then a file under it appended by a second GNU tar run.
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("evil.tar");
    let a = archive.to_str().unwrap();
    symlink(".", p.join("dot")).unwrap();
    tar(&["-c", "-C", p.to_str().unwrap(), "-f", a, "dot"]);
    tar(&[
        "-r",
        "-C",
        p.to_str().unwrap(),
        "-f",
        a,
        "--transform=s,^payload$,dot/pwned,",
        "payload",
    ]);
    assert_refused(
        work.path(),
        outside.path(),
        &archive,
        "dot/pwned",
        "symbolic link made by an earlier entry",
    );
    // A hard link to /etc/passwd.
    let work = tempfile::tempdir().unwrap();
    let archive = work.path().join("evil.tar");
    let a = archive.to_str().unwrap();
    fs::hard_link(p.join("payload"), p.join("second")).unwrap();
    // `R`: rename only the link target, so `second` is stored as a hard link to /etc/passwd.
    tar(&[
        "-c",
        "-C",
        p.to_str().unwrap(),
        "-f",
        a,
        "-P",
        "--transform=s,^payload$,/etc/passwd,R",
        "payload",
        "second",
    ]);
    assert_refused(
        work.path(),
        outside.path(),
        &archive,
        "second",
        "hard link target is absolute",
    );
    assert_eq!(fs::read_to_string(&target).unwrap(), "original");
}
