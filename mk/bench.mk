# The benchmark harness (issue 6): the extension's cost against no extension and a floor extension,
# as ratios measured in one run under the RIE. Quick by default; `make bench BENCH_ARGS=--full` for
# the published numbers (docs/performance.md). Every count is a flag: `$(PY) -m bench.run --help`.
BENCH_ARGS ?=

.PHONY: bench bench-venv

bench: venv rie build layer bench-venv ## measure cost vs no extension and a floor (BENCH_ARGS=--full for the published run)
	$(PY) -m bench.run $(BENCH_ARGS)

bench-venv: $(VENV)/.bench-installed

$(VENV)/.bench-installed: bench/requirements.txt $(VENV)/.installed
	$(PY) -m pip install --quiet -r bench/requirements.txt
	touch $@
