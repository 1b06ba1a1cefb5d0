"""The named queries (the Athena ones, run here with DuckDB) over the objects a real run exported: three
environments at once under AWS's emulator, each exporting to moto's S3 server, some invocations failing. Every
query's answer is checked against what the run did, as its callers saw it."""

from __future__ import annotations

import datetime
import gzip
import json
import math
import re
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


# -- the Glue table (InvocationHistoryTable) against the same objects ------------------------------------------------

# Keys of the lines that are not columns: each invocation's log events (read them from the objects).
NOT_COLUMNS = {"logs"}


def parse_hive_type(text: str):
    """A Glue column type: a scalar name, or {field: type} for struct<...>."""
    if not text.startswith("struct<"):
        return text
    fields, depth, name, start = {}, 0, None, len("struct<")
    for i in range(start, len(text)):
        c = text[i]
        if c == ":" and depth == 0 and name is None:
            name, start = text[start:i], i + 1
        elif c == "<":
            depth += 1
        elif c == ">" and depth > 0:
            depth -= 1
        elif (c == "," and depth == 0) or i == len(text) - 1:
            fields[name] = parse_hive_type(text[start:i])
            name, start = None, i + 1
    return fields


def fits(value, hive) -> bool:
    """Whether a JSON value reads as that Glue type (JSON null reads as NULL in any)."""
    if value is None:
        return True
    if isinstance(hive, dict):
        return isinstance(value, dict) and all(k.lower() in hive and fits(v, hive[k.lower()]) for k, v in value.items())
    return {
        "string": lambda v: isinstance(v, str) or isinstance(v, dict),  # an object reads as its JSON text
        "bigint": lambda v: isinstance(v, int) and not isinstance(v, bool),
        "double": lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
        "boolean": lambda v: isinstance(v, bool),
    }[hive](value)


def glue_table_of_the_run() -> dict:
    """The table InvocationHistoryTable defines for this run's bucket, prefix and function."""
    import aws_cdk as cdk
    from aws_cdk import aws_lambda as lambda_
    from aws_cdk import aws_s3 as s3
    from aws_cdk.assertions import Template

    from invocation_history_cdk import InvocationHistoryTable

    stack = cdk.Stack(cdk.App(), "Run", env=cdk.Environment(account="123456789012", region="us-east-1"))
    InvocationHistoryTable(
        stack, "History", bucket=s3.Bucket.from_bucket_name(stack, "B", BUCKET), prefix=PREFIX,
        functions=[lambda_.Function.from_function_arn(stack, "F", "arn:aws:lambda:us-east-1:123456789012:function:function")],
    )  # fmt: skip
    (table,) = Template.from_stack(stack).find_resources("AWS::Glue::Table").values()
    return table["Properties"]["TableInput"]


def test_the_glue_table_projects_every_object_key_the_run_wrote(exported):
    _, directory, files = exported
    table = glue_table_of_the_run()
    parameters = table["Parameters"]
    # The location template, with each ${partition} a group, and what projection offers for each
    template = parameters["storage.location.template"].removeprefix(f"s3://{BUCKET}/")
    pattern = re.compile("".join(
        f"(?P<{placeholder[2:-1]}>[^/]+)" if re.fullmatch(r"\$\{\w+\}", placeholder) else re.escape(placeholder)
        for placeholder in re.split(r"(\$\{\w+\})", template)
    ))  # fmt: skip
    first_day, last_day = parameters["projection.date.range"].split(",")
    assert last_day == "NOW" and parameters["projection.date.format"] == "yyyy-MM-dd"
    today = datetime.datetime.now(datetime.timezone.utc).date()
    for f in files:
        key = f.relative_to(directory).as_posix()
        folder, _, name = key.rpartition("/")
        match = pattern.fullmatch(folder + "/")
        # THEN each object lies in a partition the projection offers, under the table's location
        assert match, (key, parameters["storage.location.template"])
        assert match["function"] in parameters["projection.function.values"].split(","), key
        assert match["hour"] in parameters["projection.hour.values"].split(","), key
        day = datetime.date.fromisoformat(match["date"])
        assert datetime.date.fromisoformat(first_day) <= day <= today, key
        assert name.endswith(".ndjson.gz") and f"s3://{BUCKET}/{key}".startswith(table["StorageDescriptor"]["Location"])


def test_the_glue_tables_columns_read_every_line_the_run_wrote(exported):
    _, _, files = exported
    table = glue_table_of_the_run()
    columns = {c["Name"]: parse_hive_type(c["Type"]) for c in table["StorageDescriptor"]["Columns"]}
    assert table["StorageDescriptor"]["SerdeInfo"]["Parameters"]["case.insensitive"] == "true"
    seen: set[str] = set()
    for _, line in lines(files):
        for key, value in line.items():
            if key in NOT_COLUMNS:
                continue
            # THEN every key of every line is a column (or a struct field) of a type that reads its value
            assert key.lower() in columns, (key, line)
            assert fits(value, columns[key.lower()]), (key, value, columns[key.lower()])
            seen.add(key.lower())
    # ... and the columns the named queries read are among those the run filled
    assert {"type", "record", "event", "at", "environmentid", "served", "reason", "functionname", "inittype"} <= seen
