# Deploying lastunit (included by the Makefile): Lambda packages, the CDK stack (infra/),
# LocalStack (localstack/), the CDK assertions and the Lambda runtime interface emulator
# that the smoke test (functions/reserve/rie_test.go) runs the real binary under.

BUILD             := $(CURDIR)/build
FUNCTIONS          = $(notdir $(patsubst %/,%,$(wildcard functions/*/)))
# The architecture of the functions: LAMBDA_ARCH=x86_64 or arm64. Unset, the last `make package`'s
# (build/.arch), so `make package LAMBDA_ARCH=x86_64` then `make deploy` deploys x86_64; arm64 at first.
LAMBDA_ARCH       ?= $(if $(filter amd64,$(shell cat build/.arch 2>/dev/null)),x86_64,arm64)
# The AWS region and the names' prefix of the deploy targets: REGION=eu-west-1, else AWS_REGION,
# else AWS_DEFAULT_REGION, else the AWS CLI profile's region (`aws configure get region`).
REGION            ?= $(or $(AWS_REGION),$(AWS_DEFAULT_REGION),$(shell aws configure get region 2>/dev/null))
PREFIX            ?= lastunit
AWS_ENV            = AWS_REGION=$(REGION) AWS_DEFAULT_REGION=$(REGION) CDK_DEFAULT_REGION=$(REGION)
# Says where a deploy goes (account, region, arch) and stops when the region or credentials are missing.
AWS_CHECK          = @[ -n "$(REGION)" ] || { echo "no AWS region: run e.g. make $@ REGION=eu-west-1 (or set AWS_REGION)" >&2; exit 1; }; \
	command -v aws >/dev/null || { echo "the AWS CLI (aws) is needed: https://docs.aws.amazon.com/cli/latest/userguide/getting-started-install.html" >&2; exit 1; }; \
	acct=$$($(AWS_ENV) aws sts get-caller-identity --query Account --output text) || { echo "no AWS credentials (aws sts get-caller-identity failed)" >&2; exit 1; }; \
	echo "$@: account $$acct, region $(REGION), prefix $(PREFIX), functions for $(LAMBDA_ARCH)"
LAMBDA_GOFLAGS    := -tags lambda.norpc -trimpath -buildvcs=false -ldflags="-s -w"
ZIP_LIMIT_MB      := 10
CDK_VERSION       := 2.1148.1
CDK_LOCAL_VERSION := 3.0.4
CDK               := $(TOOLS)/cdk/node_modules/.bin/cdk
CDKLOCAL          := $(TOOLS)/cdk/node_modules/.bin/cdklocal
CDKFLAGS         ?=
RIE_VERSION       := v0.0.0-20261030222936-bef5c4ba774d
RIE               := $(TOOLS)/bin/aws-lambda-rie
# jsii (the CDK's Go bindings) runs node: the pinned Node 22 from $(TOOLS) (Node 20 is end-of-life).
INFRA_ENV          = PATH="$(dir $(NODE)):$$PATH" JSII_SILENCE_WARNING_END_OF_LIFE_NODE_VERSION=20
LOCALSTACK_URL    ?= http://localhost:4566
HOST_LAMBDA_ARCH  := $(if $(filter aarch64 arm64,$(shell uname -m)),arm64,x86_64)

.PHONY: package synth deploy prewarm cdk-bootstrap reload-secrets stripe-keys test-infra rie localstack-up localstack-deploy localstack-down localstack-check

# `make test` also runs the stack's assertions, and needs the emulator for the smoke test.
test: $(RIE) test-infra

package: ## build every function for Lambda (provided.al2023; LAMBDA_ARCH=arm64 or x86_64, default the last package's, else arm64) into build/<name>/bootstrap and build/<name>.zip
	@command -v zip >/dev/null || { echo "make package needs zip (apt-get install zip)" >&2; exit 1; }
	@goarch=$(if $(filter x86_64 amd64,$(LAMBDA_ARCH)),amd64,arm64); \
	mkdir -p $(BUILD); echo "$$goarch" >$(BUILD)/.arch; \
	printf '%-10s %12s %10s   (%s, limit %s MB a zip)\n' function bootstrap zip "linux/$$goarch" $(ZIP_LIMIT_MB); \
	over=""; \
	for n in $(FUNCTIONS); do \
		rm -rf $(BUILD)/$$n $(BUILD)/$$n.zip; mkdir -p $(BUILD)/$$n; \
		CGO_ENABLED=0 GOOS=linux GOARCH=$$goarch $(GO) build $(LAMBDA_GOFLAGS) -o $(BUILD)/$$n/bootstrap ./functions/$$n; \
		TZ=UTC touch -t 198001020000 $(BUILD)/$$n/bootstrap; \
		(cd $(BUILD)/$$n && TZ=UTC zip -q -X -D $(BUILD)/$$n.zip bootstrap); \
		b=$$(stat -c %s $(BUILD)/$$n/bootstrap); z=$$(stat -c %s $(BUILD)/$$n.zip); \
		awk -v n=$$n -v b=$$b -v z=$$z 'BEGIN { printf "%-10s %9.1f MB %7.1f MB\n", n, b / 1048576, z / 1048576 }'; \
		[ $$z -lt $$(( $(ZIP_LIMIT_MB) * 1048576 )) ] || over="$$over $$n"; \
	done; \
	[ -z "$$over" ] || echo "warning: over $(ZIP_LIMIT_MB) MB:$$over" >&2

$(CDK) $(CDKLOCAL):
	@echo "installing aws-cdk $(CDK_VERSION) and aws-cdk-local $(CDK_LOCAL_VERSION) into $(TOOLS)/cdk"
	@mkdir -p $(TOOLS)/cdk
	@npm install --prefix $(TOOLS)/cdk --no-audit --no-fund --loglevel=error aws-cdk@$(CDK_VERSION) aws-cdk-local@$(CDK_LOCAL_VERSION) >/dev/null
	@touch $(CDK) $(CDKLOCAL)

$(RIE):
	@echo "installing aws-lambda-rie into $(TOOLS)/bin"
	@GOBIN=$(TOOLS)/bin $(GO) install github.com/aws/aws-lambda-runtime-interface-emulator/cmd/aws-lambda-rie@$(RIE_VERSION)

rie: $(RIE) ## install the Lambda runtime interface emulator (functions/reserve/rie_test.go runs the real binary under it)

synth: package $(CDK) $(NODE) ## cdk synth the stack into infra/cdk.out (no AWS credentials needed)
	cd infra && $(INFRA_ENV) $(if $(REGION),$(AWS_ENV)) $(CDK) synth --quiet -c arch=$(LAMBDA_ARCH) -c prefix=$(PREFIX) $(CDKFLAGS)
	@ls infra/cdk.out/*.template.json

cdk-bootstrap: $(CDK) $(NODE) ## once per AWS account and region: the CDK's bootstrap stack (asset bucket, roles)
	$(AWS_CHECK)
	cd infra && $(INFRA_ENV) $(AWS_ENV) $(CDK) bootstrap $(CDKFLAGS)

# Unattended: no approval prompt for the IAM and security-group changes (review them with
# `make synth` or `cdk diff` first when that matters).
deploy: package $(CDK) $(NODE) ## deploy the stack to REGION with the AWS credentials of the environment, no prompts (see docs/deploying.md)
	$(AWS_CHECK)
	cd infra && $(INFRA_ENV) $(AWS_ENV) $(CDK) deploy --require-approval never -c arch=$(LAMBDA_ARCH) -c prefix=$(PREFIX) \
		--outputs-file ../build/outputs.json $(CDKFLAGS)

# The functions read their secrets once, at a cold start: after a secret changed, warm ones keep
# the old value until Lambda retires them. A configuration change makes Lambda start new
# execution environments for the next invocations: each function gets SECRETS_RELOADED_AT.
reload-secrets: $(NODE) ## after a secret changed (the Stripe keys): every function of PREFIX in REGION starts fresh and reads it again
	$(AWS_CHECK)
	@stamp=$$(date -u +%Y%m%dT%H%M%SZ); for n in $(FUNCTIONS); do fn=$(PREFIX)-$$n; \
		vars=$$($(AWS_ENV) aws lambda get-function-configuration --function-name $$fn --query 'Environment.Variables' --output json); \
		env=$$(printf '%s' "$$vars" | $(NODE) -e 'let s = ""; process.stdin.on("data", (d) => (s += d)).on("end", () => { \
			const v = JSON.parse(s) || {}; v.SECRETS_RELOADED_AT = process.argv[1]; process.stdout.write(JSON.stringify({ Variables: v })); })' "$$stamp"); \
		$(AWS_ENV) aws lambda update-function-configuration --function-name $$fn --environment "$$env" --query FunctionName --output text >/dev/null; \
		$(AWS_ENV) aws lambda wait function-updated --function-name $$fn; echo "$$fn: new environments from now ($$stamp)"; \
	done

# The secrets are the stack's outputs StripeSecretArn (the API key, read by every function that
# calls Stripe) and StripeWebhookSecretArn (the signing secret, read by the webhook function
# only), in build/outputs.json (written by `make deploy`): `<prefix>/stripe` and
# `<prefix>/stripe-webhook`, or yours with -c stripeSecretArn=... -c stripeWebhookSecretArn=...
# The keys are read from the terminal (not the command line, not the shell's history).
stripe-keys: $(NODE) ## put the Stripe secret key and the webhook signing secret into the stack's two secrets, then reload-secrets
	$(AWS_CHECK)
	@out() { $(NODE) -p "Object.values(require('./build/outputs.json'))[0].$$1" 2>/dev/null; }; \
	arn=$$(out StripeSecretArn) && hook=$$(out StripeWebhookSecretArn) && [ -n "$$arn" ] && [ "$$arn" != undefined ] && [ -n "$$hook" ] && [ "$$hook" != undefined ] \
		|| { echo "no StripeSecretArn or StripeWebhookSecretArn in build/outputs.json: run make deploy first" >&2; exit 1; }; \
	read -rsp "Stripe secret key (sk_...): " sk; echo; read -rsp "webhook signing secret (whsec_...): " wh; echo; \
	printf '{"secret_key":"%s"}' "$$sk" | \
		$(AWS_ENV) aws secretsmanager put-secret-value --secret-id "$$arn" --secret-string file:///dev/stdin --query Name --output text && \
	printf '{"webhook_secret":"%s"}' "$$wh" | \
		$(AWS_ENV) aws secretsmanager put-secret-value --secret-id "$$hook" --secret-string file:///dev/stdin --query Name --output text
	@$(MAKE) -s reload-secrets

prewarm: package $(CDK) $(NODE) ## deploy with provisioned concurrency for reserve and checkout: FROM and UNTIL (RFC 3339, UTC), N each or N="reserve=40,checkout=15"
	@[ -n "$(FROM)" ] && [ -n "$(UNTIL)" ] && [ -n "$(N)" ] || { \
		echo 'usage: make prewarm FROM=2026-12-01T17:45:00Z UNTIL=2026-12-01T19:00:00Z N=20 (a later deploy without these drops the schedule)' >&2; exit 1; }
	$(AWS_CHECK)
	cd infra && $(INFRA_ENV) $(AWS_ENV) $(CDK) deploy --require-approval never -c arch=$(LAMBDA_ARCH) -c prefix=$(PREFIX) \
		-c prewarm="$(N)" -c prewarmFrom=$(FROM) -c prewarmUntil=$(UNTIL) --outputs-file ../build/outputs.json $(CDKFLAGS)

test-infra: $(NODE) ## the CDK stack's assertions (infra/, its own Go module)
	cd infra && $(INFRA_ENV) $(GO) vet ./...
	@cd infra && test -z "$$(gofmt -l .)" || { gofmt -l .; echo "gofmt needed in infra/" >&2; exit 1; }
	cd infra && $(INFRA_ENV) $(GO) test -count=1 -timeout 25m ./...

localstack-up: ## start LocalStack, Postgres, Redis and stripe-mock (localstack/compose.yaml; needs a Docker engine)
	docker compose -f localstack/compose.yaml up -d --wait

localstack-deploy: $(CDKLOCAL) $(NODE) ## deploy the LocalStack variant of the stack with cdklocal, then invoke reserve once
	$(MAKE) package LAMBDA_ARCH=$(HOST_LAMBDA_ARCH)
	$(INFRA_ENV) LOCALSTACK_URL=$(LOCALSTACK_URL) LASTUNIT_CDKLOCAL=$(CDKLOCAL) LAMBDA_ARCH=$(HOST_LAMBDA_ARCH) LASTUNIT_CDKFLAGS="$(CDKFLAGS)" \
		bash localstack/deploy.sh

localstack-down: ## stop the LocalStack compose project and drop its volumes
	docker compose -f localstack/compose.yaml down -v

localstack-check: $(CDK) $(NODE) ## without Docker: the compose file parses, the scripts lint, the LocalStack synth works
	$(MAKE) package LAMBDA_ARCH=$(HOST_LAMBDA_ARCH)
	$(INFRA_ENV) LASTUNIT_CDK=$(CDK) bash localstack/check.sh
