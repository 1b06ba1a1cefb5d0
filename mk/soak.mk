# The reliability run (issue 11; bench/soak/, docs/reliability.md): 100,000 invokes of a no-op
# function under the RIE's managed-instances mode, with concurrent local-API readers and a stream of
# invalid telemetry posted to the extension's listener; the extension's RSS sampled; at the end,
# served = retained + dropped, the retained window complete and in order, and the shutdown line's
# counters equal to what was sent. A few minutes: not part of `make test` (tests/bench has a smoke
# run of a few hundred invokes). Every count is a flag: `$(PY) -m bench.soak --help`, e.g.
# `make soak SOAK_ARGS="--mode standard"` for INVOKE-made records without telemetry.
SOAK_ARGS ?=

.PHONY: soak

soak: venv rie build ## reliability run: 100,000 invokes, concurrent readers, invalid telemetry (SOAK_ARGS=--help)
	$(PY) -m bench.soak $(SOAK_ARGS)
