#!/usr/bin/env bash
# `make localstack-check`: what can be checked on a machine without a Docker engine. The
# compose file parses (docker compose, else docker-compose, else a YAML parse), the scripts
# pass bash -n and shellcheck (when installed), and the LocalStack variant of the stack
# synthesizes. Nothing is started: LocalStack itself is not run here.
set -euo pipefail
cd "$(dirname "$0")/.."

compose=localstack/compose.yaml
if docker compose version >/dev/null 2>&1; then
  docker compose -f "$compose" config -q && echo "ok   $compose (docker compose config)"
elif command -v docker-compose >/dev/null 2>&1; then
  docker-compose -f "$compose" config -q && echo "ok   $compose (docker-compose config)"
elif python3 -c 'import yaml' 2>/dev/null; then
  python3 -c 'import sys, yaml; d = yaml.safe_load(open(sys.argv[1])); assert set(d["services"]) >= {"localstack", "postgres", "redis"}' "$compose" \
    && echo "ok   $compose (YAML parse only: no compose CLI here)"
else
  echo "skip $compose: no docker compose, docker-compose or python3-yaml to parse it" >&2
fi

for script in localstack/*.sh; do
  bash -n "$script"
  if command -v shellcheck >/dev/null 2>&1; then
    shellcheck "$script"
    echo "ok   $script (bash -n, shellcheck)"
  else
    echo "ok   $script (bash -n; shellcheck not installed)"
  fi
done

for f in build/*.zip; do
  [ -e "$f" ] || { echo "no packages in build/: run \`make package\`" >&2; exit 1; }
done
arch=$(cat build/.arch 2>/dev/null || echo arm64)
[ "$arch" = amd64 ] && arch=x86_64
out=build/cdk.out.localstack
(
  cd infra
  "${LASTUNIT_CDK:-../.tools/cdk/node_modules/.bin/cdk}" synth --quiet -o "../$out" -c localstack=true -c "arch=$arch"
)
python3 - "$out/Lastunit.template.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
types = [r["Type"] for r in t["Resources"].values()]
for absent in ("AWS::RDS::DBInstance", "AWS::ElastiCache::ReplicationGroup", "AWS::EC2::VPC", "AWS::ApiGatewayV2::Api"):
    assert absent not in types, absent
assert types.count("AWS::Lambda::Function") >= 7, types.count("AWS::Lambda::Function")
print("ok   LocalStack synth: %d resources, %d functions, %d queues" % (
    len(types), types.count("AWS::Lambda::Function"), types.count("AWS::SQS::Queue")))
PY
