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
FUZZTIME ?= 5s

.PHONY: help demo test lint test-go test-fuzz test-py layer build rust-targets venv rie clean simulator-driver

help: ## list the targets
	@grep -hE '^[a-z-]+:.*## ' $(MAKEFILE_LIST) | sed -E 's/:.*## /\t/' | expand -t 14

demo: venv rie build ## run both sample functions under AWS's Lambda emulator and print what they saw
	$(PY) -m tools.demo

test: lint test-go test-fuzz test-py ## everything: Go tests (-race), a short fuzz run, Python tests (local Lambda, CDK)

lint: venv ## ruff over the Python code (Go is vetted in test-go)
	$(PY) -m ruff check app.py stacks tools tests bench

test-go: ## Go unit tests with the race detector, vet and gofmt
	@unformatted="$$(gofmt -l extension_src functions/go bench)"; if [ -n "$$unformatted" ]; then echo "gofmt needed: $$unformatted"; exit 1; fi
	cd extension_src && go vet ./... && go test -race -count=1 ./...
	cd functions/go && go vet ./... && go test -race -count=1 ./...

test-fuzz: ## run the fuzz targets for $(FUZZTIME) each
	cd extension_src && go test -run='^$$' -fuzz=FuzzParseListParams -fuzztime=$(FUZZTIME) ./internal/localapi
	cd extension_src && go test -run='^$$' -fuzz=FuzzRequestIDPath -fuzztime=$(FUZZTIME) ./internal/localapi
	cd extension_src && go test -run='^$$' -fuzz=FuzzAppendRecordMatchesEncodingJSON -fuzztime=$(FUZZTIME) ./internal/localapi
	cd extension_src && go test -run='^$$' -fuzz=FuzzListenerBody -fuzztime=$(FUZZTIME) ./internal/telemetryapi
	cd extension_src && go test -run='^$$' -fuzz=FuzzHeaderPassThrough -fuzztime=$(FUZZTIME) ./internal/runtimeproxy
	cd extension_src && go test -run='^$$' -fuzz=FuzzNextHeaders -fuzztime=$(FUZZTIME) ./internal/runtimeproxy

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
