#!/usr/bin/env bash
# Dump pipeline benchmark (not a test): pg_dump -Fc of ~SIZE_MB of random-looking rows, every
# contender in the same run against the same table:
#   floor:   pg_dump -Fc -Z0 -f /tmp/x inside the container (no transport, no compression)
#   rb:      container.exec pg_dump -Fc --compress=0 -> stdout {file, compress: zstd, level,
#            checksum: sha256}, as runbooks/backup/database.yaml does (its default zstd_level),
#            on the default transport (auto: a FIFO in the container's /tmp when rb is root)
#   rb-engine: the same with `transport: engine` (the Engine API exec stream)
#   rb-none: rb without compression (transport + sha256 + fsync only)
# With RESTORE=1 also, into a fresh database each time:
#   restore-floor:     pg_restore -d DB /tmp/floor.dump inside the container (a local file)
#   restore-rb:        container.exec pg_restore -d DB, stdin {file: rb's zstd dump,
#                      decompress: true}, default transport
#   restore-rb-engine: the same with `transport: engine`
#   manual:  docker exec pg_dump -Fc -f /tmp/x; docker cp; gzip; sha256sum (the old runbook)
# With PROFILE=1 also:
#   rb-zN:   rb at each zstd level of LEVELS
#   stream:  docker exec pg_dump -Fc -Z0 > file (the Engine API exec stream through the
#            docker CLI, no hash, no fsync)
#   stream+sha: the same piped through tee + sha256sum
#
# Usage: RB=target/release/rb SIZE_MB=1024 benches/dump_pipeline.sh
# Knobs (environment):
#   RB           rb binary (release build for figures)            default target/release/rb
#   SIZE_MB      approximate table size                           default 1024
#   LEVEL        zstd level of the `rb` contender                 default: the shipped runbook's
#   RUNS         repetitions of the whole set on the same table   default 1
#   SKIP_MANUAL  set to skip the (slow) manual sequence
#   RESTORE      set to add the restore contenders
#   PROFILE      set to add the profiling contenders above
#   LEVELS       zstd levels of PROFILE's rb-zN contenders        default "1 3"
#   CONTAINER    reuse this running container (its database `postgres` must already hold the
#                table `bench`; it is left running) instead of creating one: for profiling
#
# Per contender it prints: wall time; CPU seconds of the local processes (rb, or docker CLI +
# gzip + sha256sum), of the container (pg_dump and its postgres backend, from the container's
# cpuacct cgroup) and of the engine (dockerd + the container's containerd shim); the output
# size; peak RSS of the local process; and at the end ratios against the floor and the manual
# sequence of the same repetition. CPU seconds show what competes for the cores: on two cores
# the wall time cannot fall below (sum of CPU seconds) / 2.
set -euo pipefail
RB=${RB:-target/release/rb}
SIZE_MB=${SIZE_MB:-1024}
HERE=$(cd "$(dirname "$0")/.." && pwd)
DEFAULT_LEVEL=$(sed -n 's/^ *zstd_level: *{ *type: int, *default: *\([0-9]*\).*/\1/p' \
  "$HERE/runbooks/backup/database.yaml")
LEVEL=${LEVEL:-${DEFAULT_LEVEL:-3}}
RUNS=${RUNS:-1}
SKIP_MANUAL=${SKIP_MANUAL:-}
PROFILE=${PROFILE:-}
RESTORE=${RESTORE:-}
LEVELS=${LEVELS:-1 3}
IMAGE=${RB_TEST_PG_IMAGE:-rb-test/postgres:15}
NAME=${CONTAINER:-rbb-$$-pg}
WORK=$(mktemp -d)
cleanup() {
  [ -n "${CONTAINER:-}" ] || docker rm -f -v "$NAME" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT

echo "date: $(date -u +%FT%TZ)  rb: $RB  size: ${SIZE_MB} MB  level: $LEVEL  cores: $(nproc)"
echo "load before: $(cut -d' ' -f1-3 /proc/loadavg)"
if [ -z "${CONTAINER:-}" ]; then
  docker run -d --name "$NAME" -e POSTGRES_PASSWORD=pw "$IMAGE" >/dev/null
  deadline=$((SECONDS + 120))
  until docker exec -e PGPASSWORD=pw -u postgres "$NAME" psql -h 127.0.0.1 -tAc 'select 1' >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "postgres did not start" >&2; exit 1; }
    sleep 0.2
  done
  # One row = id + 4 md5 texts (~140 bytes on disk with overhead).
  ROWS=$((SIZE_MB * 1024 * 1024 / 140))
  docker exec -u postgres "$NAME" psql -q -c "create table bench as select g as id, md5(random()::text) a, md5(random()::text) b, md5(random()::text) c, md5(random()::text) d from generate_series(1, $ROWS) g"
