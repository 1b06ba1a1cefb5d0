"""Draw the S3 export's history as a timeline: one lane per execution environment, from its start to its shutdown.

    python -m tools.timeline DIR                                 # objects in a local directory (any depth)
    python -m tools.timeline s3://bucket/prefix/ [--endpoint-url URL]

Each invocation is a mark on its environment's lane, from when it began for as long as it ran, coloured by how it
ended; invocations that overlap (Lambda Managed Instances) go on rows of their own within the lane; a cold start
is marked with a star; each lane says its environment, how many invocations it served and how long it lived.
Writes a PNG (matplotlib) and one self-contained HTML file (the timeline's data and a small script inline, no
network) that zooms with the mouse wheel and pans by dragging.

The lanes and marks are a pure function of the objects' lines (`build_timeline`); the renderers only draw them.
"""

from __future__ import annotations

import argparse
import datetime
import html
import json
import sys
import tempfile
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from pathlib import Path

from tools.history_objects import DEFAULT_MAX_OBJECTS, NoObjects, environment_of, objects, progress, read_lines

STATUS_COLOURS = {
    "success": "#2e7d32",
    "error": "#c62828",
    "failure": "#6a1b9a",
    "timeout": "#ef6c00",
    None: "#9e9e9e",  # no status: the record was written before telemetry said how it ended, or without telemetry
}
COLD_START_COLOUR = "#0d47a1"
# An invocation without a duration, or a very short one, is drawn at least this wide (a fraction of the view).
MIN_MARK_FRACTION = 0.002



def counted(n: int, noun: str) -> str:
    """`1 environment`, `3 environments`."""
    return f"{n} {noun}{'' if n == 1 else 's'}"

def parse_time(text: str) -> datetime.datetime:
    """An RFC 3339 UTC time as the extension writes it (up to nanoseconds, `Z`), to microseconds."""
    head, _, fraction = text.removesuffix("Z").partition(".")
    digits = (fraction + "000000")[:6]
    return datetime.datetime.fromisoformat(f"{head}.{digits}+00:00")


@dataclass(frozen=True)
class Mark:
    """One invocation: when it began (seconds from the timeline's start), how long it ran, how it ended."""

    request_id: str
    start_s: float
    duration_ms: float | None
    status: str | None
    error_type: str | None
    cold_start: bool
    complete: bool
    row: int  # within the lane: invocations that overlap go on rows of their own

    @property
    def end_s(self) -> float:
        return self.start_s + (self.duration_ms or 0.0) / 1000


@dataclass(frozen=True)
class Lane:
    """One execution environment, from start to shutdown (seconds from the timeline's start)."""

    environment_id: str
    function_name: str | None
    init_type: str | None
    start_s: float
    end_s: float
    started: bool  # the start line is in the export; else the lane begins at its first invocation
    ended: bool  # the shutdown line is in the export; else the lane ends at its last invocation
    shutdown_reason: str | None
    served: int | None  # the shutdown line's count, which includes invocations the export could not keep
    rows: int
    marks: tuple[Mark, ...]

    @property
    def lifetime_s(self) -> float:
        return self.end_s - self.start_s

    @property
    def cold_starts(self) -> int:
        return sum(m.cold_start for m in self.marks)

    @property
    def label(self) -> str:
        count = self.served if self.served is not None else len(self.marks)
        lived = f"lived {format_seconds(self.lifetime_s)}" if self.started and self.ended else "lifetime unknown"
        return f"{self.environment_id[:8]}  {count} invocation{'s' if count != 1 else ''}  {lived}"


@dataclass(frozen=True)
class Timeline:
    origin: datetime.datetime  # time zero of the lanes and marks: the earliest start or invocation
    span_s: float
    lanes: tuple[Lane, ...]

    def as_dict(self) -> dict:
        data = asdict(self)
        data["origin"] = self.origin.isoformat().replace("+00:00", "Z")
        for lane, out in zip(self.lanes, data["lanes"]):
            out["label"] = lane.label
            out["lifetime_s"] = lane.lifetime_s
        return data


