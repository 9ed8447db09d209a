# smartbackup: see README.md. `make help` lists the targets.
SHELL := bash
.SHELLFLAGS := -eu -o pipefail -c
GO ?= go
BIN := bin
STATICCHECK := honnef.co/go/tools/cmd/staticcheck@v0.8.2
TEST_TIMEOUT ?= 80m

.DEFAULT_GOAL := help

.PHONY: help
help: ## List the targets
	@awk 'BEGIN {FS = ":.*## "} /^[a-zA-Z_-]+:.*## / {printf "  %-12s %s\n", $$1, $$2}' $(MAKEFILE_LIST)

.PHONY: build
build: ## Build webhook, initrestore and cronbackup into bin/
	@mkdir -p $(BIN)
	$(GO) build -trimpath -o $(BIN)/ ./webhook ./initrestore ./cronbackup

.PHONY: tools
tools: ## Install the test servers (PostgreSQL 12/15, GCS and S3 emulators, etcd, kube-apiserver, kube-controller-manager), kube-scheduler, kubelet, kube-proxy, kubectl
	hack/test-deps.sh

.PHONY: images
images: ## Build the images from the Dockerfiles without a registry, as root, into .cache/images (hack/images.sh)
	hack/images.sh

.PHONY: demo
demo: tools ## The user's story on a real node, narrated: label a namespace, deploy dbaccess, delete the pod (about 1.5 minutes once tools and images are cached)
	@mkdir -p .cache
	@echo "demo: a real single-node cluster on this machine (etcd, kube-apiserver, kube-controller-manager, kube-scheduler, kubelet with containerd and runc, CNI bridge, kube-proxy), the chart installed with helm, the images built here by hack/images.sh; PostgreSQL 12 and a GCS emulator on the host"
	@SMARTBACKUP_DEMO=1 $(GO) test ./test/e2e -run TestUserStory -count=1 -v -timeout 20m 2>&1 | tee .cache/demo.log | sed -un 's/^DEMO //p' \
	  || { status=$$?; tail -40 .cache/demo.log; echo "demo failed; full log in .cache/demo.log"; exit $$status; }; \
	  echo; echo "demo: everything ran on this machine and is stopped and removed; full log in .cache/demo.log"

.PHONY: test
test: tools ## Run every test against real servers (installs them first); the story on the real node last, alone
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) $$($(GO) list ./... | grep -v '/test/e2e$$')
	$(GO) test -count=1 -timeout $(TEST_TIMEOUT) ./test/e2e

.PHONY: test-short
test-short: ## Run the tests that need no server
	$(GO) test -count=1 -short ./...

.PHONY: bench
bench: tools ## Measure backup, restore, init fast path and admission against their baselines (~35 min on 2 cores; see test/bench)
	$(GO) test -tags bench -run TestBenchmarks -count=1 -timeout 4h -v ./test/bench | grep -v '^=== \|^--- \|^\s*bench_test' 

FUZZ_EXECS ?= 20000
FUZZ_SHORT_EXECS ?= 1000

.PHONY: fuzz
fuzz: ## Fuzz each target for FUZZ_EXECS executions (a count, not a duration; see hack/fuzz.sh); fails on any failing input
	GO=$(GO) hack/fuzz.sh $(FUZZ_EXECS)

.PHONY: fuzz-short
fuzz-short: ## Fuzz each target for FUZZ_SHORT_EXECS executions (CI's pass, after make test)
	GO=$(GO) hack/fuzz.sh $(FUZZ_SHORT_EXECS)

.PHONY: lint
lint: ## gofmt, go vet, staticcheck (pinned), shellcheck, go mod tidy check
	@test -z "$$(gofmt -l $$(git ls-files '*.go'))" || { gofmt -l $$(git ls-files '*.go'); echo "gofmt: files above need formatting"; exit 1; }
	$(GO) vet -tags bench ./...
	$(GO) run $(STATICCHECK) -tags bench ./...
	shellcheck $$(git ls-files '*.sh' '.ci/run')
	$(GO) mod tidy -diff

.PHONY: clean
clean: ## Remove build output (keeps the cached test servers in .cache/)
	rm -rf $(BIN)
