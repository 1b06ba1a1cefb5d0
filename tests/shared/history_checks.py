"""Checks of what a sample function answers, shared by the local (RIE) and integration tests.

`invoke(payload) -> dict` returns the sample function's decoded answer, wherever it runs.
"""

from __future__ import annotations

from datetime import datetime
from typing import Callable

Invoke = Callable[[dict], dict]


def _ids(answer: dict) -> list[str]:
    return [r["awsRequestId"] for r in answer["invocations"]]


def check_answer(answer: dict) -> None:
    """One answer: the current invocation is the newest record, fields are well formed, the
    environment's counters agree with the list."""
    assert "extensionError" not in answer, answer.get("extensionError")
    records = answer["invocations"]
    assert records, "the history is empty: the current invocation is missing"
    assert records[-1]["awsRequestId"] == answer["requestId"], "the current invocation is not the newest record"
    for earlier, later in zip(records, records[1:]):
        assert later["sequence"] == earlier["sequence"] + 1, f"sequences not contiguous: {earlier} then {later}"
    times = [datetime.fromisoformat(r["invocatedAt"].replace("Z", "+00:00")) for r in records]
    assert all(t.utcoffset().total_seconds() == 0 for t in times), "invocatedAt is not UTC"
    assert times == sorted(times), "invocatedAt is not non-decreasing"
    for r in records:
        assert r["coldStart"] == (r["sequence"] == 1), f"coldStart wrong for {r}"
    counts = answer["environment"]["counts"]
    assert counts["served"] == records[-1]["sequence"], (counts, records[-1])
    assert counts["retained"] == len(records), (counts, len(records))
    assert counts["served"] == counts["retained"] + counts["dropped"], counts


def check_history_grows(invoke: Invoke, times: int = 3, *, fresh: bool = False) -> list[dict]:
    """Invoke `times` times in a row. Each answer must list every earlier request id of the same
    environment, in order, plus its own: exactly one more record than the answer before.

    With fresh=True (a new local environment) the history must contain exactly these invocations.
    A deployed function may serve the run from more than one environment; the growth is then
    checked per environment.
    """
    answers = []
    previous_by_environment: dict[str, list[str]] = {}
    for _ in range(times):
        answer = invoke({})
        check_answer(answer)
        environment_id = answer["environment"]["environmentId"]
        ids = _ids(answer)
        before = previous_by_environment.get(environment_id)
        if before is not None and answer["environment"]["counts"]["dropped"] == 0:
            assert ids == before + [answer["requestId"]], f"history did not grow by exactly one: {before} -> {ids}"
        previous_by_environment[environment_id] = ids
        answers.append(answer)
    if fresh:
        assert len(previous_by_environment) == 1, "a fresh local environment changed identity"
        assert _ids(answers[-1]) == [a["requestId"] for a in answers]
        assert answers[0]["invocations"][0]["coldStart"] is True
    return answers
