"""Port of upstream packages/core/test/runtime/replay.test.ts (replaying a run from its events)."""

from __future__ import annotations

import random
from typing import Any

from flowcraft_sqs import FlowRuntime, create_flow
from flowcraft_sqs.events import FlowcraftEvent
from flowcraft_sqs.replay import replay
from flowcraft_sqs.testing import InMemoryEventLogger


def recorded(flow: Any, initial: dict[str, Any] | None = None, blueprint: Any = None) -> tuple[Any, list[Any]]:
    """Run `flow` with an event logger (upstream: a persistent event store) and return both."""
    logger = InMemoryEventLogger()
    result = FlowRuntime(registry=flow.registry, event_bus=logger).run_sync(blueprint or flow.to_blueprint(), initial)
    return result, logger.events


def test_a_linear_run_replays_to_the_same_context() -> None:
    flow = create_flow("simple-replay").node("start", lambda c: {"output": "hello"})
    flow.node("process", lambda c: {"output": f"{c.input} world"}).edge("start", "process")
    result, events = recorded(flow)
    assert result.status == "completed"
    assert result.context["_outputs.process"] == "hello world"
    assert any(e.type == "workflow:start" for e in events) and any(e.type == "node:finish" for e in events)
    again = replay(flow.to_blueprint(), events, result.run_id)
    assert again.status == "completed"
    assert again.context == result.context


def test_a_run_with_an_action_branch_replays_the_branch_it_took() -> None:
    flow = (create_flow("conditional-replay").node("decider", lambda c: {"output": {"value": 75}, "action": "high"})
            .node("high-path", lambda c: {"output": "high-priority"}).node("low-path", lambda c: {"output": "low"})
            .edge("decider", "high-path", action="high").edge("decider", "low-path", action="low"))
    result, events = recorded(flow)
    again = replay(flow.to_blueprint(), events, result.run_id)
    assert again.context["_outputs.decider"] == {"value": 75}
    assert again.context["_outputs.high-path"] == "high-priority"
    assert "_outputs.low-path" not in again.context


def test_context_writes_of_nodes_are_replayed() -> None:
    def setup(ctx: Any) -> dict[str, Any]:
        ctx.context.set_sync("user", {"id": 123, "name": "Alice"})
        ctx.context.set_sync("items", [])
        return {"output": "setup"}

    def process(ctx: Any) -> dict[str, Any]:
        items = ctx.context.get_sync("items") + [{"id": 1, "owner": ctx.context.get_sync("user")["id"]}]
        ctx.context.set_sync("items", items)
        ctx.context.set_sync("processed", True)
        return {"output": "processed"}

    flow = create_flow("context-reconstruction").node("setup", setup).node("process", process).edge("setup", "process")
    result, events = recorded(flow)
    again = replay(flow.to_blueprint(), events, result.run_id)
    assert again.context["user"]["name"] == "Alice"
    assert len(again.context["items"]) == 1
    assert again.context["processed"] is True


def test_a_set_then_delete_replays_to_the_key_being_absent() -> None:
    def modify(ctx: Any) -> dict[str, Any]:
        ctx.context.set_sync("temp", "temporary value")
        ctx.context.set_sync("permanent", "kept value")
        ctx.context.delete_sync("temp")
        return {"output": "done"}

    flow = create_flow("delete-flow").node("modify-context", modify)
    result, events = recorded(flow)
    again = replay(flow.to_blueprint(), events, result.run_id)
    assert again.context["permanent"] == "kept value"
    assert "temp" not in again.context
    assert again.context == result.context


def test_a_failed_run_replays_its_outputs_and_reports_its_failure() -> None:
    def failing(ctx: Any) -> None:
        raise RuntimeError("Test error")

    flow = create_flow("error-replay").node("working", lambda c: {"output": "working"}).node("failing", failing)
    result, events = recorded(flow.edge("working", "failing"))
    assert result.status == "failed"
    again = replay(flow.to_blueprint(), events, result.run_id)
    # Upstream's replay always answers `completed`; ours reports the status the log recorded.
    assert again.status == "failed"
    assert again.context["_outputs.working"] == "working"
    assert [e.node_id for e in again.errors] == ["failing"]


def test_a_fallback_run_replays_the_fallbacks_output_for_the_primary() -> None:
    def unreliable(ctx: Any) -> None:
        raise RuntimeError("Primary failed")

    flow = create_flow("fallback-flow").node("unreliable", unreliable, config={"fallback": "fallback-handler"})
    flow.node("fallback-handler", lambda c: {"output": "fallback result"})
    result, events = recorded(flow)
    again = replay(flow.to_blueprint(), events, result.run_id)
    assert again.status == "completed"
    assert again.context["_outputs.unreliable"] == "fallback result"
    assert again.context == result.context


