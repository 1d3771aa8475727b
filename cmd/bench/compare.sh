#!/usr/bin/env bash
# compare.sh: the reserve side by side (`make bench-compare`). It builds a git ref's runner (from
# `git archive`, in a temporary directory) and the working tree's, then runs them one after the
# other, ROUNDS times in alternating order (base, head, head, base, ...), each on a fresh
# database and Redis DB of its own (benchrun.sh: an old ref migrates its own schema), under the
# same load from this tree's loadgen: reserves of one product by USERS shoppers at CONC
# connections, then the sold-out answer against a Redis EVALSHA ceiling, then pgbench's one-row
# INSERT ceiling on the same database. It prints one table, a row per run, with the load average.
#
# usage: compare.sh [REF]   default REF: the last release tag, else origin/main, else a929dc3
#                           (main at the end of 2026-11-25, before the counter slots)
# HEAD_REF, when set, builds the head side from that ref instead of the working tree (to
# measure one commit against its parent).
# environment: what benchrun.sh needs, plus CONC (200), USERS (3000), DURATION (10s), ROUNDS (2),
# DB_MODE (direct: the runner straight to Postgres, as in issue 20; pooler: through PgBouncer),
# CEILING_CONNS (16: the runner's pool), STATS (1: per-reserve statements, rows, buffers, trigger
# calls and CPU, load-independent counts; 0 skips it and its 44 s of waiting per run).
set -euo pipefail
ref=${1:-}
if [ -z "$ref" ]; then
  ref=$(git describe --tags --abbrev=0 2>/dev/null || true)
  if [ -z "$ref" ] && git rev-parse -q --verify origin/main >/dev/null; then ref=origin/main; fi
  [ -n "$ref" ] || ref=a929dc3
fi
sha=$(git rev-parse --short "$ref^{commit}")
CONC=${CONC:-200} USERS=${USERS:-3000} DURATION=${DURATION:-10s} ROUNDS=${ROUNDS:-2}
DB_MODE=${DB_MODE:-direct} CEILING_CONNS=${CEILING_CONNS:-16} STATS=${STATS:-1}
case $DB_MODE in
  direct) export BENCH_DB_PORT=$PG_PORT ;;
  pooler) export BENCH_DB_PORT=$PGBOUNCER_PORT ;;
  *) echo "DB_MODE must be direct or pooler" >&2; exit 2 ;;
esac
out="$RUN_DIR/compare"
mkdir -p "$out"
src=$(mktemp -d)
trap 'rm -rf "$src"' EXIT
head="the working tree ($(git rev-parse --short HEAD)$(git diff --quiet HEAD || echo ' + changes'))"
[ -z "${HEAD_REF:-}" ] || head="$HEAD_REF ($(git rev-parse --short "$HEAD_REF^{commit}"))"
echo "base: $ref ($sha), head: $head"
mkdir -p "$src/base" "$src/head"
git archive "$sha" | tar -x -C "$src/base"
(cd "$src/base" && go build -o "$out/base-local" ./cmd/local)
if [ -n "${HEAD_REF:-}" ]; then
  git archive "$(git rev-parse "$HEAD_REF^{commit}")" | tar -x -C "$src/head"
  (cd "$src/head" && go build -o "$out/head-local" ./cmd/local)
else
  go build -o "$out/head-local" ./cmd/local
