"""The timeline's lanes and marks from a known set of exported objects, and what the renderers make of them: the
data they draw, not their pixels."""

from __future__ import annotations

import gzip
import json
import random
import re
import shutil
import subprocess
from pathlib import Path

import pytest

from tools.history_objects import environment_of, local_objects, read_lines
from tools.timeline import build_timeline, main, pack_rows, read_timeline, render_html, render_png

ENV_A = "a" * 32
ENV_B = "b" * 32
ENV_C = "c" * 32


def environment_line(env: str, event: str, at: str, **fields) -> dict:
    return {"type": "environment", "event": event, "environmentId": env, "at": at, "functionName": "orders", **fields}


def invocation(n: int, at: str, duration_ms: float | None, status: str | None, cold: bool = False, **fields) -> dict:
    record = {"awsRequestId": f"req-{n}", "invocatedAt": at, "sequence": n, "coldStart": cold, **fields}
    if duration_ms is not None:
        record["durationMs"] = duration_ms
    if status is not None:
        record["status"] = status
    return {"type": "invocation", "complete": status is not None, "record": record, "logs": []}


# Three environments as the exporter writes them (docs/configuration.md, "S3 export"):
# A: on-demand, three invocations one after another in two objects, the second failed;
# B: Managed Instances, two invocations at once, then one more; its times with nanoseconds and few digits;
# C: still running (no shutdown line yet), one invocation without telemetry (no status, no duration).
OBJECTS = {
    f"function=orders/date=2026-03-01/hour=10/{ENV_A}-000001.ndjson.gz": [
        environment_line(ENV_A, "start", "2026-03-01T10:00:00.000000000Z", initType="on-demand"),
        invocation(1, "2026-03-01T10:00:00.5Z", 100.0, "success", cold=True),
        invocation(2, "2026-03-01T10:00:01Z", 50.0, "error", errorType="Runtime.ExitError"),
    ],
    f"function=orders/date=2026-03-01/hour=10/{ENV_A}-000002.ndjson.gz": [
        invocation(3, "2026-03-01T10:00:02Z", 20.0, "success"),
        environment_line(ENV_A, "shutdown", "2026-03-01T10:00:03.25Z", reason="spindown", served=3),
    ],
    f"function=orders/date=2026-03-01/hour=10/{ENV_B}-000001.ndjson.gz": [
        environment_line(ENV_B, "start", "2026-03-01T10:00:01.123456789Z", initType="lambda-managed-instances"),
        invocation(1, "2026-03-01T10:00:01.2Z", 300.0, "success", cold=True),
        invocation(2, "2026-03-01T10:00:01.21Z", 100.0, "timeout"),
        invocation(3, "2026-03-01T10:00:01.4Z", 10.0, "success"),
        environment_line(ENV_B, "shutdown", "2026-03-01T10:00:04Z", reason="spindown", served=4),
    ],
    f"function=orders/date=2026-03-01/hour=10/{ENV_C}-000001.ndjson.gz": [
        environment_line(ENV_C, "start", "2026-03-01T10:00:02Z"),
        invocation(1, "2026-03-01T10:00:02.5Z", None, None, cold=True),
    ],
}


@pytest.fixture
def objects_dir(tmp_path) -> Path:
    for key, lines in OBJECTS.items():
        path = tmp_path / "exports" / key
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(gzip.compress("".join(json.dumps(line) + "\n" for line in lines).encode()))
    return tmp_path


def test_one_lane_per_environment_from_start_to_shutdown(objects_dir):
    # GIVEN the objects of three environments WHEN the timeline is built
    timeline = read_timeline(local_objects(objects_dir), show_progress=False)
    # THEN time zero is the first thing that happened, and lanes come in the order environments started
    assert timeline.origin.isoformat() == "2026-03-01T10:00:00+00:00"
    assert [lane.environment_id for lane in timeline.lanes] == [ENV_A, ENV_B, ENV_C]
    a, b, c = timeline.lanes
    assert (a.start_s, a.end_s, a.lifetime_s) == (0.0, 3.25, 3.25)
    assert b.start_s == pytest.approx(1.123456) and b.end_s == 4.0
    assert (a.served, b.served, c.served) == (3, 4, None), "served is the shutdown line's count"
    assert (a.shutdown_reason, a.init_type, b.init_type) == ("spindown", "on-demand", "lambda-managed-instances")
    # ... and each lane says what it served and how long it lived
    assert a.label == "aaaaaaaa  3 invocations  lived 3.25 s"
    assert b.label == "bbbbbbbb  4 invocations  lived 2.88 s"