fi
docker exec -u postgres "$NAME" psql -tAc "select pg_size_pretty(pg_total_relation_size('bench'))" | sed 's/^/table size: /'

# CPU accounting: the container's cgroup (ns), dockerd and the container's shim (ticks).
ID=$(docker inspect -f '{{.Id}}' "$NAME")
CG=/sys/fs/cgroup/cpuacct/docker/$ID/cpuacct.usage
[ -r "$CG" ] || CG=$(find /sys/fs/cgroup -path "*$ID*" -name cpuacct.usage -o -path "*$ID*" -name cpu.stat 2>/dev/null | head -1)
DOCKERD=$(cat /var/run/docker.pid 2>/dev/null || pgrep -xo dockerd)
SHIM=$(pgrep -f "containerd-shim.*-id $ID" | head -1)
TCK=$(getconf CLK_TCK)
container_cpu() { # seconds
  case "$CG" in
    *cpu.stat) awk '/^usage_usec/ {printf "%.3f", $2 / 1e6}' "$CG" ;;
    ?*) awk '{printf "%.3f", $1 / 1e9}' "$CG" ;;
    *) echo 0 ;;
  esac
}
engine_cpu() { # seconds of dockerd + shim (utime + stime of all threads)
  local t=0 p
  for p in $DOCKERD $SHIM; do
    t=$((t + $(awk '{print $14 + $15}' "/proc/$p/stat")))
  done
  echo "scale=3; $t / $TCK" | bc
}

printf '%-18s %8s %8s %8s %8s %12s %9s\n' contender wall_s local_s cont_s engine_s bytes rss_mib
RESULTS=$WORK/results
# measure NAME OUTPUT_FILE COMMAND...: run under /usr/bin/time, print one line.
measure() {
  local name=$1 out=$2 c0 e0 c1 e1 bytes
  shift 2
  sync
  c0=$(container_cpu) e0=$(engine_cpu)
  /usr/bin/time -f '%e %U %S %M' -o "$WORK/time" "$@" >/dev/null
  c1=$(container_cpu) e1=$(engine_cpu)
  bytes=$(stat -c %s "$out" 2>/dev/null || docker exec "$NAME" stat -c %s "$out" 2>/dev/null || echo 0)
  read -r wall user sys rss_kib <"$WORK/time"
  printf '%-18s %8.2f %8.2f %8.2f %8.2f %12d %9.0f\n' "$name" "$wall" "$(echo "$user + $sys" | bc)" \
    "$(echo "$c1 - $c0" | bc)" "$(echo "$e1 - $e0" | bc)" "$bytes" "$(echo "$rss_kib / 1024" | bc)" |
    tee -a "$RESULTS"
}

