//! gzip and zstd through rb and through the real `gzip`, `pigz` and `zstd`.

use std::fs;
use std::io::{self, Read, Write};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, SystemTime};

use rb::io::compress::{Decoder, Encoder, Format, compress_file, decompress_file, open_input};
use rb::io::digest::{HashingReader, HashingWriter, sha256_file};
use rb::io::sink::FileSink;

/// Runs a required tool; a missing tool fails the test with the install hint.
fn run(program: &str, args: &[&str]) -> Vec<u8> {
    let out = Command::new(program)
        .args(args)
        .output()
        .unwrap_or_else(|e| {
            panic!("`{program}` is required by this test (apt-get install -y zstd pigz): {e}")
        });
    assert!(
        out.status.success(),
        "`{program} {}` failed: {}",
        args.join(" "),
        String::from_utf8_lossy(&out.stderr)
    );
    out.stdout
}

/// A few MB that compress somewhat: random bytes interleaved with hex text.
fn data(len: usize) -> Vec<u8> {
    let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
    let mut v = Vec::with_capacity(len);
    while v.len() < len {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        if (x >> 60) < 8 {
            v.extend_from_slice(&x.to_le_bytes());
        } else {
            v.extend_from_slice(format!("{x:016x},").as_bytes());
        }
    }
    v.truncate(len);
    v
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

fn sha256sum(p: &Path) -> String {
    String::from_utf8(run("sha256sum", &[s(p)])).unwrap()[..64].to_owned()
}

#[test]
fn round_trips_checked_by_the_real_tools() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("db.dump");
    let bytes = data(5_000_000);
    fs::write(&src, &bytes).unwrap();
    fs::set_permissions(&src, fs::Permissions::from_mode(0o640)).unwrap();
    let mtime = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
    fs::File::options()
        .write(true)
        .open(&src)
        .unwrap()
        .set_modified(mtime)
        .unwrap();
    for (format, test, cat) in [
        (Format::Gzip, ["gzip", "-t"], ["gzip", "-dc"]),
        (Format::Zstd, ["zstd", "-tq"], ["zstd", "-dcq"]),
    ] {
        let out = compress_file(&src, None, format, None, false).unwrap();
        assert_eq!(out.path, format.add_extension(&src));
        assert_eq!(out.sha256, sha256sum(&out.path), "digest of the output");
        assert_eq!(out.bytes, fs::metadata(&out.path).unwrap().len());
        assert!(out.bytes < bytes.len() as u64);
        run(test[0], &[test[1], s(&out.path)]);
        assert!(
            run(cat[0], &[cat[1], s(&out.path)]) == bytes,
            "{format:?} decoded by the tool"
        );
        let meta = fs::metadata(&out.path).unwrap();
        assert_eq!(meta.permissions().mode() & 0o777, 0o640);
        assert_eq!(meta.modified().unwrap(), mtime);

        let back = dir.path().join(format!("back-{format:?}"));
        let d = decompress_file(&out.path, Some(&back), None, false).unwrap();
        assert!(fs::read(&back).unwrap() == bytes);
        assert_eq!(d.sha256, sha256sum(&src));
        assert_eq!(d.bytes, bytes.len() as u64);
    }
}

#[test]
fn every_thread_count_writes_valid_streams() {
    let bytes = data(3_000_000);
    let dir = tempfile::tempdir().unwrap();
    for format in [Format::Gzip, Format::Zstd] {
        for threads in [1, 2, 3] {
            let path = dir
                .path()
                .join(format!("t{threads}.{}", format.extension()));
            let mut enc =
                Encoder::new(fs::File::create(&path).unwrap(), format, Some(1), threads).unwrap();
            for chunk in bytes.chunks(7777) {
                enc.write_all(chunk).unwrap();
            }
            enc.finish().unwrap().sync_all().unwrap();
            let tool = if format == Format::Gzip {
                "gzip"
            } else {
                "zstd"
            };
            assert!(
                run(tool, &["-dc", s(&path)]) == bytes,
                "{format:?} threads {threads}"
            );
        }
    }
}

#[test]
fn reads_what_the_tools_write() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("plain");
    let bytes = data(4_000_000);
    fs::write(&src, &bytes).unwrap();
    let cases: [(&str, &[&str], &str); 4] = [
        ("gzip", &["-6", "-c"], "a.gz"),
        ("pigz", &["-p", "2", "-c"], "b.gz"),
        ("zstd", &["-T2", "-3", "-c", "-q"], "c.zst"),
        ("zstd", &["--long", "-19", "-c", "-q"], "d.zst"),
    ];
    for (tool, args, name) in cases {
        let mut args = args.to_vec();
        args.push(s(&src));
        let out = dir.path().join(name);
        fs::write(&out, run(tool, &args)).unwrap();
        let mut r = open_input(&out, true).unwrap();
        let mut got = Vec::new();
        r.read_to_end(&mut got).unwrap();
        assert!(got == bytes, "{tool} {name}");
    }
    // Concatenated gzip members decode as one stream, as with `gzip -dc`.
    let mut two = fs::read(dir.path().join("a.gz")).unwrap();
    two.extend(fs::read(dir.path().join("b.gz")).unwrap());
    let mut got = Vec::new();
    Decoder::new(&two[..], Format::Gzip)
        .unwrap()
        .read_to_end(&mut got)
        .unwrap();
    assert_eq!(got.len(), 2 * bytes.len());
}

