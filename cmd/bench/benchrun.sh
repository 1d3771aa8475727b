#!/usr/bin/env bash
# benchrun.sh: run a benchmark program against a local runner of its own. It makes a fresh
# database, claims a Redis DB the way the tests do (keys lastunit:testdb:N in DB 0), starts
# bin/local on the first free port from PORT, waits for /healthz, runs the command with
# $RUNNER_URL and $DATABASE_URL set, and always stops the runner and frees the Redis DB.
#
# usage: benchrun.sh NAME PORT -- command args...   (NAME names the database, queues and log)
# environment: PG_ADMIN, PG_HOST, PG_PORT, PGBOUNCER_PORT, REDIS_PORT, BENCH_HOST, RUN_DIR, and the runner's
# own settings (RESERVATION_TTL, DB_MAX_CONNS, ...), which it passes through. LOCAL_BIN names the
# runner's binary (default ./bin/local; cmd/bench/compare.sh runs an older build with it);
# BENCH_DB_PORT the port the runner reaches Postgres on (default PGBOUNCER_PORT: through the
# pooler; PG_PORT: straight to Postgres). The command also gets $REDIS_URL, the runner's Redis DB.
set -euo pipefail
name=$1 port=$2
shift 3
# A database of this run's own, dropped when it ends: a bench never touches another's database.
db="lastunit_${name}_$$"
# The runner reaches Postgres through PgBouncer, as it does by default (and functions through RDS Proxy).
export DATABASE_URL="postgres://postgres@127.0.0.1:${BENCH_DB_PORT:-${PGBOUNCER_PORT:-6432}}/${db}?sslmode=disable"
psql "$PG_ADMIN" -qc "CREATE DATABASE $db" -c "ALTER DATABASE $db SET track_functions = 'all'"
# (track_functions for this database only: the trigger functions' calls and time, for loadgen -stats)
owner="$name-$$-$RANDOM" rdb="" pid=""
for n in 14 13 15 12 11 10 9 8 7 6 5 4 3 2 1; do
  if [ "$(redis-cli -p "$REDIS_PORT" SET "lastunit:testdb:$n" "$owner" NX EX 900)" = OK ]; then rdb=$n; break; fi
done
[ -n "$rdb" ] || { echo "no free redis database (1..15 are all claimed by tests)" >&2; exit 1; }
cleanup() {
  if [ -n "$pid" ]; then kill "$pid" 2>/dev/null || true; wait "$pid" 2>/dev/null || true; fi
  psql "$PG_ADMIN" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  if [ "$(redis-cli -p "$REDIS_PORT" GET "lastunit:testdb:$rdb")" = "$owner" ]; then
    redis-cli -p "$REDIS_PORT" -n "$rdb" FLUSHDB >/dev/null || true
    redis-cli -p "$REDIS_PORT" EVAL "if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end return 0" \
      1 "lastunit:testdb:$rdb" "$owner" >/dev/null || true
  fi
}
trap cleanup EXIT
redis-cli -p "$REDIS_PORT" -n "$rdb" FLUSHDB >/dev/null
ulimit -n 8192 2>/dev/null || true
while (exec 3<>"/dev/tcp/$BENCH_HOST/$port") 2>/dev/null; do port=$((port + 1)); done
export RUNNER_URL="http://$BENCH_HOST:$port"
log="$RUN_DIR/$name-local.log"
echo "$name: runner on $RUNNER_URL, database $db, redis db $rdb, log $log"
export REDIS_URL="redis://127.0.0.1:$REDIS_PORT/$rdb"
LOCAL_ADDR="$BENCH_HOST:$port" QUEUE_PREFIX="lastunit-$name-" "${LOCAL_BIN:-./bin/local}" >"$log" 2>&1 &
pid=$!
export RUNNER_PID=$pid
for _ in $(seq 1 150); do
  curl -fsS -o /dev/null "$RUNNER_URL/healthz" 2>/dev/null && break
  kill -0 "$pid" 2>/dev/null || { echo "the runner died:" >&2; tail -20 "$log" >&2; exit 1; }
  sleep 0.2
done
curl -fsS -o /dev/null "$RUNNER_URL/healthz" || { echo "the runner is not healthy after 30 s" >&2; tail -20 "$log" >&2; exit 1; }
"$@"