def test_a_run_with_retries_replays_to_the_same_context() -> None:
    attempts = []

    def flaky(ctx: Any) -> dict[str, Any]:
        attempts.append(1)
        if len(attempts) < 2:
            raise RuntimeError("Temporary failure")
        return {"output": "success"}

    flow = create_flow("retry-flow").node("flaky", flaky, config={"maxRetries": 2})
    result, events = recorded(flow)
    assert any(e.type == "node:retry" for e in events)
    again = replay(flow.to_blueprint(), events, result.run_id)
    assert again.context == result.context


def test_a_waiting_run_replays_its_outputs_so_far() -> None:
    flow = create_flow("stall-flow").node("start", lambda c: {"output": "start"}).wait("approve").edge("start", "approve")
    result, events = recorded(flow)
    assert result.status == "awaiting"
    again = replay(flow.to_blueprint(), events, result.run_id)
    # Upstream answers `completed` here too; the log says the run paused.
    assert again.status == "awaiting"
    assert again.context == result.context


def test_a_batch_run_replays_its_gathered_results() -> None:
    flow = create_flow("batch-flow").batch("process-batch", lambda c: {"output": c.input.upper()},
                                           input_key="items", output_key="results")
    result, events = recorded(flow, {"items": ["hello", "world"]})
    again = replay(flow.to_blueprint(), events, result.run_id, initial_context={"items": ["hello", "world"]})
    assert again.context["results"] == ["HELLO", "WORLD"]
    assert again.context == result.context


def test_a_run_with_conditional_edges_replays_to_the_same_context() -> None:
    flow = (create_flow("conditional-flow").node("check", lambda c: {"output": True})
            .node("true-path", lambda c: {"output": "taken"}).node("false-path", lambda c: {"output": "not taken"})
            .edge("check", "true-path", condition="result.output === true")
            .edge("check", "false-path", condition="result.output === false"))
    result, events = recorded(flow)
    assert result.context["_outputs.true-path"] == "taken"
    assert replay(flow.to_blueprint(), events, result.run_id).context == result.context


def test_events_of_other_runs_are_ignored() -> None:
    flow = create_flow("filter-test").node("simple", lambda c: {"output": "test"})
    result, events = recorded(flow)
    events.append(FlowcraftEvent("context:change", {"executionId": "different", "key": "x", "op": "set", "value": 1}))
    assert replay(flow.to_blueprint(), events, result.run_id).context == result.context


def test_unknown_event_kinds_are_ignored() -> None:
    flow = create_flow("unknown-event-flow").node("simple", lambda c: {"output": "test"})
    result, events = recorded(flow)
    events.append(FlowcraftEvent("unknown:event", {"executionId": result.run_id, "someData": "test"}))
    assert replay(flow.to_blueprint(), events, result.run_id).context == result.context


def test_an_empty_log_replays_to_an_empty_completed_run() -> None:
    again = replay(create_flow("empty-events").node("test", lambda c: {}).to_blueprint(), [], "test-execution-id")
    assert again.status == "completed"
    assert again.context == {}


def test_replaying_the_same_log_many_times_gives_the_same_answer() -> None:
    def shared(ctx: Any) -> dict[str, Any]:
        ctx.context.set_sync("shared_value", random.random())
        return {"output": "shared"}

    flow = create_flow("concurrent-replay").node("shared", shared)
    result, events = recorded(flow)
    answers = [replay(flow.to_blueprint(), events, result.run_id) for _ in range(5)]
    assert all(a.context == result.context for a in answers)


def test_upstream_style_logs_without_context_changes_still_give_outputs() -> None:
    events = [
        FlowcraftEvent("context:change", {"sourceNode": "init", "key": "sharedData", "op": "set",
                                          "value": "preserved", "executionId": "orig"}),
        FlowcraftEvent("node:finish", {"nodeId": "A", "result": {"output": "a"}, "executionId": "orig"}),
        {"type": "node:finish", "payload": {"nodeId": "B", "result": {"output": "b"}, "executionId": "orig"}},
    ]
    again = replay({"id": "chain"}, events, "orig")
    assert again.context == {"sharedData": "preserved", "_outputs.A": "a", "_outputs.B": "b"}


# Upstream's `replayFrom` (re-run the workflow from a node, ancestors pre-populated from the
# log) has no counterpart here yet, so its cases are left out.
