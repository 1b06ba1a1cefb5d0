"""Optional mode, the Runtime API proxy: our extension with the proxy on against the same without
it, side by side and interleaved. Both run the function through /opt/invocation-history-wrapper
(without the proxy's address file it only execs), so the proxy's loopback hop is the only
difference. 1: warm invokes of the no-op function; 2: answers of proxy_body_bytes (just under
Lambda's 6 MB) each."""

from __future__ import annotations

from bench.harness import BenchLambda, Counts, cleanup_all, interleaved, ratio, start_all, summary, wait_until

CONFIGS = ("ours", "ours+proxy")
PERCENTILES = ("p50", "p90", "p99")


def environments(**kw) -> dict[str, BenchLambda]:
    return start_all({c: BenchLambda("ours", proxy=c == "ours+proxy", **kw) for c in CONFIGS})


def newest_record(local: BenchLambda) -> dict:
    return local.get_json("/invocations?limit=1")["invocations"][-1]


def answered_last(local: BenchLambda) -> dict:
    """The newest record once it carries the runtime's answer: the proxy records the answer before
    passing Lambda's reply on, but the RIE may answer the invoker first."""
    wait_until(lambda: "outcome" in newest_record(local), 2.0)
    return newest_record(local)


def run(counts: Counts) -> dict:
    result: dict = {"available": True, "configs": {"ours": "proxy off, wrapper as the bootstrap", "ours+proxy": "INVOCATION_HISTORY_EXTENSION_RUNTIME_PROXY=on"}}
    envs = environments()
    try:
        latency = interleaved(envs, counts.proxy_invokes, counts.warmup)
        proxied = envs["ours+proxy"]
        features = proxied.get_json("/environment")["features"]
        last = answered_last(proxied)
        if features.get("runtimeProxy") is not True or "outcome" not in last:
            raise RuntimeError(f"the proxy is not in the runtime's path: features {features}, last record {last}\n{proxied.logs()[-3000:]}")
        if "outcome" in newest_record(envs["ours"]):
            raise RuntimeError("the run without the proxy recorded a proxy outcome")
    finally:
        cleanup_all(envs)
    lat = result["latency"] = {c: summary(latency[c]) for c in CONFIGS}
    lat["ratios"] = {f"{p} proxy/ours": ratio(lat["ours+proxy"][p], lat["ours"][p]) for p in PERCENTILES}
    lat["addedMs"] = {p: round(lat["ours+proxy"][p] - lat["ours"][p], 4) for p in PERCENTILES}

    size = counts.proxy_body_bytes
    envs = environments(response_bytes=size)
    try:
        body = interleaved(envs, counts.proxy_body_invokes, max(2, counts.proxy_body_invokes // 10))
        for config, local in envs.items():
            if local.last_payload_bytes != size:
                raise RuntimeError(f"{config}: answer of {local.last_payload_bytes} bytes, expected {size}")
        recorded = answered_last(envs["ours+proxy"]).get("responseBytes")
    finally:
        cleanup_all(envs)
    big = result["body"] = {"bytes": size, "responseBytesRecorded": recorded}
    for c in CONFIGS:
        big[c] = summary(body[c])
        big[c]["MBps p50"] = round(size / 1e6 / (big[c]["p50"] / 1000), 1)
    big["ratios"] = {f"{p} proxy/ours": ratio(big["ours+proxy"][p], big["ours"][p]) for p in PERCENTILES}
    big["addedMs"] = {p: round(big["ours+proxy"][p] - big["ours"][p], 3) for p in ("p50", "p99")}
    return result
