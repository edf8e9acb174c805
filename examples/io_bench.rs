//! Throughput of rb's streaming I/O against the command-line tools, on one file.
//!
//! `cargo run --release --example io_bench -- FILE`
//!
//! Every contender reads FILE from the page cache (it is read once first) and writes its
//! output to a file in a temporary directory under /tmp, so all pay the same I/O. The fast
//! contenders (sha256, zstd) run three times and the best time is shown, because a shared
//! 2-core machine is noisy; the gzip ones run once.

use std::fs::{self, File};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::Instant;

use rb::io::compress::{Encoder, Format, compress_file};
use rb::io::digest::sha256_file;

fn main() -> Result<(), Box<dyn std::error::Error>> {
    let file = PathBuf::from(std::env::args().nth(1).ok_or("usage: io_bench FILE")?);
    let size = fs::metadata(&file)?.len();
    io::copy(&mut File::open(&file)?, &mut io::sink())?;
    let out = tempfile::Builder::new()
        .prefix("io_bench")
        .tempdir_in("/tmp")?;
    let mb = size as f64 / 1e6;
    println!("{} — {mb:.0} MB", file.display());
    println!(
        "{:<34} {:>8} {:>9} {:>7}",
        "contender", "seconds", "MB/s", "ratio"
    );

    let report = |name: &str, secs: f64, output: Option<&Path>| {
        let ratio = output.map_or(String::new(), |p| {
            format!(
                "{:.3}",
                fs::metadata(p).map_or(0, |m| m.len()) as f64 / size as f64
            )
        });
        println!("{name:<34} {secs:>8.2} {:>9.0} {ratio:>7}", mb / secs);
    };

    let mut digest = String::new();
    let secs = best_of(3, || {
        digest = sha256_file(&file)?.sha256;
        Ok(())
    })?;
    report("rb sha256 (sha2 crate)", secs, None);
    let mut listed = Vec::new();
    let secs = best_of(3, || {
        listed = tool("sha256sum", &[p(&file)], None)?;
        Ok(())
    })?;
    report("sha256sum", secs, None);
    assert_eq!(&listed[..64], digest.as_bytes(), "digests differ");

    let z = out.path().join("rb.zst");
    let secs = best_of(3, || {
        compress_file(&file, Some(&z), Format::Zstd, Some(3), false)?;
        Ok(())
    })?;
    report("rb zstd -3, 2 workers (+sha256)", secs, Some(&z));
    // The same encoder without the output hash and the fsync that compress_file adds.
    let z2 = out.path().join("rb-bare.zst");
    let secs = best_of(3, || {
        let mut enc = Encoder::new(File::create(&z2)?, Format::Zstd, Some(3), 2)?;
        io::copy(&mut File::open(&file)?, &mut enc)?;
        enc.finish()?;
        Ok(())
    })?;
    report("rb zstd -3, 2 workers, bare", secs, Some(&z2));
    let tz = out.path().join("tool.zst");
    let secs = best_of(3, || {
        tool(
            "zstd",
            &["-q", "-T2", "-3", "-f", "-o", p(&tz), p(&file)],
            None,
        )?;
        Ok(())
    })?;
    report("zstd -T2 -3", secs, Some(&tz));

    let g = out.path().join("rb.gz");
    let t = Instant::now();
    compress_file(&file, Some(&g), Format::Gzip, Some(6), false)?;
    report(
        "rb gzip -6, 2 workers (+sha256)",
        t.elapsed().as_secs_f64(),
        Some(&g),
    );
    let g1 = out.path().join("rb1.gz");
    let t = Instant::now();
    let mut enc = Encoder::new(File::create(&g1)?, Format::Gzip, Some(6), 1)?;
    io::copy(&mut File::open(&file)?, &mut enc)?;
    enc.finish()?.sync_all()?;
    report("rb gzip -6, 1 thread", t.elapsed().as_secs_f64(), Some(&g1));
    let tg = out.path().join("tool.gz");
    let t = Instant::now();
    tool("gzip", &["-6", "-c", p(&file)], Some(&tg))?;
    report("gzip -6", t.elapsed().as_secs_f64(), Some(&tg));
    let tp = out.path().join("pigz.gz");
    let t = Instant::now();
    tool("pigz", &["-6", "-p", "2", "-c", p(&file)], Some(&tp))?;
    report("pigz -6 -p 2", t.elapsed().as_secs_f64(), Some(&tp));
    Ok(())
}

/// The shortest of `n` timed runs.
fn best_of(
    n: usize,
    mut f: impl FnMut() -> Result<(), Box<dyn std::error::Error>>,
) -> Result<f64, Box<dyn std::error::Error>> {
    let mut best = f64::MAX;
    for _ in 0..n {
        let t = Instant::now();
        f()?;
        best = best.min(t.elapsed().as_secs_f64());
    }
    Ok(best)
}

fn p(path: &Path) -> &str {
    path.to_str().expect("UTF-8 path")
}

/// Runs a tool to completion; with `stdout_to`, its output goes to that file.
fn tool(program: &str, args: &[&str], stdout_to: Option<&Path>) -> io::Result<Vec<u8>> {
    let mut cmd = Command::new(program);
    cmd.args(args);
    if let Some(path) = stdout_to {
        cmd.stdout(Stdio::from(File::create(path)?));
    }
    let out = cmd.output()?;
    if !out.status.success() {
        io::stderr().write_all(&out.stderr)?;
        return Err(io::Error::other(format!("{program} failed")));
    }
    Ok(out.stdout)
}