def format_seconds(seconds: float) -> str:
    if seconds < 1:
        return f"{seconds * 1000:.0f} ms"
    if seconds < 120:
        return f"{seconds:.2f} s"
    return f"{seconds / 60:.1f} min"


# Invocations begin at a time to the millisecond (invocatedAt) and last durationMs: one that begins less than this
# before the previous one on a row ended did not overlap it.
ROW_TOLERANCE_S = 0.001


def pack_rows(spans: list[tuple[float, float]]) -> list[int]:
    """The row of each span (start, end), in the given order (by start): the first row whose last span has ended."""
    row_ends: list[float] = []
    rows = []
    for start, end in spans:
        row = next((i for i, row_end in enumerate(row_ends) if row_end <= start + ROW_TOLERANCE_S), len(row_ends))
        if row == len(row_ends):
            row_ends.append(end)
        else:
            row_ends[row] = end
        rows.append(row)
    return rows


def build_timeline(objects_lines: Iterable[tuple[str, list[dict]]]) -> Timeline:
    """The lanes and marks of the objects' lines: (environment id from the object's key, its lines), any order."""
    starts: dict[str, dict] = {}
    ends: dict[str, dict] = {}
    invocations: dict[str, list[dict]] = {}
    for environment_id, lines in objects_lines:
        invocations.setdefault(environment_id, [])
        for line in lines:
            if line.get("type") == "environment":
                (starts if line.get("event") == "start" else ends)[line.get("environmentId", environment_id)] = line
            elif line.get("type") == "invocation":
                invocations[environment_id].append(line)
    ids = sorted(set(starts) | set(ends) | set(invocations))
    if not ids:
        raise NoObjects("the objects hold no environment and no invocation")
    times = [parse_time(starts[i]["at"]) for i in starts]
    times += [parse_time(line["record"]["invocatedAt"]) for lines in invocations.values() for line in lines]
    times += [parse_time(ends[i]["at"]) for i in ends]
    origin = min(times)
    seconds = lambda text: (parse_time(text) - origin).total_seconds()  # noqa: E731
    lanes = []
    for environment_id in ids:
        # By time, not by text: the extension writes as few fraction digits as the time needs ("…20.2Z" < "…20.21Z").
        lines = sorted(
            invocations.get(environment_id, []),
            key=lambda line: (parse_time(line["record"]["invocatedAt"]), line["record"].get("sequence", 0)),
        )
        records = [line["record"] for line in lines]
        spans = [(seconds(r["invocatedAt"]), seconds(r["invocatedAt"]) + (r.get("durationMs") or 0) / 1000) for r in records]
        rows = pack_rows(spans)
        marks = tuple(
            Mark(
                request_id=r["awsRequestId"], start_s=span[0], duration_ms=r.get("durationMs"), status=r.get("status"),
                error_type=r.get("errorType"), cold_start=bool(r.get("coldStart")), complete=bool(line.get("complete")),
                row=row,
            )
            for r, line, span, row in zip(records, lines, spans, rows)
        )  # fmt: skip
        start, end = starts.get(environment_id), ends.get(environment_id)
        start_s = seconds(start["at"]) if start else min((m.start_s for m in marks), default=0.0)
        end_s = seconds(end["at"]) if end else max((m.end_s for m in marks), default=start_s)
        lanes.append(
            Lane(
                environment_id=environment_id, function_name=(start or {}).get("functionName"),
                init_type=(start or {}).get("initType"), start_s=start_s, end_s=max(end_s, start_s),
                started=start is not None, ended=end is not None, shutdown_reason=(end or {}).get("reason"),
                served=(end or {}).get("served"), rows=max(rows, default=0) + 1, marks=marks,
            )
        )  # fmt: skip
    lanes.sort(key=lambda lane: (lane.start_s, lane.environment_id))
    span = max(max(lane.end_s for lane in lanes), max((m.end_s for lane in lanes for m in lane.marks), default=0.0))
    return Timeline(origin=origin, span_s=span, lanes=tuple(lanes))