fi
go build -o "$out/loadgen" ./cmd/bench/loadgen
cat >"$out/ceiling.sql" <<'SQL'
INSERT INTO bench_pgbench (id, product_id, user_id, quantity, status, expires_at, created_at, updated_at)
VALUES (md5(random()::text), 'ceiling', 'u' || (random() * 3000)::int, 1, 'reserved', now() + interval '1 hour', now(), now());
SQL
export LOADGEN="$out/loadgen" CONC USERS DURATION CEILING_CONNS STATS
flags=""
[ "$STATS" = 1 ] && flags="-stats"
export LOADGEN_FLAGS="$flags"
: >"$out/results.txt"
for round in $(seq 1 "$ROUNDS"); do
  order="base head"
  [ $((round % 2)) = 0 ] && order="head base"
  for b in $order; do
    log="$out/$b-$round.txt"
    echo "round $round: $b ($log)"
    LOCAL_BIN="$out/$b-local" bash cmd/bench/benchrun.sh "cmp$b" "${BENCH_PORT:-18080}" -- bash -c '
      set -euo pipefail
      "$LOADGEN" -url "$RUNNER_URL" -db "$DATABASE_URL" -redis "$REDIS_URL" -runner-pid "$RUNNER_PID" \
        -conc "$CONC" -users "$USERS" -duration "$DURATION" -skip-ceiling -skip-burst -variants 0 -soldout -result $LOADGEN_FLAGS
      psql -q "$DATABASE_URL" -c "CREATE TABLE bench_pgbench (id text PRIMARY KEY, product_id text NOT NULL, user_id text NOT NULL,
        quantity bigint NOT NULL, status text NOT NULL, expires_at timestamptz NOT NULL, order_id text,
        created_at timestamptz NOT NULL, updated_at timestamptz NOT NULL)"
      tps=$(pgbench -n -c "$CEILING_CONNS" -j 2 -T "${DURATION%s}" -f "'"$out"'/ceiling.sql" "$DATABASE_URL" 2>/dev/null | awk "/^tps/ {print \$3; exit}")
      echo "CEILING tps=$tps"
    ' >"$log" 2>"$out/$b-$round.err" || { echo "$b failed:" >&2; tail -20 "$out/$b-$round.err" "$log" >&2; exit 1; }
    awk -v b="$b" -v r="$round" '/^RESULT/ {res=$0} /^CEILING/ {split($2, t, "="); c=t[2]} END {print b, r, c, res}' "$log" >>"$out/results.txt"
  done
done
echo
echo "$(date -u '+%Y-%m-%d %H:%M UTC'), $(nproc) cores; base $ref ($sha), head $head; c=$CONC, $USERS shoppers, one product, $DURATION per loop, runner $DB_MODE to Postgres, pgbench ceiling from $CEILING_CONNS connections"
echo
awk -v stats="$STATS" '
  function f(k,   i, kv) { for (i = 5; i <= NF; i++) { split($i, kv, "="); if (kv[1] == k) return kv[2] } return "" }
  BEGIN {
    printf "| build | run | reserves/s | p50 ms | p99 ms | insert ceiling/s | reserves/ceiling | sold-out answers/s | EVALSHA ceiling/s | sold-out/EVALSHA |"
    if (stats == 1) printf " runner CPU µs/reserve | Postgres CPU µs/reserve | transactions/reserve | buffer accesses/reserve | runner CPU µs/sold-out |"
    printf " load avg (start of row) |\n|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
    if (stats == 1) printf "---:|---:|---:|---:|---:|"
    printf "---|\n"
  }
  {
    r = f("reserve_rps"); c = $3; s = f("soldout_rps"); e = f("evalsha_rps")
    printf "| %s | %s | %s | %s | %s | %.0f | %.2f | %s | %s | %.2f |", $1, $2, r, f("p50_ms"), f("p99_ms"), c, (c > 0 ? r / c : 0), s, e, (e > 0 ? s / e : 0)
    if (stats == 1) printf " %s | %s | %s | %s | %s |", f("runner_cpu_us"), f("pg_cpu_us"), f("xacts"), f("bufs"), f("soldout_runner_cpu_us")
    l = f("load"); gsub("/", " ", l); printf " %s |\n", l
  }' "$out/results.txt"
# Rates on a shared machine swing by up to 2x from one run to the next: the medians over the
# rounds, and head/base per round (the two runs of a round are back to back), are what to read.
median() { sort -n | awk '{v[NR] = $1} END {if (NR == 0) print "-"; else if (NR % 2) print v[(NR + 1) / 2]; else print (v[NR / 2] + v[NR / 2 + 1]) / 2}'; }
field() { awk -v b="$1" -v k="$2" '$1 == b {for (i = 5; i <= NF; i++) {split($i, kv, "="); if (kv[1] == k) print kv[2]}}' "$out/results.txt"; }
echo
for b in base head; do
  echo "$b medians over $ROUNDS rounds: $(field $b reserve_rps | median) reserves/s, p99 $(field $b p99_ms | median) ms$([ "$STATS" = 1 ] && echo ", Postgres CPU $(field $b pg_cpu_us | median) µs/reserve")"
done
echo "head/base reserves/s per round: $(awk '{for (i = 5; i <= NF; i++) {split($i, kv, "="); if (kv[1] == "reserve_rps") r[$1 " " $2] = kv[2]}} END {for (n = 1; ("base " n) in r; n++) printf "%s%.2f", (n > 1 ? ", " : ""), r["head " n] / r["base " n]; print ""}' "$out/results.txt")"
echo
echo "per-run logs (with the per-reserve breakdown): $out/{base,head}-N.txt"
