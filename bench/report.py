"""A run's results as a table (stdout) and a chart (<date>.png)."""

from __future__ import annotations

from pathlib import Path

from bench.harness import ARCHES, CONFIGS, FLOORS, MIB, ratio, say
from bench.scenarios.proxy import CONFIGS as PROXY_CONFIGS
from bench import targets
from bench.targets import TARGETS

COLORS = {"baseline": "#9e9e9e", "floor": "#4c72b0", "floor-go": "#9bb4d9", "ours": "#dd8452"}
FLOOR_KEY = {"floor": "floor", "floor-go": "floorGo"}  # configuration -> its key in results["memory"]


def fmt(x, digits: int = 3) -> str:
    return "-" if x is None else f"{x:.{digits}f}"


def configs_row(label: str, v: dict[str, float | None], digits: int = 3) -> str:
    """One row of the four configurations, then ours against the baseline and each floor."""
    cells = "".join(f"{fmt(v.get(c), digits):>9}" for c in CONFIGS)
    ratios = "".join(f"{fmt(ratio(v.get('ours'), v.get(other))):>14}" for other in ("baseline", *FLOORS))
    return f"  {label:35}{cells}{ratios}"


def configs_header(title: str) -> str:
    return f"{title:37}" + "".join(f"{c:>9}" for c in CONFIGS) + "".join(f"{'ours/' + o:>14}" for o in ("base", *FLOORS))