def read_timeline(files: list[Path], show_progress: bool = True) -> Timeline:
    """The timeline of exported objects on this machine, read one by one (with a progress bar when many)."""
    return build_timeline((environment_of(f), read_lines(f)) for f in progress(files, len(files), "reading", show_progress))


# -- renderers --------------------------------------------------------------------------------------------------


def title_of(timeline: Timeline, title: str | None) -> str:
    marks = sum(len(lane.marks) for lane in timeline.lanes)
    start = timeline.origin.strftime("%Y-%m-%d %H:%M:%S UTC")
    return title or f"{counted(len(timeline.lanes), 'environment')}, {counted(marks, 'invocation')}, from {start}"


def render_png(timeline: Timeline, path: Path, title: str | None = None) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.lines import Line2D
    from matplotlib.patches import Patch

    lane_height = 0.8
    fig, ax = plt.subplots(figsize=(11, 1.2 + 0.55 * len(timeline.lanes)), dpi=100)
    span = timeline.span_s or 1.0
    min_width = span * MIN_MARK_FRACTION
    for index, lane in enumerate(timeline.lanes):
        y = len(timeline.lanes) - 1 - index  # the first lane on top
        ax.broken_barh([(lane.start_s, lane.lifetime_s or min_width)], (y - lane_height / 2, lane_height),
                       facecolors="#eceff1", edgecolors="#90a4ae", linestyles="-" if lane.ended else "--")  # fmt: skip
        row_height = lane_height * 0.8 / lane.rows
        for mark in lane.marks:
            bottom = y - lane_height * 0.4 + mark.row * row_height
            width = max((mark.duration_ms or 0) / 1000, min_width)
            ax.broken_barh([(mark.start_s, width)], (bottom, row_height * 0.9), facecolors=STATUS_COLOURS.get(mark.status, "#9e9e9e"))
            if mark.cold_start:
                ax.plot(mark.start_s, bottom + row_height * 0.45, marker="*", color=COLD_START_COLOUR, markersize=11)
        ax.text(lane.start_s, y + lane_height / 2 + 0.02, lane.label, fontsize=8, va="bottom", family="monospace")
    ax.set_yticks([])
    ax.set_ylim(-0.7, len(timeline.lanes) - 0.1)
    ax.set_xlim(-span * 0.01, span * 1.01)
    ax.set_xlabel(f"seconds since {timeline.origin.strftime('%Y-%m-%d %H:%M:%S.%f')[:-3]} UTC")
    ax.set_title(title_of(timeline, title), fontsize=10)
    legend = [Patch(color=STATUS_COLOURS[s], label=s) for s in ("success", "error", "failure", "timeout")]
    legend += [Patch(color=STATUS_COLOURS[None], label="no status"),
               Line2D([], [], marker="*", color=COLD_START_COLOUR, linestyle="", markersize=11, label="cold start")]  # fmt: skip
    ax.legend(handles=legend, loc="upper center", bbox_to_anchor=(0.5, -0.18), ncol=6, fontsize=8, frameon=False)
    for side in ("top", "right", "left"):
        ax.spines[side].set_visible(False)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path)
    plt.close(fig)
    return path


