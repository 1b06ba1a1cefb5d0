"""The named queries (the Athena ones, run here with DuckDB) over the objects a real run exported: three
environments at once under AWS's emulator, each exporting to moto's S3 server, some invocations failing. Every
query's answer is checked against what the run did, as its callers saw it."""

from __future__ import annotations

import datetime
import gzip
import json
import math
from pathlib import Path

import pytest

from tools.export_run import Plan, run
from tools.history_objects import download, environment_of, local_objects
from tools.history_query import History, main, named_queries
from tools.timeline import read_timeline
from tools.local_s3 import LocalS3

BUCKET = "history"
PREFIX = "exports/"
# Three environments of different sizes, failing at different rates, overlapping in time.
PLANS = [
    Plan(invocations=5, fail_every=0),
    Plan(invocations=7, fail_every=3, start_after_s=0.2),
    Plan(invocations=9, fail_every=2, concurrency=3, start_after_s=0.1),
]


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    """The run (what each environment served) and the objects it wrote, downloaded through the s3:// path."""
    with LocalS3() as s3:
        s3.client().create_bucket(Bucket=BUCKET)
        served = run(s3, BUCKET, PLANS, prefix=PREFIX, max_invocations=3)
        directory = tmp_path_factory.mktemp("objects")
        client_env = {"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_DEFAULT_REGION": "us-east-1"}
        with pytest.MonkeyPatch.context() as mp:
            for k, v in client_env.items():
                mp.setenv(k, v)
            files = download(f"s3://{BUCKET}/{PREFIX}", directory, endpoint_url=s3.url, show_progress=False)
    return served, directory, files


@pytest.fixture(scope="module")
def history(exported):
    _, _, files = exported
    history = History(files)
    yield history
    history.close()


def lines(files: list[Path]) -> list[tuple[str, dict]]:
    """Each line of the objects with the environment its key names: read here without DuckDB."""
    return [
        (environment_of(f), json.loads(line))
        for f in files
        for line in gzip.decompress(f.read_bytes()).decode().splitlines()
    ]


def by_environment(rows: list[dict]) -> dict[str, dict]:
    return {row["environment_id"]: row for row in rows}


def test_the_run_wrote_objects_for_every_environment(exported):
    served, directory, files = exported
    assert all(s.shutdown_code == 0 for s in served)
    assert {environment_of(f) for f in files} == {s.environment_id for s in served}
    assert local_objects(directory) == files  # the download keeps the keys as paths


def parse_time(text: str) -> datetime.datetime:
    """An RFC 3339 time of the export (nanoseconds, Z) to microseconds, as DuckDB keeps it."""
    head, _, fraction = text.rstrip("Z").partition(".")
    return datetime.datetime.fromisoformat(f"{head}.{(fraction + '000000')[:6]}+00:00")


def test_environments_start_end_lifetime_and_invocations_served(history, exported):
    served, _, files = exported
    rows = by_environment(history.named("environments").as_dicts())
    said = {(line["environmentId"], line["event"]): line for _, line in lines(files) if line["type"] == "environment"}
    # THEN one row per environment the run started, each with its start, end and what it served
    assert set(rows) == {s.environment_id for s in served}
    for s in served:
        row = rows[s.environment_id]
        assert row["served"] == len(s.request_ids) and row["invocations_exported"] == len(s.request_ids), row
        started, ended = said[s.environment_id, "start"], said[s.environment_id, "shutdown"]
        assert row["started_at"] == parse_time(started["at"]) and row["ended_at"] == parse_time(ended["at"]), row
        # (date_diff counts the millisecond boundaries crossed in DuckDB, whole milliseconds elapsed in Trino)
        elapsed = (row["ended_at"] - row["started_at"]) / datetime.timedelta(milliseconds=1)
        assert row["lifetime_ms"] > 0 and abs(row["lifetime_ms"] - elapsed) <= 1, row
        assert row["function_name"] == "function" and row["shutdown_reason"] == "spindown", row


