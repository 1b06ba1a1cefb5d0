# Invocation History for AWS Lambda. `make demo` and `make test` work on a fresh machine: every
# target installs what it needs into the project (.venv, .local/bin, build/, dist/).
SHELL := /bin/bash
.DEFAULT_GOAL := help

PYTHON_BOOTSTRAP ?= python3
VENV := .venv
PY := $(VENV)/bin/python
RIE := .local/bin/aws-lambda-rie
ARCHES := x86_64 arm64
HOST_ARCH := $(shell uname -m | sed -e 's/aarch64/arm64/' -e 's/amd64/x86_64/')
# What the extension's build reads (build-layer.sh: static musl binaries, one per architecture, reproducible).
RUST_SOURCES := $(shell find extension_src/src -name '*.rs') $(wildcard extension_src/build.rs) \
	extension_src/Cargo.toml extension_src/Cargo.lock extension_src/build-layer.sh
LAYERZIP_SOURCES := $(shell find extension_src/tools/layerzip/src -name '*.rs') \
	extension_src/tools/layerzip/Cargo.toml extension_src/tools/layerzip/Cargo.lock
# cargo's work is kept between builds (incremental and shared by both architectures); it never changes the bytes.
EXTENSION_TARGET_DIR := $(CURDIR)/extension_src/target
# Seconds each fuzz target runs in `make test` (cargo-fuzz, nightly toolchain).
FUZZTIME ?= 5
FUZZ_TARGETS := local_api_query local_api_path telemetry_batch extensions_event proxy_headers
CARGO_FUZZ := .local/bin/cargo-fuzz

.PHONY: help demo test lint test-rust test-go test-fuzz test-py layer build rust-targets venv rie clean simulator-driver

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

demo: venv rie build ## run both sample functions under AWS's Lambda emulator and print what they saw
	$(PY) -m tools.demo

test: lint test-rust test-go test-fuzz test-py ## everything: Rust tests, clippy and rustfmt, Go tests (-race), a short fuzz run, Python tests (local Lambda, CDK)

lint: venv ## ruff over the Python code (Rust is linted in test-rust, Go in test-go)
	$(PY) -m ruff check app.py stacks tools tests bench

test-rust: ## the extension's tests, clippy (warnings are errors) and rustfmt; the same for the layer zip tool and the Rust floor
	cd extension_src && cargo fmt --check && cargo clippy --locked --all-targets -- -D warnings && cargo test --locked
	cd extension_src/tools/layerzip && cargo fmt --check && cargo clippy --locked --all-targets -- -D warnings && cargo test --locked
	cd bench/floor-rs && cargo fmt --check && cargo clippy --locked --all-targets -- -D warnings && cargo test --locked

test-go: ## the Go sample and the Go bench tools: vet, tests with the race detector, gofmt
	@unformatted="$$(gofmt -l functions/go bench)"; if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	cd functions/go && go vet ./... && go test -race -count=1 ./...

test-fuzz: $(CARGO_FUZZ) ## run each fuzz target for $(FUZZTIME) s (cargo-fuzz on the nightly toolchain)
	@rustup run nightly rustc --version >/dev/null 2>&1 || { echo "test-fuzz needs the nightly toolchain: rustup toolchain install nightly"; exit 1; }
	cd extension_src/fuzz && for target in $(FUZZ_TARGETS); do \
		PATH="$(CURDIR)/.local/bin:$$PATH" cargo +nightly fuzz run -O $$target -- -max_total_time=$(FUZZTIME) -print_final_stats=0 2>&1 \
			| grep -E '^(Done|==|SUMMARY|thread|ERROR)|panicked' ; test $${PIPESTATUS[0]} -eq 0 || exit 1; done

$(CARGO_FUZZ): ## cargo-fuzz into .local/bin (crates.io)
	cargo install --quiet --locked --root .local cargo-fuzz@0.13.2

test-py: venv rie build simulator-driver ## pytest: local end-to-end on the RIE and lambda-simulator, and the CDK tests
	$(PY) -m pytest

build: build/extension/invocation-history-extension build/functions/go/bootstrap ## build the extension and the Go sample for this machine

# The same binary as in this machine's layer zip (build-layer.sh --binary: same flags, same bytes).
build/extension/invocation-history-extension: $(RUST_SOURCES) | rust-targets
	CARGO_TARGET_DIR=$(EXTENSION_TARGET_DIR) sh extension_src/build-layer.sh --binary $(HOST_ARCH) $@

rust-targets: ## add the musl targets the extension is built for to the Rust toolchain, when missing (rustup)
	sh extension_src/build-layer.sh --add-targets $(ARCHES)

build/functions/go/bootstrap: functions/go/main.go functions/go/go.mod
	cd functions/go && CGO_ENABLED=0 go build -trimpath -ldflags="-s -w -buildid=" -o ../../$@ .

simulator-driver: ## the lambda-simulator test driver (Rust; skipped when cargo is absent)
	@if command -v cargo >/dev/null; then cd tests/simulator && cargo build --quiet --release --locked; \
	else echo "cargo not found: the lambda-simulator tests will be skipped"; fi

layer: $(foreach a,$(ARCHES),dist/invocation-history-extension-$(a).zip) ## the layer zips, one per architecture (reproducible)

dist/invocation-history-extension-%.zip: $(RUST_SOURCES) $(LAYERZIP_SOURCES) extension_src/wrapper/invocation-history-wrapper | rust-targets
	CARGO_TARGET_DIR=$(EXTENSION_TARGET_DIR) sh extension_src/build-layer.sh $* $@

venv: $(VENV)/.installed ## Python virtual environment with the app and test requirements

$(VENV)/.installed: requirements.txt requirements-dev.txt
	test -x $(PY) || $(PYTHON_BOOTSTRAP) -m venv $(VENV)
	$(PY) -m pip install --quiet --upgrade pip
	$(PY) -m pip install --quiet -r requirements-dev.txt
	touch $@

rie: $(RIE) ## AWS Lambda Runtime Interface Emulator in .local/bin

$(RIE): tools/install-rie.sh | venv
	PYTHON=$(PY) sh tools/install-rie.sh .local/bin

clean: ## remove build outputs (keeps .venv and .local)
	rm -rf build dist cdk.out

-include mk/*.mk
