#!/bin/bash
# Entrypoint of rb-test/postgres: behaves like the official `postgres` image's.
#   POSTGRES_USER (default postgres), POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE,
#   POSTGRES_DB (default: the user), POSTGRES_INITDB_ARGS, POSTGRES_INITDB_WALDIR,
#   POSTGRES_HOST_AUTH_METHOD (default scram-sha-256), PGDATA (default /var/lib/postgresql/data).
# First start only (no $PGDATA/PG_VERSION): initdb, trust on the local socket, password auth for
# host connections (replication included), listen_addresses='*', create POSTGRES_DB, run
# /docker-entrypoint-initdb.d/*.sh|*.sql|*.sql.gz|*.sql.zst. Then `exec postgres` as the postgres
# user, so the server is PID 1 and gets the signals (STOPSIGNAL SIGINT = fast shutdown).
# A first argument starting with `-` is an argument to postgres: `-c wal_level=replica`.
set -Eeuo pipefail

log() { printf '%s [entrypoint] %s\n' "$(date -u +%FT%TZ)" "$*" >&2; }
die() { log "error: $*"; exit 1; }

# file_env VAR: VAR_FILE names a file holding VAR's value (read while still root).
file_env() {
	local var="$1" fvar="${1}_FILE" def="${2:-}"
	if [ -n "${!var:-}" ] && [ -n "${!fvar:-}" ]; then
		die "both $var and $fvar are set (but are exclusive)"
	fi
	local val="$def"
	if [ -n "${!var:-}" ]; then
		val="${!var}"
	elif [ -n "${!fvar:-}" ]; then
		[ -r "${!fvar}" ] || die "$fvar=${!fvar} is not readable"
		val="$(<"${!fvar}")"
	fi
	export "$var"="$val"
	unset "$fvar"
}

if [ "${1:-}" = "" ]; then set -- postgres; fi
if [ "${1:0:1}" = '-' ]; then set -- postgres "$@"; fi

export PGDATA="${PGDATA:-/var/lib/postgresql/data}"
file_env POSTGRES_PASSWORD
file_env POSTGRES_USER postgres
file_env POSTGRES_DB "$POSTGRES_USER"
file_env POSTGRES_INITDB_ARGS
export POSTGRES_HOST_AUTH_METHOD="${POSTGRES_HOST_AUTH_METHOD:-scram-sha-256}"

# `postgres --version`, `--help`, `-C name`, `--describe-config` only print: no init, no privileges.
want_help() {
	local arg
	for arg; do
		case "$arg" in
			-'?'|--help|--describe-config|-V|--version|-C|-C*) return 0 ;;
		esac
	done
	return 1
}

if [ "$1" != 'postgres' ] || want_help "$@"; then
	if [ "$1" = postgres ] && [ "$(id -u)" = 0 ]; then
		exec setpriv --reuid=postgres --regid=postgres --init-groups "$@"
	fi
	exec "$@"
fi

if [ "$(id -u)" = '0' ]; then
	mkdir -p "$PGDATA" /var/run/postgresql
	chown postgres:postgres /var/run/postgresql
	chmod 2775 /var/run/postgresql
	# A fresh volume may be root-owned; never rewrite the ownership of an existing cluster's files.
	if [ "$(stat -c %U "$PGDATA")" != postgres ]; then chown postgres:postgres "$PGDATA"; fi
	chmod 0700 "$PGDATA" 2>/dev/null || true
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then
		mkdir -p "$POSTGRES_INITDB_WALDIR"
		chown postgres:postgres "$POSTGRES_INITDB_WALDIR"
		chmod 0700 "$POSTGRES_INITDB_WALDIR"
	fi
	exec setpriv --reuid=postgres --regid=postgres --init-groups "${BASH_SOURCE[0]}" "$@"
fi

if [ ! -s "$PGDATA/PG_VERSION" ]; then
	if [ -z "${POSTGRES_PASSWORD:-}" ] && [ "$POSTGRES_HOST_AUTH_METHOD" != trust ]; then
		die "Database is uninitialized and superuser password is not specified.
  Set POSTGRES_PASSWORD or POSTGRES_PASSWORD_FILE (or POSTGRES_HOST_AUTH_METHOD=trust)."
	fi
	[ -w "$PGDATA" ] || die "$PGDATA is not writable by $(id -un)"
	log "initdb in $PGDATA for user $POSTGRES_USER"
	initdb_args=(--username="$POSTGRES_USER" --auth-local=trust --auth-host="$POSTGRES_HOST_AUTH_METHOD")
	if [ -n "${POSTGRES_INITDB_WALDIR:-}" ]; then initdb_args+=(--waldir="$POSTGRES_INITDB_WALDIR"); fi
	# shellcheck disable=SC2086 # POSTGRES_INITDB_ARGS is a word list, like the official image's
	initdb "${initdb_args[@]}" --pwfile=<(printf '%s\n' "${POSTGRES_PASSWORD:-}") ${POSTGRES_INITDB_ARGS}
	{
		echo
		echo "# rb-test: any host may connect with a password (replication too)"
		echo "host all all all $POSTGRES_HOST_AUTH_METHOD"
		echo "host replication all all $POSTGRES_HOST_AUTH_METHOD"
	} >>"$PGDATA/pg_hba.conf"
	printf "\nlisten_addresses = '*'\n" >>"$PGDATA/postgresql.conf"

	# Temporary server on the socket only, for POSTGRES_DB and the init scripts.
	pg_ctl -D "$PGDATA" -o "-c listen_addresses='' -p 5432" -w -t 60 start >/dev/null
	export PGUSER="$POSTGRES_USER" PGHOST=/var/run/postgresql PGPORT=5432
	psql_q=(psql -v ON_ERROR_STOP=1 --no-psqlrc -q)
	if [ "$POSTGRES_DB" != postgres ]; then
		printf 'CREATE DATABASE :"db";\n' | "${psql_q[@]}" -d postgres --set db="$POSTGRES_DB"
	fi
	for f in /docker-entrypoint-initdb.d/*; do
		[ -e "$f" ] || continue
		case "$f" in
			*.sh) log "running $f"; if [ -x "$f" ]; then "$f"; else
				# shellcheck disable=SC1090
				. "$f"
			fi ;;
			*.sql) log "running $f"; "${psql_q[@]}" -d "$POSTGRES_DB" -f "$f" ;;
			*.sql.gz) log "running $f"; gzip -dc "$f" | "${psql_q[@]}" -d "$POSTGRES_DB" ;;
			*.sql.zst) log "running $f"; zstd -dc "$f" | "${psql_q[@]}" -d "$POSTGRES_DB" ;;
			*) log "ignoring $f" ;;
		esac
	done
	pg_ctl -D "$PGDATA" -m fast -w -t 60 stop >/dev/null
	unset PGUSER PGHOST PGPORT
	log "init done; starting the server"
fi

unset POSTGRES_PASSWORD
exec "$@"