def table(results: dict) -> str:
    lines = []
    add = lines.append
    ours_language = results.get("extension", {}).get("language", "?")
    add(f"ours: invocation-history-extension ({ours_language}); floor: bench/floor-rs (Rust); floor-go: bench/floor (Go)")
    if cold := results.get("coldStart"):
        add(configs_header("cold start (ms), p50"))
        for key, label in (("coldMs", "RIE start -> first invoke"), ("initReportMs", "RIE INIT REPORT"),
                           ("extensionStartupMs", "extension start -> /event/next"), ("stopMs", "SIGTERM -> RIE exit")):  # fmt: skip
            add(configs_row(label, {c: cold[c].get(key, {}).get("p50") for c in CONFIGS}))
    for key, title, percentiles in (("warmInvoke", "warm invoke (ms, n={n})", ("p50", "p90", "p99")),
                                    ("warmInvokeWithWork", "function works {w:g} ms (ms, n={n})", ("p50", "p99"))):  # fmt: skip
        if warm := results.get(key):
            add(configs_header(title.format(n=warm["ours"]["n"], w=warm["functionWorkMs"])))
            for p in percentiles:
                add(configs_row(p, {c: warm[c][p] for c in CONFIGS}))
    if mem := results.get("memory"):
        floors = {f: mem[FLOOR_KEY[f]] for f in FLOORS}
        add(f"{'extension memory (MiB)':37}" + "".join(f"{c:>9}" for c in (*FLOORS, "ours")) + "".join(f"{'ours/' + f:>14}" for f in FLOORS))
        rows = [("VmRSS idle (after 1st invoke)", "idle", "rss"), (f"VmRSS at {mem['maxRecords']:,} records", "atMaxRecords", "rss"),
                (f"VmRSS after {mem['invokes']:,} invokes", "atEnd", "rss"), ("RssAnon at the end", "atEnd", "anon"),
                ("RssFile at the end", "atEnd", "file"), ("VmHWM at the end", "atEnd", "hwm")]  # fmt: skip
        for label, point, field in rows:
            v = {f: floors[f][point][field] for f in FLOORS} | {"ours": mem[point][field]}
            cells = "".join(f"{fmt(v[c] / MIB, 2):>9}" for c in (*FLOORS, "ours"))
            add(f"  {label:35}{cells}" + "".join(f"{fmt(ratio(v['ours'], v[f]), 2):>14}" for f in FLOORS))
        pad = " " * 18
        add(f"  {'VmRSS after the local API load':35}{pad}{fmt(mem['afterApiLoad']['rss'] / MIB, 2):>9}")
        add(f"  {'RSS growth after the store is full':35}{pad}{fmt(mem['rssGrowthAfterFullPercent'], 2):>8}%")
        add(f"  {'RSS bytes/record (at full - idle)':35}{pad}{fmt(mem['bytesPerRecordRss'], 0):>9}")
        if results.get("heapBytesPerRecord") is not None:
            add(f"  {'heap bytes/record (crate measurement)':35}{pad}{fmt(results['heapBytesPerRecord'], 0):>9}")
    if api := results.get("localApi"):
        add("local API (ms)                          p50       p90       p99     req/s")
        rows = [("last100", "/invocations?limit=100, 1 conn"), ("fullStore", "/invocations (full store), 1 conn"),
                ("last100Load", f"limit=100, {api['last100Load']['connections']} conns"),
                ("fullStoreLoad", f"full store, {api['fullStoreLoad']['connections']} conns")]  # fmt: skip
        if "noiseFloor" in api:  # runs before the noise floor was measured have none
            rows[1:1] = [("noiseFloor", "  noise floor (404), interleaved"), ("limit1", "  ?limit=1, interleaved")]
            rows[4:4] = [("noiseFloorWithFullStore", "  noise floor (404), interleaved")]
        for key, label in rows:
            r = api[key]
            add(f"  {label:35} {fmt(r['p50Ms']):>6} {fmt(r['p90Ms']):>9} {fmt(r['p99Ms']):>9} {r['rps']:>9.0f}")
        for key, label in (("last100", "last 100 minus noise floor"), ("fullStore", "full store minus noise floor")):
            if over := api.get("overNoiseFloor", {}).get(key):
                add(f"  {label:35} {fmt(over['p50Ms']):>6} {fmt(over['p90Ms']):>9} {fmt(over['p99Ms']):>9}")
    if zips := results.get("zipSize"):
        add(f"{'layer zip (bytes)':37}" + "".join(f"{c:>9}" for c in (*FLOORS, "ours")) + "".join(f"{'ours/' + f:>14}" for f in FLOORS))
        for arch in ARCHES:
            z = zips[arch]
            add(f"  {arch:35}" + "".join(f"{z[c] or 0:>9}" for c in (*FLOORS, "ours")) + "".join(f"{fmt(z['ratio ours/' + f], 2):>14}" for f in FLOORS))
    modes = results.get("optionalModes", {})
    if (proxy := modes.get("proxy", {})).get("latency"):
        lat, body = proxy["latency"], proxy["body"]
        add("Runtime API proxy (ms)                    ours  ours+proxy  proxy/ours    added ms")
        for p in ("p50", "p90", "p99"):
            a, b = lat["ours"][p], lat["ours+proxy"][p]
            add(f"  {'warm invoke ' + p + ', n=' + str(lat['ours']['n']):35} {fmt(a):>8} {fmt(b):>11} {fmt(ratio(b, a)):>11} {fmt(b - a):>11}")
        for p in ("p50", "p99"):
            a, b = body["ours"][p], body["ours+proxy"][p]
            label = f"{body['bytes'] / MIB:.2f} MiB answer {p}, n={body['ours']['n']}"
            add(f"  {label:35} {fmt(a, 2):>8} {fmt(b, 2):>11} {fmt(ratio(b, a)):>11} {fmt(b - a, 2):>11}")
        add(f"  {'6 MB answer MB/s at p50':35} {body['ours']['MBps p50']:>8.1f} {body['ours+proxy']['MBps p50']:>11.1f}")
    if (tel := modes.get("telemetry", {})).get("standard"):
        add("telemetry: extension start -> /event/next (ms)   off        on     on/off    added ms")
        for mode, label in (("standard", "RIE standard (NotSupported)"), ("managedInstances", "RIE managed instances (real API)")):
            r = tel[mode]
            for p in ("p50", "p90"):
                add(f"  {label + ' ' + p + ', n=' + str(r['on']['n']):45} {fmt(r['off'][p]):>8} {fmt(r['on'][p]):>9} {fmt(ratio(r['on'][p], r['off'][p])):>9} {fmt(r['on'][p] - r['off'][p]):>11}")
    if export := results.get("export"):
        export_table(export, add)
    for key, mode in modes.items():
        if mode.get("available") is False:
            add(f"{key} mode: not available ({mode['reason']})")
    if (heap := results.get("heapPerRecord")) and heap.get("bytes") is None:
        add(f"heap per record: not measured ({heap['reason']})")
    if tg := results.get("targets"):
        go = results.get("goPublished", {})
        add(f"{'targets (issue 11)':50} {'value':>9}  {'limit':<16} {'':12} Go, published {go.get('file', '-')} (its floor: Go)")
        for name, t in tg.items():
            met = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
            add(f"  {name:48} {fmt(t['value'], 3):>9}  {t['unit']:<5} <= {t['limit']:<6g} {met:12} {fmt(t['goPublished'], 3):>9}")
            if name == targets.LAST100_P99 and (over := (api or {}).get("overNoiseFloor", {}).get("last100")):
                floor = api["noiseFloor"]["p99Ms"]
                add(f"    beside it, same run: noise floor p99 {fmt(floor)} ms; last 100 p99 minus floor p99 {fmt(over['p99Ms'])} ms (no target)")
    if tg := results.get("exportTargets"):
        if any(t["value"] is not None for t in tg.values()):
            add(f"{'targets (issue 12)':50} {'value':>9}  {'limit':<16}")
            for name, t in tg.items():
                met = {True: "met", False: "MISSED", None: "not measured"}[t["met"]]
                add(f"  {name:48} {fmt(t['value'], 3):>9}  {t['unit']:<5} <= {t['limit']:<6g} {met}")
    return "\n".join(lines)


