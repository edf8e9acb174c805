#!/usr/bin/env bash
# Benchmark of `rb plan` end to end (process start to exit): the shipped daily backup runbook
# and a generated 1,000-step runbook. Needs hyperfine (apt-get install hyperfine).
#   benches/plan.sh
set -euo pipefail
cd "$(dirname "$0")/.."
cargo build --release --quiet
big="$(mktemp --suffix=.yaml)"
trap 'rm -f "$big"' EXIT
python3 benches/gen_runbook.py 1000 > "$big"
hyperfine --warmup 3 --runs 30 --export-markdown /dev/stdout \
  -n "plan shipped backup runbook" "target/release/rb plan runbooks/backup/database.yaml" \
  -n "plan 1,000 steps" "target/release/rb plan $big" \
  -n "validate 1,000 steps" "target/release/rb validate $big"
