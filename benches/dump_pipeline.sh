#!/usr/bin/env bash
# Dump pipeline benchmark (not a test): pg_dump -Fc of ~SIZE_MB of random-looking rows
#   1. rb:     container.exec pg_dump -Fc --compress=0 -> stdout {file, compress: zstd, checksum: sha256}
#              (as runbooks/backup/database.yaml does: zstd on two cores instead of pg_dump's gzip on one)
#   2. manual: docker exec pg_dump -Fc -f /tmp/x; docker cp; gzip; sha256sum (the old runbook)
#   3. floor:  pg_dump -Fc -Z0 -f /tmp/x inside the container (no transport, no compression)
# Usage: RB=target/release/rb SIZE_MB=1024 benches/dump_pipeline.sh
set -euo pipefail
RB=${RB:-target/release/rb}
SIZE_MB=${SIZE_MB:-1024}
LEVEL=${LEVEL:-3}            # zstd level of rb's output file
SKIP_MANUAL=${SKIP_MANUAL:-}  # set to skip the (slow) manual sequence
IMAGE=${RB_TEST_PG_IMAGE:-rb-test/postgres:15}
NAME=rbb-$$-pg
WORK=$(mktemp -d)
cleanup() { docker rm -f -v "$NAME" >/dev/null 2>&1 || true; rm -rf "$WORK"; }
trap cleanup EXIT

docker run -d --name "$NAME" -e POSTGRES_PASSWORD=pw "$IMAGE" >/dev/null
deadline=$((SECONDS + 120))
until docker exec -e PGPASSWORD=pw -u postgres "$NAME" psql -h 127.0.0.1 -tAc 'select 1' >/dev/null 2>&1; do
  [ $SECONDS -lt $deadline ] || { echo "postgres did not start" >&2; exit 1; }
  sleep 0.2
done
# One row = id + 4 md5 texts (~140 bytes on disk with overhead).
ROWS=$((SIZE_MB * 1024 * 1024 / 140))
docker exec -u postgres "$NAME" psql -q -c "create table bench as select g as id, md5(random()::text) a, md5(random()::text) b, md5(random()::text) c, md5(random()::text) d from generate_series(1, $ROWS) g"
docker exec -u postgres "$NAME" psql -tAc "select pg_size_pretty(pg_total_relation_size('bench'))" | sed 's/^/table size: /'

cat > "$WORK/rb.yaml" <<YAML
version: 1
name: bench-dump
steps:
  - id: dump
    type: container.exec
    container: $NAME
    user: postgres
    command: [pg_dump, -Fc, --compress=0, postgres]
    stdout: { file: out/db.dump.zst, compress: zstd, level: $LEVEL, checksum: sha256 }
YAML
t() { local s e; s=$(date +%s.%N); "$@"; e=$(date +%s.%N); echo "$e - $s" | bc; }

echo "== rb container.exec (zstd -$LEVEL + sha256 while streaming)"
/usr/bin/time -v "$RB" run "$WORK/rb.yaml" --state-dir "$WORK/state" 2>"$WORK/time.txt" >/dev/null
grep -E "Elapsed|Maximum resident" "$WORK/time.txt"
ls -l "$WORK/out/db.dump.zst" | awk '{print "file bytes: " $5}'

echo "== manual: docker exec pg_dump -Fc -f + docker cp + gzip + sha256sum"
manual() {
  docker exec -u postgres "$NAME" pg_dump -Fc -f /tmp/x.dump postgres
  docker cp "$NAME:/tmp/x.dump" "$WORK/x.dump"
  gzip -f "$WORK/x.dump"
  sha256sum "$WORK/x.dump.gz" >/dev/null
  docker exec "$NAME" rm -f /tmp/x.dump
}
if [ -z "$SKIP_MANUAL" ]; then
  echo "elapsed s: $(t manual)"
  ls -l "$WORK/x.dump.gz" | awk '{print "file bytes: " $5}'
fi

echo "== floor: pg_dump -Fc -Z0 -f inside the container"
floor() { docker exec -u postgres "$NAME" pg_dump -Fc -Z0 -f /tmp/floor.dump postgres; }
echo "elapsed s: $(t floor)"
