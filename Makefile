# gamecell-operator: the two commands are `make demo` and `make test`.
# Tool versions are pinned in hack/versions.env; tools are cached under ~/.cache/gamecell-operator.
SHELL := /bin/bash
.DEFAULT_GOAL := help
CARGO ?= cargo
# Rust builds are cached outside the repo so fresh clones on this machine reuse them.
export CARGO_TARGET_DIR ?= $(HOME)/.cache/gamecell-operator/cargo-target
E2E_ENV_DIR := $(CURDIR)/target/e2e-env
DEMO_ENV_DIR := $(CURDIR)/target/localenv

.PHONY: help
help: ## List the targets
	@grep -E '^[a-zA-Z_-]+:.*?## ' $(MAKEFILE_LIST) | awk 'BEGIN {FS = ":.*?## "}; {printf "  %-14s %s\n", $$1, $$2}'

.PHONY: tools
tools: ## Build (or reuse) the local control plane, kwok and helm, and install moto
	@hack/build-tools.sh

.PHONY: crds
crds: ## Regenerate config/crd/ and the chart's CRD templates from src/crds/
	$(CARGO) run --quiet --bin crdgen

.PHONY: fmt-check
fmt-check: ## cargo fmt --check
	$(CARGO) fmt --all -- --check

.PHONY: clippy
clippy: ## clippy on every target, warnings denied
	$(CARGO) clippy --all-targets --locked -- -D warnings

.PHONY: unit
unit: ## Unit tests and the matchmaker service test on 127.0.0.1 (no cluster needed)
	$(CARGO) test --locked --lib --bins --test matchmaker

.PHONY: e2e
e2e: tools ## e2e suite against a fresh local cluster and AWS emulator (stopped afterwards)
	@hack/e2e.sh

.PHONY: chart-lint
chart-lint: tools ## Helm chart: lint, render every switch, bad values refused by values.schema.json
	@hack/chart-lint.sh

.PHONY: lua-test
lua-test: ## Argo CD health checks: fixture tests under Lua 5.1 (installs lua5.1 with apt-get if missing)
	@hack/lua-tests.sh

.PHONY: image
image: ## OCI image of the operator, no container engine: buildah (vfs) from scratch -> target/image/gamecell-operator.oci.tar
	@hack/image.sh

.PHONY: image-test
image-test: image ## Inspect the image archive; run its binary from the unpacked layer (chroot): libraries, non-root, DNS
	@hack/image-test.sh

.PHONY: test
test: fmt-check clippy unit chart-lint lua-test image-test e2e ## Everything CI runs: fmt, clippy, unit tests, chart, Lua, image, e2e

.PHONY: bench
bench: tools ## Benchmarks: the operator at scale (N=100 on moto, N=1000 on the fake cloud, idle window, floor) and the matchmaker; figures in target/bench/ and BENCHMARKS.md
	@hack/bench.sh

.PHONY: demo
demo: tools ## Start the local cluster, the AWS emulator and the operator; apply examples/cells/
	@hack/demo.sh up

.PHONY: demo-down
demo-down: ## Stop what `make demo` started
	@hack/demo.sh down