def export_table(export: dict, add) -> None:
    """Scenario 7: the S3 export on against off."""
    add(f"S3 export, a batch every {export['maxInvocations']} invocations (ms)   off        on     on/off    added ms")
    for mode, label in (("standard", "RIE standard"), ("managedInstances", "RIE managed instances")):
        r = export["latency"][mode]
        for p in ("p50", "p99"):
            add(f"  {'warm invoke, ' + label + ' ' + p + ', n=' + str(r['on']['n']):45} {fmt(r['off'][p]):>8} {fmt(r['on'][p]):>9} {fmt(ratio(r['on'][p], r['off'][p])):>9} {fmt(r['on'][p] - r['off'][p]):>11}")
    for mode, label in (("standard", "RIE standard"), ("managedInstances", "RIE managed instances")):
        m = export["latency"][mode].get("memoryMiB", {})
        if "on" in m and "off" in m:
            add(f"  {'VmRSS after the run, ' + label + ' (MiB)':45} {fmt(m['off']['rss']):>8} {fmt(m['on']['rss']):>9} {fmt(ratio(m['on']['rss'], m['off']['rss'])):>9} {fmt(m['on']['rss'] - m['off']['rss']):>11}")
    post = export["postInvoke"]
    for k in ("mean", "p99"):
        add(f"  {'post-invoke (REPORT - RTDONE) ' + k + ', n=' + str(post['on']['n']):45} {fmt(post['off'][k]):>8} {fmt(post['on'][k]):>9} {fmt(ratio(post['on'][k], post['off'][k])):>9} {fmt(post['on'][k] - post['off'][k]):>11}")
    add(f"    uploads in the post-invoke window: {post['windowUploads']} (RIE standard mode, the proxy in the runtime's path says when the function answered)")
    sd = export["shutdown"]
    for p in ("p50", "p90"):
        add(f"  {'SIGTERM -> exit, final batch ' + p + ', n=' + str(sd['on']['n']):45} {fmt(sd['off'][p], 1):>8} {fmt(sd['on'][p], 1):>9} {fmt(ratio(sd['on'][p], sd['off'][p])):>9} {fmt(sd['on'][p] - sd['off'][p], 1):>11}")
    w = export["written"]
    per = w[next(k for k in w if k.startswith("per"))]
    add(f"  written per {per['invocations']:,} invocations ({w['mode']}): {fmt(per['objects'], 1)} objects, "
        f"{per['compressedBytes']:,} bytes gzip ({per['ndjsonBytes']:,} NDJSON), gzip ratio {fmt(per['gzipRatio'], 2)}; "
        f"{w['distinctInvocations']:,} of {w['invocationLines']:,} invocation lines distinct")  # fmt: skip


