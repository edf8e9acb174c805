#!/usr/bin/env bash
# DR drill benchmark (not a test): a stack (PostgreSQL on a named volume, Redis, backend and
# frontend stand-ins) holding ~SIZE_MB of random-looking rows is destroyed and recovered.
#   1. rb:     runbooks/drills/dr-drill.yaml (disaster-recovery.yaml, which includes
#              restore/database.yaml) from the dump written by runbooks/backup/database.yaml.
#              Recovery time = the `recover` step of the drill's report.json (network,
#              PostgreSQL, readiness, checksum, safety dump, restore, row counts, Redis,
#              backend, frontend, health and query checks). The whole drill (with the
#              fingerprints of every table before and after) is shown too.
#   2. manual: the manual's "Disaster Recovery Drill" (docker stop + docker rm of the four
#              containers), then its Steps 2-4 verbatim, with database-restore.sh verbatim
#              and all their fixed sleeps (30 s + 10 s + 30 s), from the manual's own dump
#              (pg_dump --format=custom, as /scripts/daily-backup.sh takes it). Recovery time
#              = Step 2 start to Step 4 end.
# Adaptations of the manual's commands, only what running them here needs:
#   - images: postgres:16-alpine -> rb-test/postgres:15; redis:7-alpine, codexos-backend and
#     codexos-frontend -> rb-test/tools:1 (redis-server; busybox httpd answering /health);
#   - names prefixed (the engine is shared); ports published on 127.0.0.1 and free ports
#     instead of 5432/6379/8001/3000; the frontend probe is /health (the stand-in's page);
#   - the network codexos_default (which the manual uses but never creates) is created;
#   - /backups/postgres/latest/codexos_backup.dump -> the manual-format dump in $WORK; the
#     pre-recovery copy goes to $WORK too; the password comes from the environment;
#   - Step 4's curl is retried until it answers (the manual runs it once, right after the
#     containers start; retrying can only help the manual).
# Usage: RB=target/release/rb SIZE_MB=1024 RUNS=2 benches/dr_drill.sh
set -euo pipefail
RB=${RB:-target/release/rb}
SIZE_MB=${SIZE_MB:-1024}
RUNS=${RUNS:-1}
PG_IMAGE=${RB_TEST_PG_IMAGE:-rb-test/postgres:15}
TOOLS_IMAGE=${RB_TEST_TOOLS_IMAGE:-rb-test/tools:1}
P=rbb-$$
NET=$P-net VOL=$P-pgdata PG=$P-postgres REDIS=$P-redis BE=$P-backend FE=$P-frontend
WORK=$(mktemp -d)
export PGPASSWORD=bench-$$-pw CODEXOS_SECRET_KEY=bench-$$-key
cleanup() {
  docker rm -f -v "$PG" "$REDIS" "$BE" "$FE" >/dev/null 2>&1 || true
  docker volume rm -f "$VOL" >/dev/null 2>&1 || true
  docker network rm "$NET" >/dev/null 2>&1 || true
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
    sleep 0.2
  done
}
counts() {
  docker exec "$PG" psql -U codexos -d codexos_db -tAc \
    "select (select count(*) from users) || ' ' || (select count(*) from agents) || ' ' || (select count(*) from agent_execution_history)"
}
httpd() { echo "mkdir -p /www && echo ok > /www/health && exec busybox httpd -f -p $1 -h /www"; }

echo "== setup: ${SIZE_MB} MB of random-looking rows"
uptime
docker network create "$NET" >/dev/null
docker run -d --name "$PG" --network "$NET" -v "$VOL:/var/lib/postgresql/data" \
  -e POSTGRES_USER=codexos -e POSTGRES_PASSWORD="$PGPASSWORD" -e POSTGRES_DB=codexos_db "$PG_IMAGE" >/dev/null
wait_pg
# One history row: id, agent, 128 hex chars (~180 bytes with overhead and its index entry).
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
EXPECTED=$(counts)
echo "rows (users agents history): $EXPECTED"

echo "== backups (not timed)"
"$RB" run runbooks/backup/database.yaml -p container="$PG" -p backup_root="$WORK/backups" \
  --state-dir "$WORK/state" --quiet >/dev/null
