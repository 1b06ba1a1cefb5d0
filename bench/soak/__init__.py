"""The reliability run of issue 11 (`make soak`, docs/reliability.md): many invokes of a no-op
function under AWS's Lambda emulator (RIE), with the extension's local API read concurrently and a
stream of invalid telemetry posted to its listener, the extension's memory sampled as it goes, and
at the end the proof that nothing was lost or counted twice.

- run.py        the CLI and the run: environment, invokes, memory samples, final checks, results
- readers.py    the local API readers and the invariants every answer must keep
- telemetry.py  the hostile telemetry, each kind with its known effect on the listener's counters
- checks.py     pure checks on the final listing and the logs (tested in tests/bench)

The default mode is the RIE's managed-instances mode: there the Telemetry API is real, so the
listener is live and the hostile stream reaches it, and records are made from platform.start
events, so the window check also proves that no invalid event made a record. `--mode standard`
runs the same invokes and readers where INVOKE events make the records and no subscription exists
(it checks the listener is closed).
"""
