# The benchmark harness (bench/run.py, scenarios in bench/scenarios/): the extension's cost against
# no extension and the floor extensions (bench/floor-rs in Rust, the floor; bench/floor in Go, a
# reference row), as ratios measured in one run under the RIE, with issue 11's targets, and the S3
# export on vs off against moto's S3 server on loopback (from requirements-dev.txt), with issue 12's. Quick by
# default; `make bench BENCH_ARGS=--full` for the published numbers (docs/performance.md). Every
# count is a flag: `$(PY) -m bench.run --help`. The harness builds the floors itself (cargo, musl
# targets for both architectures: `rustup target add x86_64-unknown-linux-musl aarch64-unknown-linux-musl`).
BENCH_ARGS ?=

.PHONY: bench bench-venv

bench: venv rie build layer bench-venv ## measure cost vs no extension and the floors (BENCH_ARGS=--full for the published run)
	$(PY) -m bench.run $(BENCH_ARGS)

bench-venv: $(VENV)/.bench-installed

$(VENV)/.bench-installed: bench/requirements.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r bench/requirements.txt
	touch $@
