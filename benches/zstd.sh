#!/usr/bin/env bash
# zstd -3 on two workers: rb's `compress` step (hash + fsync + atomic rename included) against
# `zstd -T2 -3` alone and against `zstd -T2 -3 && sha256sum && sync`. Needs hyperfine.
#   benches/zstd.sh
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
cargo build --release --quiet --manifest-path "$root/Cargo.toml"
RB="$root/target/release/rb"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
cd "$work"
openssl rand -hex $((175 * 1024 * 1024)) > data.bin
head -c $((150 * 1024 * 1024)) /dev/urandom >> data.bin
printf 'version: 1\nname: zb\nsteps:\n  - { id: z, type: compress, source: data.bin, dest: out.bin.zst, format: zstd, level: 3 }\n' > rb.yaml
hyperfine --runs 5 --prepare "rm -rf $work/out.bin.zst $work/tool.zst $work/state" \
  "$RB run rb.yaml --state-dir $work/state -q" \
  "zstd -q -T2 -3 data.bin -o tool.zst" \
  "sh -c 'zstd -q -T2 -3 data.bin -o tool.zst && sha256sum tool.zst && sync tool.zst'"
