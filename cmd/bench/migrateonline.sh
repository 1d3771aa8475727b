#!/usr/bin/env bash
# migrateonline.sh: apply this tree's migrations to a database that a runner of an older git ref
# is serving, while that runner's own load generator reserves through PgBouncer, then print
# the load generator's answers and the books per variant (free units + live holds == stock).
#
# usage: bash cmd/bench/migrateonline.sh [REF]   (default 0f864bb: main before variants)
# needs: make services (Postgres, PgBouncer on 6432, Redis, fauxqs, stripe-mock).
set -euo pipefail
ref=${1:-0f864bb}
top=$(git rev-parse --show-toplevel)
old=$(mktemp -d)
db="lu_migonline_$$"
port=18950
pg="postgres://postgres@127.0.0.1:5432"
export DATABASE_URL="postgres://postgres@127.0.0.1:6432/$db?sslmode=disable"
runner=""
cleanup() {
  [ -n "$runner" ] && { kill "$runner" 2>/dev/null || true; wait "$runner" 2>/dev/null || true; }
  git -C "$top" worktree remove --force "$old" >/dev/null 2>&1 || true
  psql "$pg/postgres" -qc "DROP DATABASE IF EXISTS $db WITH (FORCE)" >/dev/null 2>&1 || true
  redis-cli -n 13 FLUSHDB >/dev/null || true
}
trap cleanup EXIT
git -C "$top" worktree add -q --detach "$old" "$ref"
(cd "$old" && go build -o bin/local ./cmd/local)
psql "$pg/postgres" -qc "CREATE DATABASE $db"
redis-cli -n 13 FLUSHDB >/dev/null
(cd "$old" && REDIS_URL=redis://127.0.0.1:6379/13 LOCAL_ADDR=127.0.0.1:$port QUEUE_PREFIX="lu-migonline-$$-" SHOPPER_RATE=0 \
  RESERVATION_TTL=1h EXPIRE_EVERY=5s exec ./bin/local) >"$old/runner.log" 2>&1 &
runner=$!
u=http://127.0.0.1:$port
for _ in $(seq 1 100); do curl -sf "$u/healthz" >/dev/null && break; sleep 0.2; done
tok() { curl -sf -XPOST "$u/_local/token" -H 'content-type: application/json' -d "{\"sub\":\"$1\",\"groups\":[$2],\"ttl\":\"1h\"}" | sed -nE 's/.*"token":"([^"]+)".*/\1/p'; }
admin=$(tok ada '"admin"') alice=$(tok alice '') bob=$(tok bob '')
json=(-H 'content-type: application/json')
curl -sf -XPUT "$u/admin/products/tee" -H "authorization: Bearer $admin" "${json[@]}" \
  -d '{"name":"Tee","price_cents":1500,"currency":"usd","stock":50,"max_per_user":5}' >/dev/null
# Before the migration: a paid order (fulfilled on the queue) and a live hold.
curl -sf -XPOST "$u/reservations" -H "authorization: Bearer $alice" "${json[@]}" -d '{"product_id":"tee","quantity":2}' >/dev/null
order=$(curl -sf -XPOST "$u/checkout" -H "authorization: Bearer $alice" "${json[@]}" -d '{}' | sed -nE 's/.*"id":"(o_[^"]+)".*/\1/p')
curl -sf -XPOST "$u/_local/pay/$order" -H "authorization: Bearer $alice" >/dev/null
curl -sf -XPOST "$u/reservations" -H "authorization: Bearer $bob" "${json[@]}" -d '{"product_id":"tee","quantity":1}' >/dev/null
# The old code's own load generator (cmd/local/loadgen before it moved to cmd/bench).
gen=./cmd/local/loadgen
[ -d "$old/$gen" ] || gen=./cmd/bench/loadgen
(cd "$old" && go run "$gen" -url "$u" -db "$DATABASE_URL" -duration 25s -warmup 1s -conc 20 -users 300 -skip-ceiling -burst 0) &
load=$!
sleep 6
echo "migrating to this tree's schema while the load runs"
(cd "$top" && time go run ./cmd/local migrate)
wait "$load"
echo "newest migrations: $(psql "$pg/$db" -tAc "SELECT string_agg(version::text, ' ' ORDER BY version DESC) FROM (SELECT version FROM schema_migrations ORDER BY version DESC LIMIT 3) v")"
psql "$pg/$db" -c "SELECT p.id AS product, v.id AS variant, v.stock, v.sold,
  (SELECT coalesce(sum(free), 0) FROM product_slots s WHERE s.product_id = p.id AND s.variant_id = v.id) AS free,
  (SELECT coalesce(sum(quantity), 0) FROM reservations r WHERE r.product_id = p.id AND r.variant_id = v.id
     AND r.status IN ('reserved', 'checked_out')) AS held,
  (SELECT status FROM orders WHERE id = '$order') AS paid_order
  FROM products p JOIN product_variants v ON v.product_id = p.id ORDER BY p.id, v.id"