def test_an_environment_still_running_ends_at_its_last_invocation(objects_dir):
    timeline = read_timeline(local_objects(objects_dir), show_progress=False)
    c = timeline.lanes[2]
    assert c.started and not c.ended
    assert (c.start_s, c.end_s) == (2.0, 2.5)
    assert c.label == "cccccccc  1 invocation  lifetime unknown"
    assert timeline.span_s == 4.0


def test_each_invocation_is_a_mark_with_its_status_duration_and_cold_start(objects_dir):
    a, b, c = read_timeline(local_objects(objects_dir), show_progress=False).lanes
    assert [(m.request_id, m.start_s, m.duration_ms, m.status, m.cold_start) for m in a.marks] == [
        ("req-1", 0.5, 100.0, "success", True),
        ("req-2", 1.0, 50.0, "error", False),
        ("req-3", 2.0, 20.0, "success", False),
    ]
    assert a.marks[1].error_type == "Runtime.ExitError" and a.cold_starts == 1
    # ... in time order, ".2" before ".21" (times have as few digits as they need)
    assert [m.request_id for m in b.marks] == ["req-1", "req-2", "req-3"]
    assert [m.status for m in b.marks] == ["success", "timeout", "success"]
    # ... without telemetry a mark has no status and no duration, and is not complete
    assert [(m.status, m.duration_ms, m.complete, m.cold_start) for m in c.marks] == [(None, None, False, True)]


def test_invocations_that_overlap_go_on_rows_of_their_own(objects_dir):
    a, b, _ = read_timeline(local_objects(objects_dir), show_progress=False).lanes
    assert (a.rows, [m.row for m in a.marks]) == (1, [0, 0, 0])
    # req-1 runs 1.2-1.5 s, req-2 1.21-1.31 s beside it, req-3 at 1.4 s after req-2 ended, on its row
    assert (b.rows, [m.row for m in b.marks]) == (2, [0, 1, 1])


def test_rows_are_packed_first_fit_with_a_millisecond_of_slack():
    assert pack_rows([(0.0, 1.0), (0.5, 0.7), (0.8, 2.0), (1.0, 1.5), (1.9995, 3.0)]) == [0, 1, 1, 0, 0]


def test_the_timeline_does_not_depend_on_the_order_objects_are_read(objects_dir):
    files = local_objects(objects_dir)
    shuffled = files[:]
    random.Random(7).shuffle(shuffled)
    read = lambda fs: build_timeline((environment_of(f), read_lines(f)) for f in fs)  # noqa: E731
    assert read(shuffled) == read(files)


def embedded(page: str, element_id: str):
    match = re.search(rf'<script type="application/json" id="{element_id}">(.*?)</script>', page, re.S)
    return json.loads(match.group(1))


def test_the_html_page_carries_the_timeline_and_fetches_nothing(objects_dir, tmp_path):
    timeline = read_timeline(local_objects(objects_dir), show_progress=False)
    page = render_html(timeline, tmp_path / "out/t.html").read_text()
    # THEN the page's data is the timeline's lanes and marks
    data = embedded(page, "timeline-data")
    assert data == json.loads(json.dumps(timeline.as_dict()))
    assert [lane["label"] for lane in data["lanes"]] == [lane.label for lane in timeline.lanes]
    assert sum(len(lane["marks"]) for lane in data["lanes"]) == 7
    # ... and it is self-contained: no script, style, image or font from anywhere
    assert not re.search(r"""(src|href)\s*=|@import|url\(|fetch\(|XMLHttpRequest""", page), "nothing is loaded"


