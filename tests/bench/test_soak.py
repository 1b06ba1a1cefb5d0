"""The reliability run's tool (bench/soak, `make soak`): a smoke run of a few hundred invokes in each
RIE mode, so that `make test` proves the tool works end to end without taking minutes, and the
checks it relies on, each shown to fail on the defect it exists to catch."""

from __future__ import annotations

import json

import pytest

from bench.soak import checks, run, telemetry
from bench.soak.readers import list_problems
from tools.local_lambda import EXTENSION, RIE

SMOKE = ["--invokes", "300", "--max-records", "100", "--sample-every", "50", "--full-read-pause-s", "0.05",
         "--reader-pause-ms", "1", "--telemetry-pause-ms", "1",
         # a few hundred invokes say nothing about growth: the full run checks the 5 % target
         "--rss-growth-limit", "1"]  # fmt: skip


@pytest.mark.timeout(120)
@pytest.mark.parametrize("mode", ["managed", "standard"])
def test_smoke_run_passes_every_check(tmp_path, mode, capsys):
    # GIVEN the extension and the RIE that `make test` builds
    if not (EXTENSION.exists() and RIE.exists()):
        pytest.skip("run with `make test` (needs the extension build and the RIE)")
    # WHEN the soak runs 300 invokes into a store of 100 records
    out = tmp_path / "soak.json"
    result = run.main([*SMOKE, "--mode", mode, "--out", str(out)])
    # THEN every check passed, and the results file is what main returned
    failed = [c for c in result["checks"] if not c["ok"]]
    assert result["ok"] and not failed, failed
    assert json.loads(out.read_text()) == json.loads(json.dumps(result))
    final = result["final"]
    assert (final["served"], final["retained"], final["dropped"], final["firstSequence"]) == (300, 100, 200, 201)
    assert final["startedByRie"] == 300
    assert result["readers"]["requests"] > 0 and result["readers"]["errors"] == 0
    assert result["memory"]["growthRss"] is not None and len(result["memory"]["samples"]) >= 7
    names = {c["name"] for c in result["checks"]}
    if mode == "managed":
        # ... every kind of invalid telemetry was sent, and the listener's counters equal the sums
        sent = result["telemetry"]
        assert set(sent["sent"]) == {kind().kind for kind in telemetry.KINDS}
        assert sent["expected"]["rejected"] > 0 and sent["expected"]["invalid"] > 0 and sent["expected"]["unknownIds"] > 0
        assert result["shutdown"]["telemetryInvalid"] == str(sent["expected"]["invalid"])
        assert "shutdown telemetryRejected = sent" in names
    else:
        assert result["telemetry"] is None and "no telemetry listener without a subscription" in names
    assert "OK" in capsys.readouterr().out


# -- the final window -------------------------------------------------------------------------------
def listing(served: int, retained: int, ids: list[str], traces: list[str], **record) -> dict:
    first = served - retained + 1
    records = [{"awsRequestId": i, "sequence": first + n, "traceId": f"{t};Parent=1;Sampled=1", **record}
               for n, (i, t) in enumerate(zip(ids[-retained:], traces[-retained:]))]  # fmt: skip
    return {"invocations": records, "served": served, "retained": retained, "dropped": served - retained}


IDS = [f"id-{n}" for n in range(10)]
TRACES = [checks.trace_root(7, n) for n in range(10)]


def problems(listed: dict, invokes: int = 10, with_telemetry: bool = False, ids=IDS) -> list[str]:
    return checks.window_problems(listed, invoked=ids, traces=TRACES[:invokes], invokes=invokes, max_records=4,
                                  with_telemetry=with_telemetry)  # fmt: skip


def test_window_of_the_last_invokes_passes():
    assert problems(listing(10, 4, IDS, TRACES)) == []
    assert problems(listing(10, 4, IDS, TRACES, status="success", durationMs=1.0), with_telemetry=True) == []


def test_window_with_a_gap_fails():
    listed = listing(10, 4, IDS, TRACES)
    del listed["invocations"][1]
    found = problems(listed)
    assert any("without gaps: 1 missing (first [8])" in p for p in found)
    assert any("3 records listed, retained says 4" in p for p in found)


def test_counters_that_do_not_add_up_fail():
    listed = listing(10, 4, IDS, TRACES)
    listed["dropped"] = 5
    assert any("served 10 != retained 4 + dropped 5" in p for p in problems(listed))


def test_a_record_made_by_something_else_than_an_invoke_fails():
    # an eleventh record (say, from a platform.start the soak sent) shifts the whole window
    found = problems(listing(11, 4, [*IDS, "intruder"], [*TRACES, "Root=x"]))
    assert any("served 11, but the soak invoked 10" in p for p in found)
    assert any("request ids of the window differ" in p for p in found)


def test_records_out_of_order_or_of_another_invoke_fail():
    listed = listing(10, 4, IDS, TRACES)
    records = listed["invocations"]
    records[0]["awsRequestId"], records[1]["awsRequestId"] = records[1]["awsRequestId"], records[0]["awsRequestId"]
    records[2]["traceId"] = TRACES[0]
    found = problems(listed)
    assert any("request ids of the window differ" in p for p in found)
    assert any("1 records without the trace header of their invoke" in p for p in found)


