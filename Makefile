# Tasker: `make run` serves the API, `make test` runs every test. Both start a private PostgreSQL
# in .pgdata/ unless DATABASE_URL (or TEST_DATABASE_URL for tests) names one.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
.DEFAULT_GOAL := help
GO ?= go

.PHONY: help
help: ## list the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: run
run: build ## migrate and serve on LISTEN_ADDR (default :8080), with a local PostgreSQL unless DATABASE_URL is set
	@url=$$(scripts/devdb.sh url); \
	DATABASE_URL="$$url" bin/tasker migrate; \
	DATABASE_URL="$$url" exec bin/tasker serve

.PHONY: test
test: ## run every test against real PostgreSQL (TEST_DATABASE_URL, DATABASE_URL, or a local one)
	@url=$$(DATABASE_URL="$${TEST_DATABASE_URL:-$${DATABASE_URL:-}}" scripts/devdb.sh url); \
	TEST_DATABASE_URL="$$url" $(GO) test -count=1 -race ./...

FUZZTIME ?= 60s
FUZZPARALLEL ?= 2

.PHONY: fuzz
fuzz: ## fuzz every operation for FUZZTIME (60s) with FUZZPARALLEL (2) workers; prints execs and corpus size
	@url=$$(DATABASE_URL="$${TEST_DATABASE_URL:-$${DATABASE_URL:-}}" scripts/devdb.sh url); \
	TEST_DATABASE_URL="$$url" FUZZTIME="$(FUZZTIME)" FUZZPARALLEL="$(FUZZPARALLEL)" GO="$(GO)" scripts/fuzz.sh

.PHONY: build
build: ## build the server into bin/tasker
	$(GO) build -o bin/tasker ./cmd/server

.PHONY: generate
generate: ## regenerate gen/api (oapi-codegen) and gen/db (sqlc) from openapi/ and queries/
	rm -rf gen/api gen/db
	mkdir -p gen/api
	$(GO) tool oapi-codegen -config oapi-codegen.yaml openapi/openapi.yaml
	$(GO) tool sqlc generate

# npm ci runs again only when node_modules is missing or older than the lock file. Install
# scripts are skipped: the checks need none, and one dependency's would only send telemetry.
node_modules/.package-lock.json: package.json package-lock.json
	npm ci --no-audit --no-fund --ignore-scripts
	@touch $@

.PHONY: lint-api
lint-api: node_modules/.package-lock.json ## lint openapi/openapi.yaml with Spectral and the rules in .spectral.yaml
	node_modules/.bin/spectral lint --fail-severity=warn --ruleset .spectral.yaml openapi/openapi.yaml

.PHONY: clients
clients: node_modules/.package-lock.json ## regenerate the TypeScript client's types (clients/typescript/schema.ts) and type-check it
	node_modules/.bin/openapi-typescript openapi/openapi.yaml --default-non-nullable false -o clients/typescript/schema.ts
	node_modules/.bin/tsc -p tsconfig.json --noEmit

.PHONY: example-ts
example-ts: node_modules/.package-lock.json ## compile the TypeScript client and example, and run the example against a fresh server
	node_modules/.bin/tsc -p tsconfig.json
	GO="$(GO)" scripts/with-server.sh node --experimental-websocket --no-warnings build/ts/examples/typescript/quickstart.js

.PHONY: examples-go
examples-go: ## run the Go example of docs/integrating.md against a fresh server
	$(GO) build -o bin/quickstart ./examples/go/quickstart
	GO="$(GO)" scripts/with-server.sh bin/quickstart

.PHONY: check-asyncapi
check-asyncapi: node_modules/.package-lock.json ## validate openapi/asyncapi.yaml (@asyncapi/parser, examples, REST schema copies)
	node scripts/validate-asyncapi.mjs --openapi openapi/openapi.yaml openapi/asyncapi.yaml

.PHONY: migrate
migrate: build ## apply migrations to DATABASE_URL (or the local PostgreSQL)
	@DATABASE_URL="$$(scripts/devdb.sh url)" bin/tasker migrate

.PHONY: lint
lint: ## go vet and staticcheck
	$(GO) vet ./...
	$(GO) tool staticcheck ./...

.PHONY: db-stop
db-stop: ## stop the local PostgreSQL started by run or test
	scripts/devdb.sh stop

.PHONY: db-url
db-url: ## print the connection URL of the local PostgreSQL (starting it if needed)
	@scripts/devdb.sh url
