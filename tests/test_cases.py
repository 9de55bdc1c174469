"""Golden workflows: each case in tests/cases runs in-process and distributed, same result."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from flowcraft_sqs import FlowRuntime
from flowcraft_sqs.blueprint import load_blueprint
from flowcraft_sqs.expressions import DefaultEvaluator
from tests.cases.behaviours import Behaviours
from tests.cases.distributed import run_distributed

CASES = sorted(Path(__file__).parent.joinpath("cases").glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text())


def check_expectations(expect: dict[str, Any], status: str, context: dict[str, Any],
                       reason: str | None, behaviours: Behaviours) -> None:
    assert status == expect["status"], f"status {status!r}, reason {reason!r}"
    for key, value in expect.get("context", {}).items():
        assert context.get(key, "<missing>") == value, f"context[{key!r}]"
    for key in expect.get("present", []):
        assert key in context, f"{key} should be in the context"
    for key in expect.get("absent", []):
        assert key not in context, f"{key} should not be in the context"
    for node_id, count in expect.get("executions", {}).items():
        assert behaviours.executions[node_id] == count, f"executions of {node_id}"
    if "reason" in expect:
        assert reason == expect["reason"]
    if "reason_contains" in expect:
        assert reason is not None and expect["reason_contains"] in reason
    if "sleeps_ms" in expect:
        assert behaviours.sleeps_ms == expect["sleeps_ms"]


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_runs_in_process_as_expected(path: Path) -> None:
    case = _load(path)
    behaviours = Behaviours()
    runtime = FlowRuntime(registry=behaviours.registry, sleep=behaviours.fake_sleep)
    result = runtime.run_sync(case["blueprint"], case["initialContext"])
    check_expectations(case["expect"], result.status, result.context, result.reason, behaviours)


@pytest.mark.parametrize("duplicate", [False, True], ids=["once", "every-message-twice"])
@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_runs_distributed_as_expected(path: Path, duplicate: bool) -> None:
    case = _load(path)
    behaviours = Behaviours()
    evaluator = DefaultEvaluator()
    bp = load_blueprint(case["blueprint"], registry=behaviours.registry, evaluator=evaluator)
    state, statuses = run_distributed(
        bp, behaviours.registry, case["initialContext"], evaluator, duplicate, behaviours.fake_sleep
    )
    check_expectations(case["expect"], state.status, dict(state.context), state.meta.reason, behaviours)
    assert statuses.publish_writes == 1, "the final status is written exactly once"
    assert statuses.items[state.run_id]["status"] == case["expect"]["status"]
