# Deploying lastunit (included by the Makefile): Lambda packages, the CDK stack (infra/),
# LocalStack (localstack/), the CDK assertions and the Lambda runtime interface emulator
# that the smoke test (functions/reserve/rie_test.go) runs the real binary under.

BUILD             := $(CURDIR)/build
FUNCTIONS          = $(notdir $(patsubst %/,%,$(wildcard functions/*/)))
LAMBDA_ARCH       ?= arm64
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

.PHONY: package synth deploy prewarm cdk-bootstrap test-infra rie localstack-up localstack-deploy localstack-down localstack-check

# `make test` also runs the stack's assertions, and needs the emulator for the smoke test.
test: $(RIE) test-infra

package: ## build every function for Lambda (provided.al2023, LAMBDA_ARCH=arm64) into build/<name>/bootstrap and build/<name>.zip
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
	cd infra && $(INFRA_ENV) $(CDK) synth --quiet -c arch=$(LAMBDA_ARCH) $(CDKFLAGS)
	@ls infra/cdk.out/*.template.json

cdk-bootstrap: $(CDK) $(NODE) ## once per AWS account and region: the CDK's bootstrap stack (asset bucket, roles)
	cd infra && $(INFRA_ENV) $(CDK) bootstrap $(CDKFLAGS)

deploy: package $(CDK) $(NODE) ## deploy the stack with the AWS credentials of the environment (see README: Deploying)
	cd infra && $(INFRA_ENV) $(CDK) deploy -c arch=$(LAMBDA_ARCH) --outputs-file ../build/outputs.json $(CDKFLAGS)

prewarm: package $(CDK) $(NODE) ## deploy with provisioned concurrency for reserve and checkout: FROM and UNTIL (RFC 3339, UTC), N each or N="reserve=40,checkout=15"
	@[ -n "$(FROM)" ] && [ -n "$(UNTIL)" ] && [ -n "$(N)" ] || { \
		echo 'usage: make prewarm FROM=2026-12-01T17:45:00Z UNTIL=2026-12-01T19:00:00Z N=20 (a later deploy without these drops the schedule)' >&2; exit 1; }
	cd infra && $(INFRA_ENV) $(CDK) deploy -c arch=$(LAMBDA_ARCH) -c prewarm="$(N)" -c prewarmFrom=$(FROM) -c prewarmUntil=$(UNTIL) \
		--outputs-file ../build/outputs.json $(CDKFLAGS)

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
