"""Optional mode, telemetry: extension start -> first /event/next (the ready line's startupMs) with
the telemetry subscription (the default) against INVOCATION_HISTORY_EXTENSION_TELEMETRY=off, fresh
starts alternating, on the RIE's standard mode (the subscription is answered Telemetry.NotSupported)
and its managed-instances mode (a real Telemetry API; the extension registers for SHUTDOWN only)."""

from __future__ import annotations

from bench.harness import BenchLambda, Counts, ratio, rotated, sampled, summary

SETTINGS = ("on", "off")
EXPECTED_FEATURE = {"standard": "unsupported", "managedInstances": "on"}  # features.telemetry when on


def run(counts: Counts) -> dict:
    result: dict = {"available": True}
    for mode in EXPECTED_FEATURE:
        samples: dict[str, list[float]] = {s: [] for s in SETTINGS}
        feature: dict[str, str] = {}
        for i in range(counts.telemetry_starts):
            for setting in rotated(SETTINGS, i):
                local = BenchLambda("ours", env={"INVOCATION_HISTORY_EXTENSION_TELEMETRY": setting}, managed=mode == "managedInstances")
                try:
                    local.start()
                    local.invoke_raw()
                    samples[setting].append(local.startup_ms())
                    if setting not in feature:
                        feature[setting] = local.get_json("/environment")["features"]["telemetry"]
                    if (code := local.stop()) != 0:
                        raise RuntimeError(f"telemetry {setting} ({mode}): RIE exited {code}:\n{local.logs()[-3000:]}")
                finally:
                    local.cleanup()
        r = {s: summary(samples[s]) for s in SETTINGS}
        r["features.telemetry"] = feature
        r["samples"] = sampled(samples)
        r["ratios"] = {f"{p} on/off": ratio(r["on"][p], r["off"][p]) for p in ("p50", "p90")}
        r["addedMs"] = {p: round(r["on"][p] - r["off"][p], 3) for p in ("p50", "p90")}
        result[mode] = r
    for mode, want in EXPECTED_FEATURE.items():
        if result[mode]["features.telemetry"] != {"on": want, "off": "off"}:
            raise RuntimeError(f"{mode}: features.telemetry {result[mode]['features.telemetry']}, expected on: {want!r}, off: 'off'")
    return result
