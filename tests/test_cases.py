"""Golden workflows: each case in tests/cases runs in-process and distributed, same result."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest

from flowcraft_sqs import FlowRuntime
from flowcraft_sqs.blueprint import load_blueprint, load_blueprints
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


class FakeClock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


async def run_in_process(case: dict[str, Any], behaviours: Behaviours) -> Any:
    """Run a case to its end: due timers are woken by moving the clock, waits are resumed
    with the case's `resume` steps, in order."""
    clock = FakeClock()
    runtime = FlowRuntime(registry=behaviours.registry, blueprints=case.get("blueprints"),
                          sleep=behaviours.fake_sleep, clock=clock)
    result = await runtime.run(case["blueprint"], case["initialContext"])
    resumes = list(case.get("resume", []))
    while result.status == "awaiting":
        timers = [d["wakeUpAt"] for d in result.awaiting.values() if d.get("reason") == "timer"]
        if timers:
            clock.now = max(clock.now, min(timers))
            result = await runtime.resume_timers(case["blueprint"], result)
        elif resumes:
            step = resumes.pop(0)
            result = await runtime.resume(case["blueprint"], result, node_id=step["node"],
                                          action=step.get("action"), output=step.get("output"))
        else:
            break
    return result


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_runs_in_process_as_expected(path: Path) -> None:
    case = _load(path)
    behaviours = Behaviours()
    result = asyncio.run(asyncio.wait_for(run_in_process(case, behaviours), 30))
    check_expectations(case["expect"], result.status, result.context, result.reason, behaviours)


@pytest.mark.parametrize("duplicate", [False, True], ids=["once", "every-message-twice"])
@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_case_runs_distributed_as_expected(path: Path, duplicate: bool) -> None:
    case = _load(path)
    behaviours = Behaviours()
    evaluator = DefaultEvaluator()
    bp = load_blueprint(case["blueprint"], registry=behaviours.registry, evaluator=evaluator)
    children = load_blueprints(case.get("blueprints", {}), registry=behaviours.registry, evaluator=evaluator)
    state, statuses = run_distributed(
        bp, behaviours.registry, case["initialContext"], evaluator, duplicate, behaviours.fake_sleep,
        children=children, resumes=case.get("resume", []),
    )
    check_expectations(case["expect"], state.status, dict(state.context), state.meta.reason, behaviours)
    child_runs = sum(1 for run_id in statuses.items if run_id.startswith(state.run_id + ":"))
    assert statuses.publish_writes == 1 + child_runs, "each run's final status is written exactly once"
    assert statuses.items[state.run_id]["status"] == case["expect"]["status"]
