#!/usr/bin/env bash
# PgBouncer for the local runner and the tests: the stand-in for RDS Proxy (docs/drop-moment.md).
# Transaction pooling on 127.0.0.1:$PGBOUNCER_PORT, every database name passed
# through to the local Postgres, server connections capped per database and per user.
#
#   pgbouncer.sh start   install Debian's pgbouncer if missing, start it unless it answers
#   pgbouncer.sh stop    stop the one this script started
#
# PgBouncer refuses to run as root, so as root it runs as the postgres user; its files live in
# a folder of its own under /tmp (the repo's folder may not be readable by that user).
set -euo pipefail

PORT=${PGBOUNCER_PORT:-6432}
PG_HOST=${PG_HOST:-127.0.0.1}
PG_PORT=${PG_PORT:-5432}
# The caps: server connections per database (what one deployment's proxy would allow) and per
# user (all databases together, under Postgres's max_connections of 100, leaving room for
# direct admin connections).
MAX_DB_CONNS=${PGBOUNCER_MAX_DB_CONNS:-20}
MAX_USER_CONNS=${PGBOUNCER_MAX_USER_CONNS:-60}
MAX_CLIENTS=${PGBOUNCER_MAX_CLIENTS:-5000}
DIR=${PGBOUNCER_DIR:-/tmp/lastunit-pgbouncer-$PORT}

answers() { (exec 3<>"/dev/tcp/127.0.0.1/$PORT") 2>/dev/null; }

as_owner() {
  if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi
}

start() {
  if answers; then
    exit 0
  fi
  if ! command -v pgbouncer >/dev/null 2>&1; then
    if [ "$(id -u)" != 0 ]; then
      echo "pgbouncer is not installed: install Debian's pgbouncer package (apt-get install pgbouncer)" >&2
      exit 1
    fi
    echo "installing pgbouncer (Debian package)"
    (apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null 2>&1) || {
      apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends pgbouncer >/dev/null
    }
    # The package may start its own instance on the same port with its own settings.
    if answers; then
      (service pgbouncer stop || pkill -f /etc/pgbouncer/pgbouncer.ini || true) >/dev/null 2>&1
      sleep 0.5
    fi
  fi
  mkdir -p "$DIR"
  [ "$(id -u)" = 0 ] && chown postgres "$DIR"
  cat >"$DIR/userlist.txt" <<EOF
"postgres" ""
EOF
  cat >"$DIR/pgbouncer.ini" <<EOF
[databases]
* = host=$PG_HOST port=$PG_PORT

[pgbouncer]
listen_addr = 127.0.0.1
listen_port = $PORT
unix_socket_dir =
auth_type = trust
auth_file = $DIR/userlist.txt
admin_users = postgres
pool_mode = transaction
max_client_conn = $MAX_CLIENTS
default_pool_size = $MAX_DB_CONNS
max_db_connections = $MAX_DB_CONNS
max_user_connections = $MAX_USER_CONNS
server_idle_timeout = 20
stats_period = 1
query_wait_timeout = 120
ignore_startup_parameters = extra_float_digits
logfile = $DIR/pgbouncer.log
pidfile = $DIR/pgbouncer.pid
EOF
  [ "$(id -u)" = 0 ] && chown postgres "$DIR"/*
  echo "starting pgbouncer on 127.0.0.1:$PORT (transaction pooling, at most $MAX_DB_CONNS server connections per database)"
  ulimit -n "$(ulimit -Hn)" 2>/dev/null || true
  as_owner pgbouncer -d "$DIR/pgbouncer.ini"
  for _ in $(seq 1 50); do answers && break; sleep 0.1; done
  answers || { echo "pgbouncer does not answer on 127.0.0.1:$PORT; see $DIR/pgbouncer.log" >&2; exit 1; }
}

stop() {
  if [ -f "$DIR/pgbouncer.pid" ]; then
    kill "$(cat "$DIR/pgbouncer.pid")" 2>/dev/null || true
    rm -f "$DIR/pgbouncer.pid"
    echo "stopped pgbouncer"
  fi
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  *) echo "usage: $0 start|stop" >&2; exit 2 ;;
esac