ls -l "$WORK"/backups/*/*.dump.zst | awk '{print "rb dump (zstd): " $5 " bytes"}'
mkdir -p "$WORK/latest"
docker exec "$PG" pg_dump -U codexos -d codexos_db --format=custom --file=/tmp/codexos_backup.dump
docker cp "$PG:/tmp/codexos_backup.dump" "$WORK/latest/codexos_backup.dump" >/dev/null
docker exec "$PG" rm -f /tmp/codexos_backup.dump
ls -l "$WORK/latest/codexos_backup.dump" | awk '{print "manual dump (pg_dump -Fc): " $5 " bytes"}'

start_app() {
  docker run -d --name "$REDIS" --network "$NET" -p "127.0.0.1:$REDIS_PORT:6379" "$TOOLS_IMAGE" \
    redis-server --protected-mode no >/dev/null
  docker run -d --name "$BE" --network "$NET" -p "127.0.0.1:$BE_PORT:8000" "$TOOLS_IMAGE" sh -c "$(httpd 8000)" >/dev/null
  docker run -d --name "$FE" --network "$NET" -p "127.0.0.1:$FE_PORT:3000" "$TOOLS_IMAGE" sh -c "$(httpd 3000)" >/dev/null
}
start_app

# The manual's /scripts/database-restore.sh, verbatim but for the names and paths above
# (benches/lib/manual.sh).
# shellcheck source=benches/lib/manual.sh
. "$(dirname "$0")/lib/manual.sh"
write_manual_restore_script

manual_recovery() {
  # Step 2: Database Recovery
  docker run -d --name "$PG" -e POSTGRES_USER=codexos -e POSTGRES_PASSWORD="$PGPASSWORD" \
    -e POSTGRES_DB=codexos_db -p "127.0.0.1:$PG_PORT:5432" "$PG_IMAGE"
  sleep 30
  docker exec "$PG" pg_isready -U codexos
  bash "$WORK/database-restore.sh" "$WORK/latest/codexos_backup.dump"
  # Step 3: Application Recovery
  start_app
  # Step 4: Verification
  docker ps
  until curl -fsS "http://127.0.0.1:$BE_PORT/health"; do sleep 0.1; done
  until curl -fsS "http://127.0.0.1:$FE_PORT/health"; do sleep 0.1; done
  docker exec "$PG" psql -U codexos -d codexos_db -c "SELECT COUNT(*) FROM users;"
  docker exec "$REDIS" redis-cli ping
}

rb_drill() {
  local report=$WORK/drill-$1.json
  "$RB" run runbooks/drills/dr-drill.yaml --state-dir "$WORK/state" --quiet \
    -p network="$NET" -p backup_root="$WORK/backups" -p db_container="$PG" -p db_image="$PG_IMAGE" \
    -p db_volume="$VOL" -p redis_container="$REDIS" -p redis_image="$TOOLS_IMAGE" -p redis_port="$REDIS_PORT" \
    -p backend="$BE" -p backend_image="$TOOLS_IMAGE" -p backend_command="$(httpd 8000)" -p backend_port="$BE_PORT" \
    -p frontend="$FE" -p frontend_image="$TOOLS_IMAGE" -p frontend_command="$(httpd 8000)" -p frontend_port="$FE_PORT" \
    -p frontend_container_port=8000 -p frontend_path=/health \
    --approve destroy --approve recover/restore/approve_drop --report "$report" >/dev/null
  jq -r '"rb recovery s: \(.steps[] | select(.id == "recover") | .duration_seconds)  (of which pg_restore \(.steps[] | select(.id == "recover/restore/restore") | .duration_seconds) s; whole drill \(.machine_seconds) s, RTO met: \(.rto_met))"' "$report"
}

for run in $(seq 1 "$RUNS"); do
  echo "== run $run: rb dr-drill"
  uptime
  rb_drill "$run"
  [ "$(counts)" = "$EXPECTED" ] || { echo "rb: rows differ: $(counts)" >&2; exit 1; }

  echo "== run $run: manual drill"
  docker stop "$PG" "$REDIS" "$BE" "$FE" >/dev/null
  docker rm "$PG" "$REDIS" "$BE" "$FE" >/dev/null
  s=$(now)
  manual_recovery >"$WORK/manual-$run.log" 2>&1
  e=$(now)
  echo "manual recovery s: $(echo "$e - $s" | bc)"
  [ "$(counts)" = "$EXPECTED" ] || { echo "manual: rows differ: $(counts)" >&2; tail -20 "$WORK/manual-$run.log"; exit 1; }
done