#[test]
fn corrupt_input_fails_and_writes_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("x");
    fs::write(&src, data(1_000_000)).unwrap();
    for format in [Format::Gzip, Format::Zstd] {
        let out = compress_file(&src, None, format, Some(1), false).unwrap();
        let mut b = fs::read(&out.path).unwrap();
        let len = b.len();
        b.truncate(len / 2);
        fs::write(&out.path, &b).unwrap();
        let dest = dir.path().join("restored");
        let err = decompress_file(&out.path, Some(&dest), None, false).unwrap_err();
        assert!(err.to_string().contains(s(&out.path)), "{err}");
        assert!(!dest.exists());
    }
    let leftovers: Vec<PathBuf> = fs::read_dir(dir.path())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.to_string_lossy().contains("rb-tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn remove_source_and_default_names() {
    let dir = tempfile::tempdir().unwrap();
    let src = dir.path().join("a.sql");
    fs::write(&src, "select 1;\n").unwrap();
    let z = compress_file(&src, None, Format::Zstd, Some(19), true).unwrap();
    assert!(!src.exists());
    assert_eq!(z.path, dir.path().join("a.sql.zst"));
    let d = decompress_file(&z.path, None, None, true).unwrap();
    assert_eq!(d.path, src);
    assert!(!z.path.exists());
    assert_eq!(fs::read_to_string(&src).unwrap(), "select 1;\n");
    let err = decompress_file(&src, None, None, false).unwrap_err();
    assert_eq!(
        err.to_string(),
        format!(
            "cannot tell the compression format of `{}` from its extension",
            src.display()
        )
    );
}

#[test]
fn extensions_and_levels() {
    assert_eq!(Format::from_extension("a.dump.gz"), Some(Format::Gzip));
    assert_eq!(Format::from_extension("a.zst"), Some(Format::Zstd));
    assert_eq!(Format::from_extension("a.tar"), None);
    assert_eq!(
        Format::Gzip.add_extension("x/a.dump"),
        Path::new("x/a.dump.gz")
    );
    assert_eq!(
        Format::Zstd.strip_extension("x/a.dump.zst"),
        Some("x/a.dump".into())
    );
    assert_eq!(Format::Zstd.strip_extension("x/a.dump.gz"), None);
    assert_eq!(Format::Gzip.strip_extension(".gz"), None);
    let err = Encoder::new(io::sink(), Format::Gzip, Some(10), 1).unwrap_err();
    assert_eq!(err.to_string(), "Gzip level 10 is out of range 0..=9");
    assert!(Encoder::new(io::sink(), Format::Zstd, Some(23), 1).is_err());
}

#[test]
fn sink_and_hashing_adapters() {
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("out/stdout.zst");
    let bytes = data(2_000_000);
    let mut sink = FileSink::create(&path, Some(Format::Zstd), None).unwrap();
    for chunk in bytes.chunks(65_536) {
        sink.write_all(chunk).unwrap();
    }
    assert!(!path.exists());
    let d = sink.finish().unwrap();
    assert_eq!(d.sha256, sha256sum(&path));
    assert!(run("zstd", &["-dcq", s(&path)]) == bytes);
    assert_eq!(sha256_file(&path).unwrap(), d);

    let mut w = HashingWriter::new(Vec::new());
    w.write_all(b"abc").unwrap();
    let (v, digest) = w.finish();
    assert_eq!(v, b"abc");
    assert_eq!(
        digest.sha256,
        "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
    );
    let r = HashingReader::new(&b"abc"[..]);
    assert_eq!(r.finish().unwrap().1, digest);
}

/// A writer that breaks after a while, like a full disk.
struct Full(usize);
impl Write for Full {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        if self.0 < buf.len() {
            return Err(io::Error::new(io::ErrorKind::StorageFull, "disk full"));
        }
        self.0 -= buf.len();
        Ok(buf.len())
    }
    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[test]
fn write_errors_surface_and_dropping_never_panics() {
    let bytes = data(4_000_000);
    for format in [Format::Gzip, Format::Zstd] {
        for threads in [1, 2] {
            let mut enc = Encoder::new(Full(100_000), format, Some(1), threads).unwrap();
            let written = bytes.chunks(65_536).try_for_each(|c| enc.write_all(c));
            let result = written.and_then(|()| enc.finish().map(drop));
            assert!(
                result.is_err(),
                "{format:?} {threads}: the error must surface"
            );
            // An encoder abandoned mid-stream is dropped without panicking.
            let mut enc = Encoder::new(Full(100_000), format, Some(1), threads).unwrap();
            let _ = bytes.chunks(65_536).try_for_each(|c| enc.write_all(c));
            drop(enc);
        }
    }
}

#[test]
fn adapters_are_send() {
    fn send<T: Send>() {}
    send::<FileSink>();
    send::<Encoder<fs::File>>();
    send::<Decoder<fs::File>>();
    send::<rb::io::atomic::AtomicFile>();
}
