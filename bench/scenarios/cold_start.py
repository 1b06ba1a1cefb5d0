"""Scenario 1, cold start: RIE start -> first invoke answered (extensions start lazily at that
invoke), the RIE's INIT REPORT, the extension's own start-up time (its ready line's startupMs:
start -> just before the first /event/next), and SIGTERM -> exit. Fresh environments, one per
configuration per round, in a rotating order."""

from __future__ import annotations

import time

from bench.harness import CONFIGS, FLOORS, BenchLambda, Counts, ratio, rotated, sampled, summary

KEYS = ("coldMs", "initReportMs", "extensionStartupMs", "stopMs")


def run(counts: Counts) -> dict:
    samples = {c: {k: [] for k in KEYS} for c in CONFIGS}
    for i in range(counts.cold_starts):
        for config in rotated(CONFIGS, i):
            local = BenchLambda(config)
            try:
                start = time.perf_counter()
                local.start()
                local.invoke_raw()
                cold = (time.perf_counter() - start) * 1000
                startup = local.startup_ms()
                before_stop = time.perf_counter()
                code = local.stop()
                stopped = (time.perf_counter() - before_stop) * 1000
                if code != 0:
                    raise RuntimeError(f"{config}: RIE exited {code}:\n{local.logs()[-3000:]}")
                s = samples[config]
                s["coldMs"].append(cold)
                s["stopMs"].append(stopped)
                if (init := local.init_report_ms()) is not None:
                    s["initReportMs"].append(init)
                if startup is not None:
                    s["extensionStartupMs"].append(startup)
            finally:
                local.cleanup()
    result = {c: {k: summary(v) for k, v in samples[c].items() if v} for c in CONFIGS}
    for c in CONFIGS:
        result[c]["samples"] = sampled(samples[c])

    def p50(config: str, key: str) -> float | None:
        return result[config].get(key, {}).get("p50")

    result["ratios"] = {"coldMs p50 ours/baseline": ratio(p50("ours", "coldMs"), p50("baseline", "coldMs"))}
    for floor in FLOORS:
        result["ratios"][f"coldMs p50 ours/{floor}"] = ratio(p50("ours", "coldMs"), p50(floor, "coldMs"))
        result["ratios"][f"extensionStartupMs p50 ours/{floor}"] = ratio(p50("ours", "extensionStartupMs"), p50(floor, "extensionStartupMs"))
    return result
