"""Rewrites upstream Flowcraft's packages/core/test/runtime/hitl.test.ts (human in the loop: wait and resume)."""

from __future__ import annotations

import asyncio
import json
from typing import Any

from flowcraft_sqs import FlowRuntime


def value_of_input(ctx: Any) -> dict[str, Any]:
    return {"output": {"value": ctx.input}}


def run(runtime: FlowRuntime, bp: dict[str, Any], context: dict[str, Any]) -> Any:
    return asyncio.run(asyncio.wait_for(runtime.run(bp, context), 10))


def resume(runtime: FlowRuntime, bp: dict[str, Any], result: Any, node_id: str, output: Any) -> Any:
    # Ours resumes from the returned result (upstream: from its serialized context).
    return asyncio.run(asyncio.wait_for(runtime.resume(bp, result, node_id=node_id, output=output), 10))


APPROVAL = {
    "id": "approval-workflow",
    "nodes": [{"id": "start", "uses": "start", "inputs": "input"}, {"id": "wait-for-approval", "uses": "wait"}],
    "edges": [{"source": "start", "target": "wait-for-approval"}],
}


def test_a_run_pauses_at_a_wait_node() -> None:
    runtime = FlowRuntime(registry={"start": value_of_input})
    result = run(runtime, APPROVAL, {"input": 42})
    assert result.status == "awaiting"
    assert result.context["input"] == 42
    # Ours: what waits is in `result.awaiting` (upstream: `_awaitingNodeIds` in the context).
    assert list(result.awaiting) == ["wait-for-approval"]


def test_the_awaiting_state_serializes_with_the_run() -> None:
    runtime = FlowRuntime(registry={"start": value_of_input})
    result = run(runtime, APPROVAL, {"input": 42})
    assert result.state is not None
    stored = json.loads(json.dumps({"context": result.context, "meta": result.state.meta.to_json()}))
    assert list(stored["meta"]["aw"]) == ["wait-for-approval"]
    assert stored["context"]["_outputs.start"] == {"value": 42}


def test_sequential_waits_are_resumed_one_after_the_other() -> None:
    bp = {
        "id": "multi-wait-workflow",
        "nodes": [{"id": "start", "uses": "start", "inputs": "input"}, {"id": "wait1", "uses": "wait"},
                  {"id": "wait2", "uses": "wait"}, {"id": "end", "uses": "end", "inputs": "_outputs.start"}],
        "edges": [{"source": "start", "target": "wait1"}, {"source": "wait1", "target": "wait2"},
                  {"source": "wait2", "target": "end"}],
    }
    runtime = FlowRuntime(registry={"start": value_of_input,
                                    "end": lambda ctx: {"output": {"final": ctx.input["value"] + 10}}})
    first = run(runtime, bp, {"input": 42})
    assert first.status == "awaiting"
    assert list(first.awaiting) == ["wait1"]
    second = resume(runtime, bp, first, "wait1", {"value": 42})
    assert second.status == "awaiting"
    assert list(second.awaiting) == ["wait2"]
    third = resume(runtime, bp, second, "wait2", {"value": 42})
    assert third.status == "completed"
    assert third.context["_outputs.end"]["final"] == 52


def test_a_wait_inside_a_subflow_pauses_the_parent_and_resumes_through_it() -> None:
    sub = {
        "id": "sub-approval-workflow",
        "nodes": [{"id": "sub-start", "uses": "sub-start", "inputs": "input"}, {"id": "sub-wait", "uses": "wait"},
                  {"id": "sub-end", "uses": "sub-end", "inputs": "_outputs.sub-start"}],
        "edges": [{"source": "sub-start", "target": "sub-wait"}, {"source": "sub-wait", "target": "sub-end"}],
    }
    main = {
        "id": "main-workflow",
        "nodes": [{"id": "main-start", "uses": "main-start", "inputs": "input"},
                  {"id": "subflow", "uses": "subflow",
                   "params": {"blueprintId": "sub-approval-workflow", "inputs": {"input": "main-start"}}},
                  {"id": "main-end", "uses": "main-end"}],
        "edges": [{"source": "main-start", "target": "subflow"}, {"source": "subflow", "target": "main-end"}],
    }
    registry = {
        "sub-start": value_of_input,
        "sub-end": lambda ctx: {"output": {"subFinal": ctx.input["value"]["value"] + 5}},
        "main-start": value_of_input,
        "main-end": lambda ctx: {"output": {"final": ctx.input["subFinal"] + 10}},
    }
    runtime = FlowRuntime(registry=registry, blueprints={"sub-approval-workflow": sub})
    first = run(runtime, main, {"input": 42})
    assert first.status == "awaiting"
    assert list(first.awaiting) == ["subflow"]
    second = resume(runtime, main, first, "subflow", {"value": 42})
    assert second.status == "completed", second.reason
    assert second.context["_outputs.main-end"]["final"] == 57  # 42 + 5 + 10


def test_concurrent_waits_are_resumed_independently() -> None:
    bp = {
        "id": "concurrent-wait-workflow",
        "nodes": [
            {"id": "start", "uses": "start", "inputs": "input"},
            {"id": "wait1", "uses": "wait"},
            {"id": "process1", "uses": "process1", "inputs": "_outputs.start"},
            {"id": "wait2", "uses": "wait"},
            {"id": "process2", "uses": "process2", "inputs": "_outputs.start"},
            {"id": "gather", "uses": "gather", "inputs": {"result1": "_outputs.process1", "result2": "_outputs.process2"}},
        ],
        "edges": [
            {"source": "start", "target": "wait1"}, {"source": "wait1", "target": "process1"},
            {"source": "start", "target": "wait2"}, {"source": "wait2", "target": "process2"},
            {"source": "process1", "target": "gather"}, {"source": "process2", "target": "gather"},
        ],
    }
    registry = {
        "start": value_of_input,
        "process1": lambda ctx: {"output": {"result1": f"Branch 1: {ctx.input['value']}"}},
        "process2": lambda ctx: {"output": {"result2": f"Branch 2: {ctx.input['value']}"}},
        "gather": lambda ctx: {"output": {"combined": f"Results: {ctx.input['result1']['result1']}, "
                                                     f"{ctx.input['result2']['result2']}"}},
    }
    runtime = FlowRuntime(registry=registry)
    first = run(runtime, bp, {"input": 42})
    assert first.status == "awaiting"
    assert sorted(first.awaiting) == ["wait1", "wait2"]
    second = resume(runtime, bp, first, "wait1", {"value": 42})
    assert second.status == "awaiting"
    assert list(second.awaiting) == ["wait2"]
    third = resume(runtime, bp, second, "wait2", {"value": 42})
    assert third.status == "completed"
    assert third.context["_outputs.gather"]["combined"] == "Results: Branch 1: 42, Branch 2: 42"