def test_cold_starts_per_hour(history, exported):
    served, _, files = exported
    rows = history.named("cold_starts_per_hour").as_dicts()
    # THEN every environment's first invocation is a cold start, counted in the hour it began
    assert sum(row["cold_starts"] for row in rows) == len(served)
    cold_hours = {
        line["record"]["invocatedAt"][:13] for _, line in lines(files) if line["type"] == "invocation" and line["record"]["coldStart"]
    }
    assert {row["hour_start"].strftime("%Y-%m-%dT%H") for row in rows} == cold_hours
    assert all(row["hour_start"].minute == 0 and row["hour_start"].second == 0 for row in rows)


def test_invocations_per_environment(history, exported):
    served, _, _ = exported
    rows = by_environment(history.named("invocations_per_environment").as_dicts())
    assert set(rows) == {s.environment_id for s in served}
    for s in served:
        row = rows[s.environment_id]
        assert row["invocations"] == len(s.request_ids), row
        assert row["cold_starts"] == 1, row
        assert row["failed"] == len(s.failed) and row["succeeded"] == len(s.request_ids) - len(s.failed), row
        assert row["status_unknown"] == 0 and row["first_invocation_at"] <= row["last_invocation_at"], row


def test_errors_by_type_and_environment(history, exported):
    served, _, files = exported
    rows = history.named("errors_by_type_and_environment").as_dicts()
    # THEN each failed invocation is counted once, under its environment and the type its record carries
    failing = {s.environment_id: len(s.failed) for s in served if s.failed}
    assert len(failing) == 2, "two of the plans fail some invocations"
    counted: dict[str, int] = {}
    for row in rows:
        counted[row["environment_id"]] = counted.get(row["environment_id"], 0) + row["invocations"]
        assert row["status"] == "error", row
    assert counted == failing
    types = {(env, line["record"].get("errorType")) for env, line in lines(files) if line["type"] == "invocation"
             and line["record"]["status"] == "error"}  # fmt: skip
    assert {(row["environment_id"], row["error_type"]) for row in rows} == types


def nearest_rank(values: list[float], percentile: float) -> float:
    ordered = sorted(values)
    return ordered[max(math.ceil(percentile * len(ordered)), 1) - 1]


def test_duration_percentiles_per_environment(history, exported):
    served, _, files = exported
    rows = by_environment(history.named("duration_percentiles_per_environment").as_dicts())
    durations: dict[str, list[float]] = {}
    for env, line in lines(files):
        if line["type"] == "invocation":
            durations.setdefault(env, []).append(line["record"]["durationMs"])
    assert set(rows) == {s.environment_id for s in served}
    for env, values in durations.items():
        row = rows[env]
        assert row["invocations"] == len(values) == len(next(s for s in served if s.environment_id == env).request_ids)
        assert row["p50_ms"] == nearest_rank(values, 0.5) and row["p99_ms"] == nearest_rank(values, 0.99), (row, values)
        assert row["max_ms"] == max(values) and row["p50_ms"] <= row["p99_ms"] <= row["max_ms"]


def test_every_named_query_is_listed_and_the_command_prints_them(exported, capsys):
    _, directory, _ = exported
    assert set(named_queries()) == {
        "environments", "cold_starts_per_hour", "invocations_per_environment",
        "errors_by_type_and_environment", "duration_percentiles_per_environment",
    }  # fmt: skip
    assert main([str(directory), "--format", "json", "-q", "invocations_per_environment"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert sum(row["invocations"] for row in printed["invocations_per_environment"]) == sum(p.invocations for p in PLANS)


def test_the_timeline_of_the_run_has_a_lane_per_environment_and_a_mark_per_invocation(exported):
    served, _, files = exported
    timeline = read_timeline(files, show_progress=False)
    lanes = {lane.environment_id: lane for lane in timeline.lanes}
    assert set(lanes) == {s.environment_id for s in served}
    for s in served:
        lane = lanes[s.environment_id]
        assert sorted(m.request_id for m in lane.marks) == sorted(s.request_ids)
        assert sorted(m.request_id for m in lane.marks if m.status == "error") == sorted(s.failed)
        assert lane.cold_starts == 1 and lane.started and lane.ended and lane.served == len(s.request_ids)
        assert all(lane.start_s <= m.start_s and m.end_s <= lane.end_s for m in lane.marks), lane