# The page's script draws the embedded timeline as SVG for the visible time range: the wheel zooms around the
# pointer, dragging pans, a double click shows everything again. Written for this page; no library.
HTML_SCRIPT = r"""
const data = JSON.parse(document.getElementById("timeline-data").textContent);
const colours = JSON.parse(document.getElementById("timeline-colours").textContent);
const svg = document.getElementById("timeline");
const NS = "http://www.w3.org/2000/svg";
const laneHeight = 46, top = 24, left = 10, right = 10, axis = 28;
const width = () => svg.clientWidth || 1000;
let view = [-data.span_s * 0.01, data.span_s * 1.01 || 1];
svg.setAttribute("height", top + data.lanes.length * laneHeight + axis);
function el(name, attrs, text) {
  const e = document.createElementNS(NS, name);
  for (const [k, v] of Object.entries(attrs)) e.setAttribute(k, v);
  if (text !== undefined) e.textContent = text;
  return e;
}
function x(s) { return left + (s - view[0]) / (view[1] - view[0]) * (width() - left - right); }
function fmt(s) { return Math.abs(view[1] - view[0]) < 2 ? (s * 1000).toFixed(0) + " ms" : s.toFixed(2) + " s"; }
function draw() {
  svg.replaceChildren();
  const minWidth = 2;
  data.lanes.forEach((lane, i) => {
    const y = top + i * laneHeight;
    svg.append(el("rect", {x: x(lane.start_s), y: y, width: Math.max(x(lane.end_s) - x(lane.start_s), 1), height: laneHeight - 16,
      fill: "#eceff1", stroke: "#90a4ae", "stroke-dasharray": lane.ended ? "" : "4 3"}));
    const label = el("text", {x: Math.max(x(lane.start_s), left) + 2, y: y - 3, "font-size": 11, "font-family": "monospace"}, lane.label);
    svg.append(label);
    const rowHeight = (laneHeight - 20) / lane.rows;
    for (const m of lane.marks) {
      const my = y + 2 + m.row * rowHeight;
      const r = el("rect", {x: x(m.start_s), y: my, width: Math.max(x(m.start_s + (m.duration_ms || 0) / 1000) - x(m.start_s), minWidth),
        height: Math.max(rowHeight - 1, 1), fill: colours[m.status] || colours["null"], class: "mark"});
      r.append(el("title", {}, `${m.request_id}\n${m.status || "no status"}${m.error_type ? " (" + m.error_type + ")" : ""}` +
        `\n${m.duration_ms === null ? "duration unknown" : m.duration_ms + " ms"} at +${m.start_s.toFixed(3)} s${m.cold_start ? "\ncold start" : ""}`));
      svg.append(r);
      if (m.cold_start) svg.append(el("text", {x: x(m.start_s) - 5, y: my + rowHeight / 2 + 5, fill: colours.cold, "font-size": 16}, "\u2605"));
    }
  });
  const baseline = top + data.lanes.length * laneHeight;
  svg.append(el("line", {x1: left, x2: width() - right, y1: baseline, y2: baseline, stroke: "#607d8b"}));
  for (let k = 0; k <= 8; k++) {
    const s = view[0] + (view[1] - view[0]) * k / 8;
    svg.append(el("text", {x: x(s), y: baseline + 16, "font-size": 11, "text-anchor": "middle"}, fmt(s)));
  }
}
svg.addEventListener("wheel", (e) => {
  e.preventDefault();
  const at = view[0] + (e.offsetX - left) / (width() - left - right) * (view[1] - view[0]);
  const factor = e.deltaY < 0 ? 0.8 : 1.25;
  view = [at - (at - view[0]) * factor, at + (view[1] - at) * factor];
  draw();
}, {passive: false});
let dragging = null;
svg.addEventListener("mousedown", (e) => { dragging = {x: e.clientX, view: view.slice()}; });
window.addEventListener("mouseup", () => { dragging = null; });
window.addEventListener("mousemove", (e) => {
  if (!dragging) return;
  const ds = (dragging.x - e.clientX) / (width() - left - right) * (dragging.view[1] - dragging.view[0]);
  view = [dragging.view[0] + ds, dragging.view[1] + ds];
  draw();
});
svg.addEventListener("dblclick", () => { view = [-data.span_s * 0.01, data.span_s * 1.01 || 1]; draw(); });
window.addEventListener("resize", draw);
draw();
"""