NODE_DOM = """
// The least of a DOM that the page's script uses, to run it under node and count what it draws.
const fs = require("fs");
const page = fs.readFileSync(process.argv[2], "utf8");
const scripts = {};
for (const m of page.matchAll(/<script type="application\\/json" id="([^"]+)">([\\s\\S]*?)<\\/script>/g)) scripts[m[1]] = m[2];
const code = page.match(/<script>([\\s\\S]*?)<\\/script>/)[1];
const drawn = [];
function element(name) {
  const e = {name, attrs: {}, children: [], textContent: "", listeners: {}, clientWidth: 1000,
    setAttribute(k, v) { this.attrs[k] = String(v); }, append(...c) { this.children.push(...c); if (this === svg) drawn.push(...c); },
    replaceChildren() { this.children = []; drawn.length = 0; }, addEventListener(t, f) { this.listeners[t] = f; }};
  return e;
}
const svg = element("svg");
global.document = {getElementById: (id) => id === "timeline" ? svg : {textContent: scripts[id]},
  createElementNS: (_, name) => element(name)};
global.window = {addEventListener() {}};
eval(code);
const count = (pred) => drawn.filter(pred).length;
const before = count((e) => e.attrs.class === "mark");
svg.listeners.wheel({preventDefault() {}, offsetX: 500, deltaY: -1});
console.log(JSON.stringify({
  marks: before, marksAfterZoom: count((e) => e.attrs.class === "mark"),
  colours: drawn.filter((e) => e.attrs.class === "mark").map((e) => e.attrs.fill),
  coldStars: count((e) => e.textContent === "\\u2605"),
  labels: drawn.filter((e) => e.name === "text" && e.attrs["font-family"] === "monospace").map((e) => e.textContent),
}));
"""


@pytest.mark.skipif(shutil.which("node") is None, reason="node is needed to run the page's script")
def test_the_html_script_draws_every_lane_and_mark_and_zooms(objects_dir, tmp_path):
    timeline = read_timeline(local_objects(objects_dir), show_progress=False)
    page = render_html(timeline, tmp_path / "t.html")
    (tmp_path / "dom.js").write_text(NODE_DOM)
    out = subprocess.run(["node", str(tmp_path / "dom.js"), str(page)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    drawn = json.loads(out.stdout)
    # THEN every mark is drawn in its status's colour, every cold start starred, every lane labelled, after a zoom too
    assert drawn["marks"] == drawn["marksAfterZoom"] == 7
    colours = embedded(page.read_text(), "timeline-colours")
    statuses = [m.status for lane in timeline.lanes for m in lane.marks]
    assert drawn["colours"] == [colours["null" if s is None else s] for s in statuses]
    assert drawn["coldStars"] == 3
    assert drawn["labels"] == [lane.label for lane in timeline.lanes]


def test_the_command_writes_a_png_and_a_page_and_prints_their_paths(objects_dir, tmp_path, capsys):
    assert main([str(objects_dir), "-o", str(tmp_path / "pictures"), "--no-progress"]) == 0
    printed = capsys.readouterr().out.splitlines()
    assert printed[0] == "3 environments, 7 invocations, 4 objects"
    png, page = Path(printed[1]), Path(printed[2])
    assert png == tmp_path / "pictures/timeline.png" and png.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    assert page == tmp_path / "pictures/timeline.html" and "timeline-data" in page.read_text()


def test_a_directory_without_exported_objects_is_refused(tmp_path, capsys):
    (tmp_path / "notes.txt").write_text("nothing exported here")
    assert main([str(tmp_path), "-o", str(tmp_path / "out"), "--no-progress"]) == 2
    assert "no exported object" in capsys.readouterr().err
    assert not (tmp_path / "out").exists()


def test_render_png_draws_without_a_display(objects_dir, tmp_path):
    timeline = read_timeline(local_objects(objects_dir), show_progress=False)
    path = render_png(timeline, tmp_path / "a/b.png", title="three environments")
    assert path.stat().st_size > 1000
