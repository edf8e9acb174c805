#!/usr/bin/env bash
# Site-loss recovery benchmark (not a test): a database of ~SIZE_MB of random-looking rows is
# backed up to Garage, the stack is destroyed (containers, data volume, local backups), and the
# whole system is recovered from the bucket alone, in alternating rounds, by:
#   1. rb:      runbooks/disaster-recovery.yaml (which runs restore/database.yaml) with an empty
#               backup_root and -p store=…: newest complete dump by its manifest, downloaded and
#               checked against it, checksums, whole dump read by pg_restore, gate (approved),
#               restore, statistics, row counts, Redis, backend, frontend, health and a query.
#               Per-step timings from its report.json (where the time went).
#   2. manual:  the manual's Disaster Recovery Steps 2-4 fed from the same bucket by the usual
#               tools: `rclone copy` of the age-encrypted manual dump (pg_dump --format=custom,
#               as /scripts/daily-backup.sh takes it), `age -d`, then Step 2 (docker run, sleep
#               30, pg_isready, database-restore.sh verbatim with its sleeps 10 + 30), Step 3,
#               Step 4 (the adaptations are those of benches/dr_drill.sh).
#   3. floor:   a fresh PostgreSQL container (polled until it answers) and `pg_restore` of the
#               same dump (rb's, decompressed) from a local file, nothing else.
#   4. floor-j2: the same with the dump copied into the container and `pg_restore -j 2`
#               (whether a local copy and parallel restore beats one stream at this size).
# Usage (after `eval "$(tests/env/up)"`):
#   RB=target/release/rb SIZE_MB=1024 RUNS=2 benches/site-loss.sh
set -euo pipefail
RB=$(realpath "${RB:-target/release/rb}")
SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-2}
PG_IMAGE=${RB_TEST_PG_IMAGE:-rb-test/postgres:15}
TOOLS_IMAGE=${RB_TEST_TOOLS_IMAGE:-rb-test/tools:1}
ENDPOINT=${RB_TEST_S3_ENDPOINT:-http://127.0.0.1:3900}
BUCKET=${RB_TEST_S3_BUCKET:-rb-single}
read -r KEY_ID KEY_SECRET </var/lib/rb-testenv/garage/key
P=rbsl-$$
NET=$P-net VOL=$P-pgdata PG=$P-postgres REDIS=$P-redis BE=$P-backend FE=$P-frontend
WORK=$(mktemp -d)
PREFIX=bench-site-loss/$$
STORE=s3://$BUCKET/$PREFIX
export PGPASSWORD=bench-$$-pw CODEXOS_SECRET_KEY=bench-$$-key
export AWS_ACCESS_KEY_ID=$KEY_ID AWS_SECRET_ACCESS_KEY=$KEY_SECRET
export RCLONE_CONFIG=/dev/null RCLONE_CONFIG_G_TYPE=s3 RCLONE_CONFIG_G_PROVIDER=Other \
  RCLONE_CONFIG_G_ACCESS_KEY_ID=$KEY_ID RCLONE_CONFIG_G_SECRET_ACCESS_KEY=$KEY_SECRET \
  RCLONE_CONFIG_G_ENDPOINT=$ENDPOINT RCLONE_CONFIG_G_REGION=garage RCLONE_CONFIG_G_FORCE_PATH_STYLE=true
destroy() {
  docker rm -f -v "$PG" "$REDIS" "$BE" "$FE" >/dev/null 2>&1 || true
  docker volume rm -f "$VOL" >/dev/null 2>&1 || true
}
cleanup() {
  destroy
  docker network rm "$NET" >/dev/null 2>&1 || true
  rclone purge "g:$BUCKET/$PREFIX" >/dev/null 2>&1 || true
  rm -rf "$WORK"
}
trap cleanup EXIT
port() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
PG_PORT=$(port) REDIS_PORT=$(port) BE_PORT=$(port) FE_PORT=$(port)
now() { date +%s.%N; }
wait_pg() {
  local deadline=$((SECONDS + 300))
  until docker exec -e PGPASSWORD "$PG" psql -h 127.0.0.1 -U codexos -d codexos_db -tAc 'select 1' >/dev/null 2>&1; do
    [ $SECONDS -lt $deadline ] || { echo "postgres did not start" >&2; exit 1; }
    sleep 0.1
  done
}
# Row counts and a content hash of the big table: the same after every recovery.
FP="select (select count(*) from users) || ' ' || (select count(*) from agents) || ' ' || count(*) || ' ' || sum(hashtext(output)::bigint) from agent_execution_history"
fingerprint() { docker exec "$PG" psql -U codexos -d codexos_db -tAc "$FP"; }
httpd() { echo "mkdir -p /www && echo ok > /www/health && exec busybox httpd -f -p $1 -h /www"; }
run_pg() {
  docker run -d --name "$PG" --network "$NET" -v "$VOL:/var/lib/postgresql/data" \
    -e POSTGRES_USER=codexos -e POSTGRES_PASSWORD="$PGPASSWORD" -e POSTGRES_DB=codexos_db "$PG_IMAGE" >/dev/null
}
start_app() {
  docker run -d --name "$REDIS" --network "$NET" -p "127.0.0.1:$REDIS_PORT:6379" "$TOOLS_IMAGE" \
    redis-server --protected-mode no >/dev/null
  docker run -d --name "$BE" --network "$NET" -p "127.0.0.1:$BE_PORT:8000" "$TOOLS_IMAGE" sh -c "$(httpd 8000)" >/dev/null
  docker run -d --name "$FE" --network "$NET" -p "127.0.0.1:$FE_PORT:3000" "$TOOLS_IMAGE" sh -c "$(httpd 3000)" >/dev/null
}

echo "date: $(date -u +%FT%TZ)  rb: $RB  size: ${SIZE_MB} MB  cores: $(nproc)  load: $(cut -d' ' -f1-3 /proc/loadavg)"
docker network create "$NET" >/dev/null
run_pg
wait_pg
ROWS=$((SIZE_MB * 1024 * 1024 / 180))
docker exec -i "$PG" psql -q -U codexos -d codexos_db -v ON_ERROR_STOP=1 <<SQL
create table users (id int primary key, email text not null, created_at timestamptz default now());
insert into users (id, email) select g, md5(random()::text) || '@example.invalid' from generate_series(1, 20000) g;
create table agents (id int primary key, owner int references users, config text);
insert into agents select g, 1 + g % 20000, md5(random()::text) || md5(random()::text) from generate_series(1, 20000) g;
create table agent_execution_history (id bigint primary key, agent_id int references agents, output text);
insert into agent_execution_history select g, 1 + g % 20000, md5(random()::text) || md5(random()::text) || md5(random()::text) || md5(random()::text) from generate_series(1, $ROWS) g;
SQL
docker exec "$PG" psql -U codexos -d codexos_db -tAc "select pg_size_pretty(pg_database_size('codexos_db'))" | sed 's/^/database size: /'
WANT=$(fingerprint)
echo "fingerprint (users agents history hash): $WANT"

echo "== backups to the bucket (not timed)"
"$RB" run runbooks/backup/database.yaml -p container="$PG" -p backup_root="$WORK/lost-backups" \
  -p store="$STORE" -p store_endpoint="$ENDPOINT" -p store_region=garage \
  --state-dir "$WORK/state" --quiet >/dev/null
RB_DUMP=$(ls "$WORK"/lost-backups/*/*.dump.zst)
ls -l "$RB_DUMP" | awk '{print "rb dump (zstd, in the bucket): " $5 " bytes"}'
zstd -q -d -c "$RB_DUMP" >"$WORK/floor.dump"
ls -l "$WORK/floor.dump" | awk '{print "floor dump (the same, decompressed, local): " $5 " bytes"}'
rm -rf "$WORK/lost-backups"
age-keygen -o "$WORK/key.txt" 2>/dev/null
docker exec "$PG" pg_dump -U codexos -d codexos_db --format=custom --file=/tmp/codexos_backup.dump
docker cp "$PG:/tmp/codexos_backup.dump" "$WORK/codexos_backup.dump" >/dev/null
docker exec "$PG" rm -f /tmp/codexos_backup.dump
age -r "$(age-keygen -y "$WORK/key.txt")" -o "$WORK/codexos_backup.dump.age" "$WORK/codexos_backup.dump"
rclone copy "$WORK/codexos_backup.dump.age" "g:$BUCKET/$PREFIX/manual/"
ls -l "$WORK/codexos_backup.dump.age" | awk '{print "manual dump (pg_dump -Fc, age, in the bucket): " $5 " bytes"}'
rm -f "$WORK/codexos_backup.dump" "$WORK/codexos_backup.dump.age"

# The manual's /scripts/database-restore.sh (benches/lib/manual.sh).
# shellcheck source=benches/lib/manual.sh
. "$(dirname "$0")/lib/manual.sh"
write_manual_restore_script

manual_recovery() {
  local d=$WORK/manual-site
  mkdir -p "$d/latest"
  # The backup from the bucket, decrypted.
  rclone copy "g:$BUCKET/$PREFIX/manual/codexos_backup.dump.age" "$d/"
  age -d -i "$WORK/key.txt" -o "$d/latest/codexos_backup.dump" "$d/codexos_backup.dump.age"
  # Step 2: Database Recovery
  docker run -d --name "$PG" --network "$NET" -e POSTGRES_USER=codexos -e POSTGRES_PASSWORD="$PGPASSWORD" \
    -e POSTGRES_DB=codexos_db -p "127.0.0.1:$PG_PORT:5432" "$PG_IMAGE"
  sleep 30
  docker exec "$PG" pg_isready -U codexos
  bash "$WORK/database-restore.sh" "$d/latest/codexos_backup.dump"
  # Step 3: Application Recovery
  start_app
  # Step 4: Verification
  docker ps
  until curl -fsS "http://127.0.0.1:$BE_PORT/health"; do sleep 0.1; done
  until curl -fsS "http://127.0.0.1:$FE_PORT/health"; do sleep 0.1; done
  docker exec "$PG" psql -U codexos -d codexos_db -c "SELECT COUNT(*) FROM users;"
  docker exec "$REDIS" redis-cli ping
  rm -rf "$d"
}

rb_recovery() {
  "$RB" run runbooks/disaster-recovery.yaml --state-dir "$WORK/state" --quiet \
    -p network="$NET" -p backup_root="$WORK/new-site" -p db_container="$PG" -p db_image="$PG_IMAGE" \
    -p db_volume="$VOL" -p redis_container="$REDIS" -p redis_image="$TOOLS_IMAGE" -p redis_port="$REDIS_PORT" \
    -p backend="$BE" -p backend_image="$TOOLS_IMAGE" -p backend_command="$(httpd 8000)" -p backend_port="$BE_PORT" \
    -p frontend="$FE" -p frontend_image="$TOOLS_IMAGE" -p frontend_command="$(httpd 8000)" -p frontend_port="$FE_PORT" \
    -p frontend_container_port=8000 -p frontend_path=/health \
    -p store="$STORE" -p store_endpoint="$ENDPOINT" -p store_region=garage \
    --approve restore/approve_drop --report "$WORK/rb-$1.json"
}

floor_recovery() {
  run_pg
  wait_pg
  docker exec -i "$PG" pg_restore -U codexos -d codexos_db --exit-on-error <"$WORK/floor.dump"
}

floor_j2_recovery() {
  run_pg
  wait_pg
  docker cp "$WORK/floor.dump" "$PG:/tmp/floor.dump" >/dev/null
  docker exec "$PG" pg_restore -U codexos -d codexos_db --exit-on-error -j 2 /tmp/floor.dump
  docker exec "$PG" rm -f /tmp/floor.dump
}

# timed LABEL ROUND FUNCTION: the site is destroyed, then FUNCTION recovers it; wall seconds,
# CPU seconds of the local processes (user+sys, children included) and the fingerprint check.
timed() {
  local label=$1 run=$2 fn=$3
  destroy
  rm -rf "$WORK/new-site"
  sync
  local s e
  s=$(now)
  /usr/bin/time -f '%U %S' -o "$WORK/cpu" bash -c "$(declare -f "$fn" run_pg wait_pg start_app httpd); $fn $run" \
    >"$WORK/$label-$run.log" 2>&1 || { tail -30 "$WORK/$label-$run.log"; exit 1; }
  e=$(now)
  local got
  got=$(fingerprint)
  [ "$got" = "$WANT" ] || { echo "$label: data differs: $got" >&2; exit 1; }
  printf '%-9s run %s  wall %6.1f s  local CPU %5.1f s  (load %s)\n' "$label" "$run" \
    "$(echo "$e - $s" | bc)" "$(awk '{print $1 + $2}' "$WORK/cpu")" "$(cut -d' ' -f1 /proc/loadavg)"
}
export -f now
export WORK RB NET VOL PG REDIS BE FE PG_IMAGE TOOLS_IMAGE PG_PORT REDIS_PORT BE_PORT FE_PORT STORE ENDPOINT BUCKET PREFIX

for run in $(seq 1 "$RUNS"); do
  echo "== round $run"
  timed rb "$run" rb_recovery
  jq -r '"  rb steps (s): " + ([.steps[] | select(.duration_seconds >= 0.5) | "\(.id) \(.duration_seconds * 10 | round / 10)"] | join(", "))' "$WORK/rb-$run.json"
  timed manual "$run" manual_recovery
  timed floor "$run" floor_recovery
  timed floor-j2 "$run" floor_j2_recovery
done
echo "load after: $(cut -d' ' -f1-3 /proc/loadavg)"
