"""A smoke run of the benchmark harness (bench/run.py) with tiny counts: every scenario but the layer
zip sizes (which need `make layer`, not part of `make test`) runs end to end, and the results file
has the shape docs/performance.md relies on. Not a benchmark: the numbers of so few samples mean
nothing, so none is checked against a target; the targets table is, for its shape."""

from __future__ import annotations

import json

import pytest

from bench import run
from bench.harness import CONFIGS, FLOORS
from bench.scenarios.memory import HEAP_TEST_SOURCES
from bench.targets import TARGETS
from tools.local_lambda import EXTENSION, RIE, ROOT


# The heap scenario compiles the extension's memory test in release first (minutes on 2 busy cores).
@pytest.mark.timeout(420)
def test_quick_run_writes_every_scenario(tmp_path, capsys):
    # GIVEN the extension and the RIE that `make test` builds
    if not (EXTENSION.exists() and RIE.exists()):
        pytest.skip("run with `make test` (needs the extension build and the RIE)")
    # WHEN the harness runs every scenario with tiny counts and a store of 20 records
    results = run.main([
        "--out-dir", str(tmp_path), "--date", "smoke", "--no-chart",
        "--cold-starts", "1", "--warmup", "2", "--warm-invokes", "10",
        "--max-records", "20", "--memory-invokes", "40", "--memory-samples", "4",
        "--api-requests", "20", "--load-seconds", "0.3", "--load-connections", "2",
        "--proxy-invokes", "10", "--proxy-body-invokes", "2", "--proxy-body-bytes", "100000", "--telemetry-starts", "1",
        "--scenarios", "cold,warm,warm-work,memory,heap,proxy,telemetry", "--function-work-ms", "1",
    ])  # fmt: skip
    # THEN the JSON holds each scenario for each configuration, and the table names the targets
    saved = json.loads((tmp_path / "smoke.json").read_text())
    assert saved == json.loads(json.dumps(results))
    for config in CONFIGS:
        assert saved["coldStart"][config]["coldMs"]["n"] == 1
        assert saved["warmInvoke"][config]["n"] == 10
    for config in ("ours", *FLOORS):  # both floors print the ready line the harness parses
        assert saved["coldStart"][config]["extensionStartupMs"]["p50"] > 0
    assert saved["warmInvoke"]["ratios"]["p50 ours/baseline"] > 0
    assert saved["warmInvoke"]["ratios"]["p50 ours/floor-go"] > 0
    for config in CONFIGS:  # scenario 2b: a tenth of the counts, at least 50
        assert saved["warmInvokeWithWork"][config]["n"] == 50
    # the heap per record comes from the crate's memory test, once the crate has one
    if any((ROOT / source).exists() for source in HEAP_TEST_SOURCES):
        assert saved["heapBytesPerRecord"] > 0
    else:
        assert saved["heapBytesPerRecord"] is None and saved["heapPerRecord"]["reason"]
    memory = saved["memory"]
    assert memory["retainedAtEnd"] == 20 and memory["invokes"] == 40
    assert memory["atMaxRecords"]["rss"] > 0 and memory["floor"]["atEnd"]["rss"] > 0 and memory["floorGo"]["atEnd"]["rss"] > 0
    # the Rust floor is the least an extension costs: below the Go floor whatever the counts
    assert memory["floor"]["atEnd"]["rss"] < memory["floorGo"]["atEnd"]["rss"]
    api = saved["localApi"]
    assert api["last100"]["requests"] == 20 and api["last100"]["errors"] == 0 and api["last100"]["non2xx"] == 0
    assert api["fullStoreLoad"]["rps"] > 0
    # ... each sequential measurement with its noise floor, interleaved on the same connection: the
    # router's 404 and ?limit=1, as many requests each, and what the measured one takes over the floor
    for key, status in (("noiseFloor", 404), ("limit1", 200), ("noiseFloorWithFullStore", 404)):
        assert api[key]["statuses"] == [status] and api[key]["errors"] == 0, api[key]
    assert api["noiseFloor"]["requests"] == api["limit1"]["requests"] == 20
    assert api["noiseFloorWithFullStore"]["requests"] == api["fullStore"]["requests"]
    over = api["overNoiseFloor"]["last100"]
    assert over["p99Ms"] == round(api["last100"]["p99Ms"] - api["noiseFloor"]["p99Ms"], 4)
    # and scenario 6: the proxy on against off (the proxy saw every byte of the larger answers), and
    # start-up with telemetry on against off on both RIE modes
    proxy = saved["optionalModes"]["proxy"]
    assert proxy["latency"]["ours+proxy"]["n"] == 10 and proxy["latency"]["ratios"]["p50 proxy/ours"] > 0
    assert proxy["body"]["ours"]["n"] == 2 and proxy["body"]["responseBytesRecorded"] == 100000
    telemetry = saved["optionalModes"]["telemetry"]
    assert telemetry["standard"]["features.telemetry"] == {"on": "unsupported", "off": "off"}
    assert telemetry["managedInstances"]["features.telemetry"] == {"on": "on", "off": "off"}
    assert telemetry["managedInstances"]["on"]["p50"] > 0
    # and every target of issue 11 is listed beside the Go extension's published figure
    assert set(saved["targets"]) == set(TARGETS)
    assert saved["targets"]["VmRSS at 10,000 records"]["goPublished"] > 0
    out = capsys.readouterr().out
    assert "Runtime API proxy" in out and "telemetry:" in out and "targets" in out
    assert "last 100 p99 minus floor p99" in out
