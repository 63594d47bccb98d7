# sessiond — see README.md. `make help` lists the targets.
SHELL := /bin/bash
GO ?= go
TOOLS := $(CURDIR)/bin/tools
BUF_VERSION := v1.70.0
PROTOC_GEN_GO_VERSION := v1.36.12
PROTOC_GEN_CONNECT_GO_VERSION := v1.21.1
STATICCHECK_VERSION := v0.8.2
export PATH := $(TOOLS):$(PATH)

# Benchmarks: BENCHTIME=3s make bench
BENCHTIME ?= 1s
NODES ?= 3
# Black-box benchmark (make bench-cluster): see docs/benchmarks.md.
BENCH_DURATION ?= 10s
BENCH_ROUNDS ?= 2
BENCH_CLIENTS ?= 64
PRELOAD ?= 0
# MEMORY_LIMIT_MB=400 runs each sessiond node in a memory cgroup of that size (root).
MEMORY_LIMIT_MB ?= 0
PROFILE ?=
BENCH_ONLY ?=
# Fault test (make chaos): see docs/chaos.md.
CHAOS_DURATION ?= 10m
CHAOS_SEED ?= random
CHAOS_OUT ?= chaos-results
CHAOS_TIMEOUT ?= 2h

.DEFAULT_GOAL := help

.PHONY: help
help: ## Show this help.
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  \033[36m%-14s\033[0m %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build the daemon at bin/sessiond.
	$(GO) build -trimpath -o bin/sessiond ./cmd/sessiond

.PHONY: run
run: build ## Run a demo cluster of $(NODES) nodes on loopback (no database needed).
	./bin/sessiond dev --nodes $(NODES)

.PHONY: test
test: ## Run every test with the race detector, then test-js (needs Postgres on 127.0.0.1:5432, which .ci/run starts; node >= 20.3 and npm).
	$(GO) vet ./...
	$(GO) test -race -count=1 -timeout 12m ./...
	cd clients/go && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 5m ./...
	cd tools/benchbase && $(GO) vet ./... && $(GO) test -race -count=1 -timeout 5m ./...
	$(MAKE) test-js

.PHONY: test-js
test-js: build ## Build and test the JS/TS client (clients/js: npm ci, tsc, node --test against a dev cluster of bin/sessiond), then drive the OpenID Provider with openid-client (clients/oidc-interop).
	cd clients/js && npm ci --no-audit --no-fund && npm run build && SESSIOND_BIN=$(CURDIR)/bin/sessiond npm test
	cd clients/oidc-interop && npm ci --prefer-offline --no-audit --no-fund && SESSIOND_BIN=$(CURDIR)/bin/sessiond npm test

# Fuzzing (make fuzz): each target runs this long.
FUZZTIME ?= 10s

.PHONY: fuzz
fuzz: ## Run every fuzz target (go test -fuzz) for FUZZTIME each (default 10s); make test runs their seed corpora.
	@set -e; for dir in $$(grep -rl --include='*_test.go' '^func Fuzz' . | grep -v '^./tools/' | xargs -n1 dirname | sort -u); do \
		for target in $$(grep -h '^func Fuzz' $$dir/*_test.go | sed 's/^func \(Fuzz[A-Za-z0-9_]*\).*/\1/'); do \
			echo "== $$dir $$target ($(FUZZTIME))"; \
			(cd $$dir && $(GO) test -run '^$$' -fuzz "^$$target\$$" -fuzztime $(FUZZTIME) .); \
		done; \
	done

.PHONY: test-short
test-short: ## Run the fast tests only (no race detector, no multi-process end-to-end tests).
	$(GO) test -short -count=1 ./...
	cd clients/go && $(GO) test -short -count=1 ./...

.PHONY: bench
bench: ## Run the benchmarks (package micro-benchmarks and whole-cluster load).
	$(GO) test -run '^$$' -bench . -benchmem -benchtime $(BENCHTIME) -timeout 30m ./...

.PHONY: bench-cluster
bench-cluster: build ## Black-box: 3 sessiond agents vs etcd, bare Raft and Redis in one run (PROFILE=1, PRELOAD=N, MEMORY_LIMIT_MB=M; docs/benchmarks.md).
	cd tools/benchbase && $(GO) build -trimpath -o $(CURDIR)/bin/benchbase .
	./bin/benchbase cluster --sessiond bin/sessiond --out bench-results \
		--duration $(BENCH_DURATION) --rounds $(BENCH_ROUNDS) --clients $(BENCH_CLIENTS) \
		--preload $(PRELOAD) --memory-limit-mb $(MEMORY_LIMIT_MB) $(if $(PROFILE),--profile) $(if $(BENCH_ONLY),--only $(BENCH_ONLY))

.PHONY: chaos
chaos: ## Fault test on real processes (root): CHAOS_DURATION of kills, pauses, partitions, membership changes; CHAOS_SEED replays; report in CHAOS_OUT.
	CHAOS_DURATION=$(CHAOS_DURATION) CHAOS_SEED=$(CHAOS_SEED) CHAOS_OUT=$(abspath $(CHAOS_OUT)) \
		$(GO) test -count=1 -run '^TestChaos$$' -timeout $(CHAOS_TIMEOUT) -v ./cmd/sessiond/

.PHONY: tools
tools: $(TOOLS)/buf $(TOOLS)/protoc-gen-go $(TOOLS)/protoc-gen-connect-go ## Install the code generators into bin/tools.

$(TOOLS)/buf:
	GOBIN=$(TOOLS) $(GO) install github.com/bufbuild/buf/cmd/buf@$(BUF_VERSION)
$(TOOLS)/protoc-gen-go:
	GOBIN=$(TOOLS) $(GO) install google.golang.org/protobuf/cmd/protoc-gen-go@$(PROTOC_GEN_GO_VERSION)
$(TOOLS)/protoc-gen-connect-go:
	GOBIN=$(TOOLS) $(GO) install connectrpc.com/connect/cmd/protoc-gen-connect-go@$(PROTOC_GEN_CONNECT_GO_VERSION)
$(TOOLS)/staticcheck:
	GOBIN=$(TOOLS) $(GO) install honnef.co/go/tools/cmd/staticcheck@$(STATICCHECK_VERSION)

.PHONY: generate
generate: tools ## Regenerate Go code from proto/.
	buf lint
	buf generate
	buf generate --template buf.gen.store.yaml

.PHONY: checkgenerate
checkgenerate: generate ## Fail if the committed generated code is stale.
	@test -z "$$(git status --porcelain -- proto/ clients/go/gen/)" || { echo "generated code is stale: run 'make generate' and commit"; git status --porcelain -- proto/ clients/go/gen/; exit 1; }

.PHONY: lint
lint: tools $(TOOLS)/staticcheck ## gofmt, go vet, staticcheck, buf lint.
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); exit 1; }
	$(GO) vet ./...
	staticcheck ./...
	cd clients/go && $(GO) vet ./... && staticcheck ./...
	buf lint

.PHONY: clean
clean: ## Remove build output.
	rm -rf bin/sessiond
