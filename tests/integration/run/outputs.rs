//! Step outputs: a process's stdout to a compressed, checksummed file, published atomically.

use super::{expect, report, run, step, the_run};
use crate::support::Test;
use std::process::Command;

#[test]
fn exec_stdout_to_a_compressed_checksummed_file_is_atomic() {
    let t = Test::new().file(
        "rb.yaml",
        r"
version: 1
name: outfile
params:
  code: { type: int, default: 0 }
steps:
  - id: dump
    type: exec
    shell: 'seq 1 200000; exit {{ params.code }}'
    stdout: { file: out/seq.txt.gz, compress: gzip, checksum: sha256 }
",
    );
    expect(&run(&t, &[]), 0);
    let file = t.path("out/seq.txt.gz");
    let gzip = Command::new("gzip").arg("-t").arg(&file).status().unwrap();
    assert!(gzip.success());
    let sum = Command::new("sha256sum").arg(&file).output().unwrap();
    let sum = String::from_utf8(sum.stdout).unwrap();
    let r = report(&the_run(&t));
    let outputs = &step(&r, "dump")["outputs"];
    assert_eq!(
        outputs["sha256"].as_str().unwrap(),
        sum.split_whitespace().next().unwrap()
    );
    assert_eq!(
        outputs["bytes"].as_u64().unwrap(),
        std::fs::metadata(&file).unwrap().len()
    );
    let unzipped = Command::new("gzip").arg("-dc").arg(&file).output().unwrap();
    let seq = Command::new("seq").args(["1", "200000"]).output().unwrap();
    assert!(unzipped.stdout == seq.stdout, "content differs");

    let t = Test::new().file(
        "rb.yaml",
        r"
version: 1
name: outfile
params:
  code: { type: int, default: 0 }
steps:
  - id: dump
    type: exec
    shell: 'seq 1 200000; exit {{ params.code }}'
    stdout: { file: out/seq.txt.gz, compress: gzip, checksum: sha256 }
",
    );
    expect(&run(&t, &["-p", "code=2"]), 1);
    let left: Vec<_> = std::fs::read_dir(t.path("out"))
        .map(|d| d.filter_map(Result::ok).map(|e| e.file_name()).collect())
        .unwrap_or_default();
    assert!(left.is_empty(), "a failed step left {left:?}");
}
