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
TEST_FLAGS ?= -race -count=1 -timeout 15m

.PHONY: help services stop-services local dev migrate test fuzz bench vet fmt

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | sort

services: ## make sure Postgres and Redis answer and the database exists (idempotent)
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
	@echo "services up: postgres $(PG_HOST):$(PG_PORT)/$(DB_NAME), redis 127.0.0.1:$(REDIS_PORT)"

stop-services: ## stop what `make services` started (nothing it found already running)
	@if [ -f $(RUN)/started-redis ]; then redis-cli -p $(REDIS_PORT) shutdown nosave >/dev/null 2>&1 || true; rm -f $(RUN)/started-redis; echo "stopped redis"; fi
	@if [ -f $(RUN)/started-postgres ]; then pg_ctlcluster --skip-systemctl-redirect $$(ls /etc/postgresql | sort -V | tail -1) main stop || true; rm -f $(RUN)/started-postgres; echo "stopped postgres"; fi
	@echo "services stopped"

local: ## build the local runner into bin/local
	$(GO) build -o bin/local ./cmd/local

dev: services local ## run the whole system on this machine (Ctrl-C stops it)
	./bin/local

migrate: services ## apply the database migrations to DATABASE_URL
	$(GO) run ./cmd/local migrate

vet: ## go vet and gofmt
	$(GO) vet ./...
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt needed" >&2; exit 1; }

test: services vet ## run every test against real Postgres and Redis
	$(GO) test $(TEST_FLAGS) ./...

FUZZTIME ?= 20s
fuzz: ## run each fuzz target for FUZZTIME
	@for pkg in $$($(GO) list ./...); do \
		for f in $$($(GO) test -list '^Fuzz' $$pkg | grep '^Fuzz' || true); do \
			echo "fuzz $$pkg $$f"; $(GO) test -run '^$$' -fuzz "^$$f$$" -fuzztime $(FUZZTIME) $$pkg; \
		done; \
	done
