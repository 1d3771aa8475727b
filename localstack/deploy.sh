#!/usr/bin/env bash
# The LocalStack init script behind `make localstack-deploy`: waits for the LocalStack that
# localstack/compose.yaml runs, bootstraps and deploys the LocalStack variant of the CDK stack
# with cdklocal (infra/, -c localstack=true; with LOCALSTACK_AUTH_TOKEN also Cognito and the
# API Gateway v2 APIs), then invokes the reserve function once with events/get-products.json.
#
# Environment: LOCALSTACK_URL (http://localhost:4566), LASTUNIT_CDKLOCAL (the cdklocal binary),
# LAMBDA_ARCH (the architecture `make package` built: arm64 or x86_64), LASTUNIT_CDKFLAGS.
# (Not CDK_*: the CDK CLI reads environment variables starting with CDK as its options.)
set -euo pipefail
cd "$(dirname "$0")/.."

LOCALSTACK_URL=${LOCALSTACK_URL:-http://localhost:4566}
cdklocal=${LASTUNIT_CDKLOCAL:-$PWD/.tools/cdk/node_modules/.bin/cdklocal}
LAMBDA_ARCH=${LAMBDA_ARCH:-x86_64}
flags=${LASTUNIT_CDKFLAGS:-}

# LocalStack takes any credentials; these keep the CDK and the SDKs away from a real account.
export AWS_ACCESS_KEY_ID=test AWS_SECRET_ACCESS_KEY=test AWS_SESSION_TOKEN=
export AWS_REGION=us-east-1 AWS_DEFAULT_REGION=us-east-1
export CDK_DEFAULT_ACCOUNT=000000000000 CDK_DEFAULT_REGION=us-east-1
export AWS_ENDPOINT_URL="$LOCALSTACK_URL"

echo "waiting for LocalStack at $LOCALSTACK_URL"
for _ in $(seq 1 60); do
  if curl -fsS "$LOCALSTACK_URL/_localstack/health" >/dev/null 2>&1; then break; fi
  sleep 1
done
if ! curl -fsS "$LOCALSTACK_URL/_localstack/health" >/dev/null; then
  echo "LocalStack does not answer at $LOCALSTACK_URL: start it with \`make localstack-up\`" >&2
  exit 1
fi

for f in build/*.zip; do
  [ -e "$f" ] || { echo "no packages in build/: run \`make package\`" >&2; exit 1; }
done

ctx=(-c localstack=true -c "arch=$LAMBDA_ARCH")
if [ -n "${LOCALSTACK_AUTH_TOKEN:-}" ]; then
  ctx+=(-c localstackApis=true)
fi

(
  cd infra
  "$cdklocal" bootstrap "${ctx[@]}"
  # shellcheck disable=SC2086 # flags is a list of flags
  "$cdklocal" deploy --require-approval never --outputs-file ../build/localstack-outputs.json "${ctx[@]}" $flags
)

# One invocation of the real function (its first one pulls the provided.al2023 image).
echo "invoking lastunit-reserve with localstack/events/get-products.json"
auth="AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/lambda/aws4_request, SignedHeaders=host, Signature=0"
out=$(curl -fsS -X POST -H "Authorization: $auth" -H 'Content-Type: application/json' \
  --data-binary @localstack/events/get-products.json \
  "$LOCALSTACK_URL/2015-03-31/functions/lastunit-reserve/invocations")
echo "$out"
case "$out" in
  *'"statusCode":200'*) echo "lastunit is deployed on LocalStack; outputs in build/localstack-outputs.json" ;;
  *) echo "reserve did not answer 200; see its logs: aws --endpoint-url $LOCALSTACK_URL logs tail /aws/lambda/lastunit-reserve" >&2; exit 1 ;;
esac