def test_records_without_telemetry_fail_when_telemetry_makes_them():
    listed = listing(10, 4, IDS, TRACES, status="success", durationMs=1.0)
    del listed["invocations"][3]["durationMs"]
    assert any("1 records without telemetry's status and duration" in p for p in problems(listed, with_telemetry=True))


def test_invokes_the_rie_did_not_start_fail():
    assert any("the RIE started 9 invocations" in p for p in problems(listing(10, 4, IDS, TRACES), ids=IDS[1:]))


# -- answers read during the run -----------------------------------------------------------------------
def answer(sequences: list[int], served: int, retained: int, cursor: int | None = None) -> dict:
    return {"invocations": [{"sequence": s} for s in sequences], "served": served, "retained": retained,
            "dropped": served - retained, "cursor": sequences[-1] if cursor is None else cursor}  # fmt: skip


def test_list_answers_within_their_window_pass():
    assert list_problems(answer([7, 8, 9, 10], 10, 4), max_records=4) == ([], 0)
    assert list_problems(answer([9, 10], 10, 4), limit=2, max_records=4) == ([], 0)
    assert list_problems(answer([], 10, 4, cursor=12), after=12, max_records=4) == ([], 0)
    # records evicted while the answer was streamed are counted, not failed
    assert list_problems(answer([9, 10], 10, 4), max_records=4) == ([], 2)


def test_list_answers_breaking_an_invariant_fail():
    assert list_problems(answer([6, 7, 8, 9, 10], 10, 4), max_records=4)[0]  # outside the window
    assert list_problems(answer([8, 7], 10, 4, cursor=10), max_records=4)[0]  # not increasing
    assert list_problems(answer([8, 9], 10, 4), max_records=4)[0]  # cursor is not served
    assert list_problems(answer([7, 8, 9, 10], 10, 4) | {"dropped": 0}, max_records=4)[0]
    assert list_problems(answer([8, 9, 10], 10, 5), max_records=4)[0]  # retained past the bound
    assert list_problems(answer([8, 9, 10], 10, 4), limit=2, max_records=4)[0]


# -- logs ---------------------------------------------------------------------------------------------
LOGS = """\
START RequestId: a1\tVersion: $LATEST
level=INFO msg=ready extension=invocation-history-extension version=0.2.0
START RequestId: b2\tVersion: $LATEST
time=x level=WARN msg="InvokeRouter: no ready runtimes" RequestId=c3
level=WARN msg="invalid configuration, using the default" extension=invocation-history-extension variable=X value=""
level=INFO msg=shutdown extension=invocation-history-extension reason=spindown invocationsServed=2 telemetryInvalid=7
"""


def test_logs_give_the_started_ids_the_summary_and_the_extension_warnings():
    assert checks.started_request_ids(LOGS) == ["a1", "b2"]
    summary_line = checks.shutdown_summary(LOGS)
    assert summary_line["reason"] == "spindown" and summary_line["invocationsServed"] == "2"
    assert summary_line["telemetryInvalid"] == "7"
    assert checks.shutdown_summary("no summary") is None
    # the RIE's own warnings are not the extension's
    assert [w.split(" msg=")[1][:9] for w in checks.extension_warnings(LOGS)] == ['"invalid ']


def test_rss_growth_is_the_largest_value_after_the_store_filled():
    samples = [{"invokes": n, "rss": rss} for n, rss in ((1, 50), (4, 100), (6, 104), (8, 102))]
    assert checks.rss_growth(samples, 4) == pytest.approx(0.04)
    assert checks.rss_growth(samples, 8) is None  # nothing after


def test_rss_trend_tells_a_leak_from_churn():
    leak = [{"invokes": n, "rss": 1000 + n} for n in range(0, 50_000, 1000)]
    churn = [{"invokes": n, "rss": 1000 + (300 if n % 2000 else -300)} for n in range(0, 50_000, 1000)]
    assert checks.rss_trend(leak, 0) == pytest.approx(10_000)
    assert abs(checks.rss_trend(churn, 0)) < 50
    assert checks.rss_trend(leak[:2], 0) is None


# -- the hostile telemetry -------------------------------------------------------------------------------
def test_oversized_bodies_sit_between_the_limit_and_what_the_listener_drains():
    oversized = next(k() for k in telemetry.KINDS if k().kind == "oversized")
    assert telemetry.BODY_LIMIT < len(oversized.body) <= telemetry.BODY_LIMIT + telemetry.DRAIN_BYTES
    chunked = next(k() for k in telemetry.KINDS if k().kind == "oversized-chunked")
    assert telemetry.BODY_LIMIT < sum(map(len, chunked.body)) <= telemetry.BODY_LIMIT + telemetry.DRAIN_BYTES


def test_every_kind_with_a_json_body_has_the_element_counts_it_claims():
    for make in telemetry.KINDS:
        request = make()
        want = request.expected
        if want.rejected or request.raw is not None or not isinstance(request.body, bytes) or not request.body:
            continue
        try:
            elements = json.loads(request.body)
        except RecursionError:  # deep-nesting: deeper than Python's parser goes, by design
            continue
        assert want.invalid + want.ignored + want.events == len(elements), request.kind
        assert want.unknown_ids <= want.events, request.kind
