"""The targets of issue 11 (the extension in Rust), checked against a run's results, beside the
figures of the Go extension's last published run (read from its results file, by the same rules);
and those of issue 12 (the S3 export), which the Go extension never had."""

from __future__ import annotations

import json
from pathlib import Path

from bench.harness import ARCHES, BENCH, MIB

# The Go extension's last published full run (docs/performance.md); its floor was the Go floor.
PUBLISHED_GO = BENCH / "results/2026-11-23.json"
STORE_RECORDS = 10_000  # the store the memory and full-store targets are stated for
LONG_RUN_INVOKES = 100_000  # the run the RSS growth target is stated for
LAST100_P99 = "/invocations last 100 records p99"

# name -> (unit, limit). "Met" means value <= limit.
TARGETS = {
    "extension start -> first /event/next p50": ("ms", 1.0),
    "warm invoke p50 ratio vs floor": ("x", 1.02),
    "VmRSS at 10,000 records": ("MiB", 5.0),
    "VmRSS growth, 10,000 records to 100,000 invokes": ("%", 5.0),
    "heap per record": ("bytes", 200.0),
    # Issue 11 set 1 MiB for the extension alone (met: 0.65 / 0.62 MiB in the 2026-11-29 run); issue 12 lets
    # the S3 export, with its TLS, take the layer to 1.5 MiB per architecture.
    "layer zip x86_64": ("MiB", 1.5),
    "layer zip arm64": ("MiB", 1.5),
    "proxy added latency p50": ("ms", 0.3),
    LAST100_P99: ("ms", 0.25),
    "/invocations full store p99": ("ms", 5.0),
}


def values(results: dict) -> dict[str, float | None]:
    """Each target's measured value in a results file (None: not measured, or not at the size the
    target is stated for)."""
    cold, warm, mem, api, zips = (results.get(k) for k in ("coldStart", "warmInvoke", "memory", "localApi", "zipSize"))
    full_store = bool(mem) and mem["maxRecords"] == STORE_RECORDS
    out: dict[str, float | None] = {}
    if cold:
        out["extension start -> first /event/next p50"] = cold["ours"]["extensionStartupMs"]["p50"]
    if warm:
        out["warm invoke p50 ratio vs floor"] = warm["ratios"]["p50 ours/floor"]
    if mem:
        out["VmRSS at 10,000 records"] = mem["atMaxRecords"]["rss"] / MIB if full_store else None
        long_run = full_store and mem["invokes"] >= LONG_RUN_INVOKES
        out["VmRSS growth, 10,000 records to 100,000 invokes"] = mem["rssGrowthAfterFullPercent"] if long_run else None
    out["heap per record"] = results.get("heapBytesPerRecord")
    if zips:
        for arch in ARCHES:
            size = zips[arch]["ours"]
            out[f"layer zip {arch}"] = None if size is None else size / MIB
    if latency := results.get("optionalModes", {}).get("proxy", {}).get("latency"):
        out["proxy added latency p50"] = latency["addedMs"]["p50"]
    if api:
        out[LAST100_P99] = api["last100"]["p99Ms"]
        out["/invocations full store p99"] = api["fullStore"]["p99Ms"] if full_store else None
    return out


def published_go(path: Path = PUBLISHED_GO) -> dict:
    """The Go extension's published figures for the same targets, and where they come from."""
    if not path.exists():
        return {"file": str(path), "values": {}}
    published = json.loads(path.read_text())
    return {"file": path.name, "commit": published.get("machine", {}).get("commit"), "values": values(published)}


def check(results: dict, go: dict | None = None) -> dict:
    measured = values(results)
    go_values = (go or {}).get("values", {})
    out = {}
    for name, (unit, limit) in TARGETS.items():
        value = measured.get(name)
        went = go_values.get(name)
        out[name] = {
            "value": None if value is None else round(value, 4),
            "unit": unit,
            "limit": limit,
            "met": None if value is None else value <= limit,
            "goPublished": None if went is None else round(went, 4),
        }
    return out


# Issue 12, the S3 export (bench/scenarios/export.py). The ratio is the worse of the RIE's two modes.
EXPORT_TARGETS = {
    "export: warm invoke p50 ratio on/off": ("x", 1.02),
    "export: SHUTDOWN -> exit with a final batch p50": ("ms", 300.0),
}


def export_values(results: dict) -> dict[str, float | None]:
    export = results.get("export")
    if not export:
        return {}
    return {
        "export: warm invoke p50 ratio on/off": max(r["ratios"]["p50 on/off"] for r in export["latency"].values()),
        "export: SHUTDOWN -> exit with a final batch p50": export["shutdown"]["on"]["p50"],
    }


def check_export(results: dict) -> dict:
    measured = export_values(results)
    out = {}
    for name, (unit, limit) in EXPORT_TARGETS.items():
        value = measured.get(name)
        out[name] = {"value": None if value is None else round(value, 4), "unit": unit, "limit": limit, "met": None if value is None else value <= limit}
    return out