def chart(results: dict, path: Path) -> bool:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        say("  chart: matplotlib is not installed (make bench installs it); skipped")
        return False
    modes = results.get("optionalModes", {})
    nrows = 3 if any(m.get("available") for m in modes.values()) else 2
    fig, axes = plt.subplots(nrows, 3, figsize=(17, 4.5 * nrows))
    language = results.get("extension", {}).get("language", "")
    fig.suptitle(f"invocation-history-extension ({language}) vs baseline and the Rust and Go floors — {results['date']} ({'full' if results['full'] else 'quick'} run)")
    if cold := results.get("coldStart"):
        ax = axes[0][0]
        data = [cold[c]["samples"]["coldMs"] for c in CONFIGS]
        box = ax.boxplot(data, patch_artist=True, showfliers=True)
        ax.set_xticks(range(1, len(CONFIGS) + 1), CONFIGS)
        for patch, c in zip(box["boxes"], CONFIGS):
            patch.set_facecolor(COLORS[c])
        ax.set_title(f"cold start: RIE start → first invoke (n={len(data[0])})")
        ax.set_ylabel("ms")
    if warm := results.get("warmInvoke"):
        ax = axes[0][1]
        width = 0.8 / len(CONFIGS)
        for i, c in enumerate(CONFIGS):
            vals = [warm[c][p] for p in ("p50", "p90", "p99")]
            bars = ax.bar([x + (i - (len(CONFIGS) - 1) / 2) * width for x in range(3)], vals, width, label=c, color=COLORS[c])
            ax.bar_label(bars, fmt="%.2f", fontsize=6)
        ax.set_xticks(range(3), ["p50", "p90", "p99"])
        ax.set_title(f"warm invoke latency (n={warm['ours']['n']} each, interleaved)")
        ax.set_ylabel("ms")
        ax.legend(fontsize=8)
    if mem := results.get("memory"):
        ax = axes[1][0]
        xs = [s["invokes"] for s in mem["series"]]
        for config in (*FLOORS, "ours"):
            ax.plot(xs, [s[config]["rss"] / MIB for s in mem["series"]], marker=".", color=COLORS[config], label=f"{config} VmRSS")
            ax.plot(xs, [s[config]["hwm"] / MIB for s in mem["series"]], linestyle="--", color=COLORS[config], alpha=0.5, label=f"{config} VmHWM")
        ax.axvline(mem["maxRecords"], color="black", linestyle=":", label=f"store full ({mem['maxRecords']:,})")
        limit = TARGETS["VmRSS at 10,000 records"][1]
        ax.axhline(limit, color="red", linestyle=":", label=f"target {limit:g} MiB at 10,000 records")
        ax.set_ylim(bottom=0)
        ax.set_title("extension memory over invokes")
        ax.set_xlabel("invokes")
        ax.set_ylabel("MiB")
        ax.legend(fontsize=7)
    if api := results.get("localApi"):
        ax = axes[1][1]
        labels = ["last 100\n1 conn", "full store\n1 conn", f"last 100\n{api['last100Load']['connections']} conns", f"full store\n{api['fullStoreLoad']['connections']} conns"]
        keys = ["last100", "fullStore", "last100Load", "fullStoreLoad"]
        for i, p in enumerate(("p50Ms", "p99Ms")):
            bars = ax.bar([x + (i - 0.5) * 0.38 for x in range(4)], [api[k][p] for k in keys], 0.38, label=p[:3], color=["#dd8452", "#8c4a1f"][i])
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_yscale("log")
        ax.set_xticks(range(4), labels, fontsize=8)
        ax.set_title("local API /invocations latency (ms, log scale)")
        ax.legend()
    ax = axes[0][2]
    rows = []
    for key, label in (("warmInvoke", "noop function"), ("warmInvokeWithWork", "function works {w:g} ms")):
        if w := results.get(key):
            rows.append((label.format(w=w["functionWorkMs"]), w))
    if rows:
        others = ("baseline", *FLOORS)
        width = 0.8 / len(others)
        for i, other in enumerate(others):
            vals = [ratio(w["ours"]["p50"], w[other]["p50"]) for _, w in rows]
            bars = ax.bar([x + (i - (len(others) - 1) / 2) * width for x in range(len(rows))], vals, width, label=f"ours / {other}", color=COLORS[other])
            ax.bar_label(bars, fmt="%.3f", fontsize=7)
        limit = TARGETS["warm invoke p50 ratio vs floor"][1]
        ax.axhline(limit, color=COLORS["floor"], linestyle=":", label=f"target vs floor {limit:g}")
        ax.set_xticks(range(len(rows)), [label for label, _ in rows])
        ax.set_ylim(0.9, max(1.25, ax.get_ylim()[1]))
        ax.set_title("warm invoke p50 ratios")
        ax.legend(fontsize=8, loc="upper right")
    ax = axes[1][2]
    if zips := results.get("zipSize"):
        bars_of = (*FLOORS, "ours")
        width = 0.8 / len(bars_of)
        for i, config in enumerate(bars_of):
            xs = [x + (i - (len(bars_of) - 1) / 2) * width for x in range(len(ARCHES))]
            bars = ax.bar(xs, [(zips[a][config] or 0) / MIB for a in ARCHES], width, label=config, color=COLORS[config])
            ax.bar_label(bars, fmt="%.2f", fontsize=8)
        limit = TARGETS["layer zip x86_64"][1]
        ax.axhline(limit, color="red", linestyle=":", label=f"target {limit:g} MiB")
        ax.set_xticks(range(len(ARCHES)), list(ARCHES))
        ax.set_title("layer zip size (MiB)")
        ax.legend(fontsize=8, loc="upper center")
    if nrows == 3:
        chart_modes(modes, axes[2])
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=100)
    plt.close(fig)
    return True


