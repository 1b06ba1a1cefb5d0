"""Scenario 2, warm invoke latency (2b: the same with a function that works function_work_ms):
every configuration side by side; each round invokes each once, in a rotating order."""

from __future__ import annotations

from bench.harness import CONFIGS, EXTENSIONS, FLOORS, BenchLambda, Counts, cleanup_all, interleaved, ratio, start_all, summary

PERCENTILES = ("p50", "p90", "p99")


def run(counts: Counts, work_ms: float = 0) -> dict:
    envs = start_all({c: BenchLambda(c, work_ms=work_ms) for c in CONFIGS})
    invokes, warmup = (counts.work_invokes, counts.work_warmup) if work_ms else (counts.warm_invokes, counts.warmup)
    try:
        samples = interleaved(envs, invokes, warmup)
        memory = {c: envs[c].memory() for c in EXTENSIONS}
    finally:
        cleanup_all(envs)
    result = {c: summary(samples[c]) for c in CONFIGS}
    result["ratios"] = {f"{p} ours/{other}": ratio(result["ours"][p], result[other][p]) for other in ("baseline", *FLOORS) for p in PERCENTILES}
    for floor in FLOORS:
        result["ratios"][f"p50 {floor}/baseline"] = ratio(result[floor]["p50"], result["baseline"]["p50"])
    result["extensionMemoryAfter"] = memory
    result["functionWorkMs"] = work_ms
    return result