def render_html(timeline: Timeline, path: Path, title: str | None = None) -> Path:
    """One self-contained page: the timeline's data as JSON and the script that draws it, nothing fetched."""
    colours = {("null" if k is None else k): v for k, v in STATUS_COLOURS.items()} | {"cold": COLD_START_COLOUR}
    # JSON inside <script>: "</" must not close the element early.
    embed = lambda value: json.dumps(value, separators=(",", ":")).replace("</", "<\\/")  # noqa: E731
    legend = " ".join(
        f'<span><i style="background:{colour}"></i>{html.escape(name)}</span>'
        for name, colour in [*((k or "no status", v) for k, v in STATUS_COLOURS.items())]
    )
    page = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>{html.escape(title_of(timeline, title))}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 16px; }}
svg {{ width: 100%; border: 1px solid #cfd8dc; user-select: none; cursor: grab; }}
.legend span {{ margin-right: 14px; font-size: 13px; }}
.legend i {{ display: inline-block; width: 12px; height: 12px; margin-right: 4px; vertical-align: middle; }}
.mark:hover {{ stroke: #000; }}
</style></head><body>
<h3>{html.escape(title_of(timeline, title))}</h3>
<p class="legend">{legend} <span style="color:{COLD_START_COLOUR}">&#9733; cold start</span>
 &middot; wheel: zoom, drag: pan, double click: everything; hover a mark for its invocation</p>
<svg id="timeline" xmlns="http://www.w3.org/2000/svg"></svg>
<script type="application/json" id="timeline-data">{embed(timeline.as_dict())}</script>
<script type="application/json" id="timeline-colours">{embed(colours)}</script>
<script>{HTML_SCRIPT}</script>
</body></html>
"""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(page)
    return path


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m tools.timeline",
        description="Draw the S3 export's history (a local directory of exported objects, or s3://bucket/prefix) as a "
        "timeline: one lane per environment, each invocation a mark coloured by status, cold starts starred. "
        "Writes NAME.png and NAME.html (self-contained, zoomable) and prints their paths.",
    )
    parser.add_argument("source", help="a directory holding exported objects (any depth), or s3://bucket/prefix")
    parser.add_argument("-o", "--out-dir", type=Path, default=Path("build/timeline"), help="where to write (default: build/timeline)")
    parser.add_argument("--name", default="timeline", help="file name without extension (default: timeline)")
    parser.add_argument("--title", help="the picture's title (default: what it shows and from when)")
    parser.add_argument("--endpoint-url", help="S3 endpoint for s3:// sources (e.g. a local S3 server)")
    parser.add_argument("--cache", type=Path, help="directory to download s3:// objects into (default: a temporary one)")
    parser.add_argument("--max-objects", type=int, default=DEFAULT_MAX_OBJECTS,
                        help=f"refuse sources of more objects than this (default: {DEFAULT_MAX_OBJECTS})")  # fmt: skip
    parser.add_argument("--no-progress", action="store_true", help="no progress bar while downloading and reading")
    args = parser.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="timeline-") as tmp:
        try:
            files = objects(args.source, args.cache or Path(tmp), args.endpoint_url, args.max_objects, not args.no_progress)
            timeline = read_timeline(files, not args.no_progress)
        except (NoObjects, ValueError) as e:
            print(f"timeline: {e}", file=sys.stderr)
            return 2
    png = render_png(timeline, args.out_dir / f"{args.name}.png", args.title)
    page = render_html(timeline, args.out_dir / f"{args.name}.html", args.title)
    marks = sum(len(lane.marks) for lane in timeline.lanes)
    print(f"{counted(len(timeline.lanes), 'environment')}, {counted(marks, 'invocation')}, {counted(len(files), 'object')}")
    print(png)
    print(page)
    return 0


if __name__ == "__main__":
    sys.exit(main())