rb_runbook() { # FILE LEVEL|none TRANSPORT
  local compress=", compress: zstd, level: $2"
  [ "$2" = none ] && compress=
  cat >"$1" <<YAML
version: 1
name: bench-dump
steps:
  - id: dump
    type: container.exec
    container: $NAME
    user: postgres
    command: [pg_dump, -Fc, --compress=0, postgres]
    stdout: { file: out/db.dump, checksum: sha256$compress }
    transport: ${3:-auto}
YAML
}
rb_dump() { # LEVEL|none [TRANSPORT]
  rb_runbook "$WORK/rb.yaml" "$1" "${2:-auto}"
  rm -rf "$WORK/out" "$WORK/state"
  "$RB" run "$WORK/rb.yaml" --state-dir "$WORK/state"
}
fresh_db() { docker exec -u postgres "$NAME" sh -c 'dropdb --if-exists r && createdb r'; }
restore_floor() { docker exec -u postgres "$NAME" pg_restore --exit-on-error -d r /tmp/floor.dump; }
rb_restore() { # TRANSPORT: restores $WORK/keep.dump.zst (rb's zstd dump) into r
  cat >"$WORK/rr.yaml" <<YAML
version: 1
name: bench-restore
steps:
  - id: restore
    type: container.exec
    container: $NAME
    user: postgres
    command: [pg_restore, --exit-on-error, -d, r]
    stdin: { file: $WORK/keep.dump.zst, decompress: true }
    transport: $1
YAML
  rm -rf "$WORK/rstate"
  "$RB" run "$WORK/rr.yaml" --state-dir "$WORK/rstate"
}
floor() { docker exec -u postgres "$NAME" pg_dump -Fc -Z0 -f /tmp/floor.dump postgres; }
manual() {
  docker exec -u postgres "$NAME" pg_dump -Fc -f /tmp/x.dump postgres
  docker cp "$NAME:/tmp/x.dump" "$WORK/x.dump"
  gzip -f "$WORK/x.dump"
  sha256sum "$WORK/x.dump.gz" >/dev/null
  docker exec "$NAME" rm -f /tmp/x.dump
}
stream() { docker exec -u postgres "$NAME" pg_dump -Fc -Z0 postgres >"$WORK/s.dump"; }
stream_sha() {
  docker exec -u postgres "$NAME" pg_dump -Fc -Z0 postgres | tee "$WORK/s.dump" | sha256sum >/dev/null
}
export -f rb_runbook rb_dump floor manual stream stream_sha fresh_db restore_floor rb_restore
export NAME WORK RB

for run in $(seq "$RUNS"); do
  echo "-- run $run, load $(cut -d' ' -f1-3 /proc/loadavg)"
  measure floor /tmp/floor.dump bash -c floor
  # The two transports alternate which goes first, run by run, so that neither always gets
  # the quieter moment of a busy machine.
  pair=("rb:auto" "rb-engine:engine")
  [ $((run % 2)) -eq 0 ] && pair=("rb-engine:engine" "rb:auto")
  for p in "${pair[@]}"; do
    measure "${p%%:*}" "$WORK/out/db.dump" bash -c "rb_dump $LEVEL ${p#*:}"
  done
  if [ -n "$RESTORE" ]; then
    mv "$WORK/out/db.dump" "$WORK/keep.dump.zst"
    fresh_db
    measure restore-floor /tmp/floor.dump bash -c restore_floor
    for p in "${pair[@]}"; do
      fresh_db
      measure "restore-${p%%:*}" "$WORK/keep.dump.zst" bash -c "rb_restore ${p#*:}"
    done
    docker exec -u postgres "$NAME" dropdb r
  fi
  docker exec "$NAME" rm -f /tmp/floor.dump
  measure rb-none "$WORK/out/db.dump" bash -c "rb_dump none"
  if [ -n "$PROFILE" ]; then
    for l in $LEVELS; do
      measure "rb-z$l" "$WORK/out/db.dump" bash -c "rb_dump $l"
    done
    measure stream "$WORK/s.dump" bash -c stream
    measure stream+sha "$WORK/s.dump" bash -c stream_sha
    rm -f "$WORK/s.dump"
  fi
  rm -rf "$WORK/out"
  if [ -z "$SKIP_MANUAL" ]; then
    measure manual "$WORK/x.dump.gz" bash -c manual
    rm -f "$WORK/x.dump.gz"
  fi
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"

echo "-- ratios (wall time / floor's of the same run; manual's / contender's)"
awk '
  $1 == "floor" { floor = $2; run++ }
  { wall[run, $1] = $2; names[run, ++n[run]] = $1 }
  $1 == "restore-floor" { rfloor[run] = $2 }
  END {
    for (r = 1; r <= run; r++)
      for (i = 1; i <= n[r]; i++) {
        c = names[r, i]
        m = ((r, "manual") in wall) ? sprintf("%.1fx faster than manual", wall[r, "manual"] / wall[r, c]) : ""
        f = (c ~ /^restore/) ? rfloor[r] : wall[r, "floor"]
        printf "run %d  %-18s %5.2fx floor  %s\n", r, c, wall[r, c] / f, m
      }
  }' "$RESULTS"