def chart_modes(modes: dict, axes) -> None:
    """The optional modes' row: the proxy's latency and 6 MB answers, telemetry's start-up cost."""
    proxy_colors = {"ours": COLORS["ours"], "ours+proxy": "#8c4a1f"}
    for ax, key, title in ((axes[0], "latency", "proxy: warm invoke, no-op function"), (axes[1], "body", "proxy: {mib:.2f} MiB answer")):
        part = modes.get("proxy", {}).get(key)
        if not part:
            ax.set_axis_off()
            continue
        for i, c in enumerate(PROXY_CONFIGS):
            bars = ax.bar([x + (i - 0.5) * 0.38 for x in range(3)], [part[c][p] for p in ("p50", "p90", "p99")], 0.38, label=c, color=proxy_colors[c])
            ax.bar_label(bars, fmt="%.2f", fontsize=7)
        ax.set_xticks(range(3), ["p50", "p90", "p99"])
        ax.set_title(f"{title.format(mib=part.get('bytes', 0) / MIB)} (n={part['ours']['n']} each, interleaved)")
        ax.set_ylabel("ms")
        ax.legend(fontsize=8)
    ax = axes[2]
    tel = modes.get("telemetry", {})
    if not tel.get("standard"):
        ax.set_axis_off()
        return
    labels = [("standard", "RIE standard\n(NotSupported)"), ("managedInstances", "RIE managed instances\n(real Telemetry API)")]
    for i, (setting, color) in enumerate((("off", "#9e9e9e"), ("on", COLORS["ours"]))):
        bars = ax.bar([x + (i - 0.5) * 0.38 for x in range(len(labels))], [tel[m][setting]["p50"] for m, _ in labels], 0.38, label=f"telemetry {setting}", color=color)
        ax.bar_label(bars, fmt="%.2f", fontsize=8)
    ax.set_xticks(range(len(labels)), [label for _, label in labels], fontsize=8)
    ax.set_title(f"extension start → first /event/next, p50 (n={tel['standard']['on']['n']} starts each)")
    ax.set_ylabel("ms")
    ax.legend(fontsize=8)
