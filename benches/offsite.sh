#!/usr/bin/env bash
# Off-site benchmark (not a test): a PostgreSQL database of ~SIZE_MB of random-looking rows,
# backed up to Garage and restored from it, by rb in one streaming pass against what an
# operator scripts with the usual tools, in the same run against the same table and bucket:
#
#   backup  rb:     container.exec pg_dump -Fc --compress=0 -> stdout {object, compress: zstd
#                   (level 1), encrypt: age} (dump -> zstd -> age -> sha256 -> multipart upload)
#           manual: docker exec pg_dump -Fc > file; age -r; rclone copy
#   restore rb:     container.exec pg_restore <- stdin {object, decrypt, decompress}
#           manual: rclone copy; age -d; docker exec -i pg_restore < file
#
# Usage (after `eval "$(tests/env/up)"`): RB=target/release/rb SIZE_MB=1024 benches/offsite.sh
# Prints wall time and peak RSS of the local processes (rb; for the manual sequence, the
# largest of its commands) per contender.
set -euo pipefail
RB=$(realpath "${RB:-target/release/rb}")
SIZE_MB=${SIZE_MB:-1024}
IMAGE=${RB_TEST_PG_IMAGE:-rb-test/postgres:15}
ENDPOINT=${RB_TEST_S3_ENDPOINT:-http://127.0.0.1:3900}
BUCKET=${RB_TEST_S3_BUCKET:-rb-single}
read -r KEY_ID KEY_SECRET </var/lib/rb-testenv/garage/key
NAME=rbo-$$-pg
WORK=$(mktemp -d)
PREFIX=bench/$$
cleanup() {
	docker rm -f -v "$NAME" >/dev/null 2>&1 || true
	rm -rf "$WORK"
}
trap cleanup EXIT
export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_G_TYPE=s3 RCLONE_CONFIG_G_PROVIDER=Other \
	RCLONE_CONFIG_G_ACCESS_KEY_ID=$KEY_ID RCLONE_CONFIG_G_SECRET_ACCESS_KEY=$KEY_SECRET \
	RCLONE_CONFIG_G_ENDPOINT=$ENDPOINT RCLONE_CONFIG_G_REGION=garage RCLONE_CONFIG_G_FORCE_PATH_STYLE=true
export T_S3_ID=$KEY_ID T_S3_SECRET=$KEY_SECRET

echo "date: $(date -u +%FT%TZ)  rb: $RB  size: ${SIZE_MB} MB  cores: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
docker run -d --name "$NAME" -e POSTGRES_PASSWORD=pw "$IMAGE" >/dev/null
deadline=$((SECONDS + 120))
until docker exec -e PGPASSWORD=pw -u postgres "$NAME" psql -h 127.0.0.1 -tAc 'select 1' >/dev/null 2>&1; do
	[ $SECONDS -lt $deadline ] || { echo "postgres did not start" >&2; exit 1; }
	sleep 0.2
done
ROWS=$((SIZE_MB * 1024 * 1024 / 140))
docker exec -u postgres "$NAME" psql -q -c "create table bench as select g as id, md5(random()::text) a, md5(random()::text) b, md5(random()::text) c, md5(random()::text) d from generate_series(1, $ROWS) g"
docker exec -u postgres "$NAME" psql -tAc "select pg_size_pretty(pg_total_relation_size('bench'))" | sed 's/^/table size: /'
FP="select count(*) || ' ' || md5(string_agg(a, ',' order by id)) from bench"
WANT=$(docker exec -u postgres "$NAME" psql -tAc "$FP")

cd "$WORK"
age-keygen -o key.txt 2>/dev/null
PUB=$(age-keygen -y key.txt)
cat >rb.yaml <<EOF
version: 1
name: offsite-bench
secrets:
  s3_id: { env: T_S3_ID }
  s3_secret: { env: T_S3_SECRET }
  age_key: { file: key.txt }
stores:
  g: { url: "s3://$BUCKET/$PREFIX", endpoint: "$ENDPOINT", region: garage, access_key_id: s3_id, secret_access_key: s3_secret }
steps:
  - id: dump
    type: container.exec
    container: $NAME
    user: postgres
    command: [pg_dump, -Fc, --compress=0, postgres]
    stdout: { object: "g:rb.dump.zst.age", compress: zstd, level: 1, encrypt: { recipients: ["$PUB"] }, checksum: sha256 }
EOF
cat >restore.yaml <<EOF
version: 1
name: offsite-bench-restore
secrets:
  s3_id: { env: T_S3_ID }
  s3_secret: { env: T_S3_SECRET }
  age_key: { file: key.txt }
stores:
  g: { url: "s3://$BUCKET/$PREFIX", endpoint: "$ENDPOINT", region: garage, access_key_id: s3_id, secret_access_key: s3_secret }
steps:
  - id: restore
    type: container.exec
    container: $NAME
    user: postgres
    command: [pg_restore, --exit-on-error, -d, restored]
    stdin: { object: "g:rb.dump.zst.age", decrypt: { identity: age_key }, decompress: true }
EOF

# measure LABEL CMD...: wall seconds and peak RSS (MiB) of CMD (a shell line).
measure() {
	local label=$1; shift
	local t0=$EPOCHREALTIME
	/usr/bin/time -f '%M' -o "$WORK/rss" bash -c "$*" >"$WORK/out" 2>&1 || { cat "$WORK/out"; exit 1; }
	local wall
	wall=$(awk -v a="$t0" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.1f", b - a }')
	printf '%-16s wall %7s s   peak RSS %5d MiB\n' "$label" "$wall" $(($(cat "$WORK/rss") / 1024))
}
fresh_db() {
	docker exec -u postgres "$NAME" psql -q -c "drop database if exists restored" -c "create database restored"
}
check_db() {
	local got
	got=$(docker exec -u postgres "$NAME" psql -d restored -tAc "$FP")
	[ "$got" = "$WANT" ] || { echo "restored data differs: $got vs $WANT" >&2; exit 1; }
}

echo "-- backup"
measure "rb" "$RB run rb.yaml --state-dir st --quiet"
rclone size "g:$BUCKET/$PREFIX/rb.dump.zst.age" | sed -n 's/^Total size: /  rb object: /p'
# The manual sequence: each command's own peak RSS; the largest is printed.
measure "manual" "docker exec -u postgres $NAME pg_dump -Fc postgres > m.dump && age -r $PUB -o m.dump.age m.dump && rclone copy m.dump.age g:$BUCKET/$PREFIX/"
rclone size "g:$BUCKET/$PREFIX/m.dump.age" | sed -n 's/^Total size: /  manual object: /p'
rm -f m.dump m.dump.age

echo "-- restore"
fresh_db
measure "rb" "$RB run restore.yaml --state-dir st --quiet"
check_db
fresh_db
measure "manual" "rclone copy g:$BUCKET/$PREFIX/m.dump.age . && age -d -i key.txt -o m.dump m.dump.age && docker exec -i -u postgres $NAME pg_restore --exit-on-error -d restored < m.dump"
check_db
rclone purge "g:$BUCKET/$PREFIX" >/dev/null 2>&1 || true
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
