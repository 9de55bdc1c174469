"""Port of upstream packages/core/test/testing/event-logger.test.ts (InMemoryEventLogger)."""

from __future__ import annotations

import asyncio
import io

from flowcraft_sqs import FlowRuntime, create_flow
from flowcraft_sqs.errors import FlowcraftError
from flowcraft_sqs.events import FlowcraftEvent, emit, emit_sync
from flowcraft_sqs.testing import InMemoryEventLogger


def event(type_: str, **payload: object) -> FlowcraftEvent:
    return FlowcraftEvent(type_, {"blueprintId": "test", "executionId": "exec-1", **payload})


def printed(logger: InMemoryEventLogger, *title: str) -> list[str]:
    out = io.StringIO()
    logger.print_log(*title, file=out)
    return out.getvalue().split("\n")


def test_emit_captures_the_event_itself() -> None:
    logger = InMemoryEventLogger()
    start = event("workflow:start")
    logger.emit(start)
    assert logger.events == [start]
    assert logger.events[0] is start


def test_clear_forgets_every_event() -> None:
    logger = InMemoryEventLogger()
    logger.events.extend([event("workflow:start"), event("node:start", nodeId="A", input={})])
    logger.clear()
    assert logger.events == []


def test_find_returns_the_first_event_of_a_type() -> None:
    logger = InMemoryEventLogger()
    for e in (event("workflow:start"), event("node:start", nodeId="A"), event("node:finish", nodeId="A")):
        logger.emit(e)
    found = logger.find("node:start")
    assert found is not None
    assert found.type == "node:start"


def test_find_without_a_match_returns_none() -> None:
    logger = InMemoryEventLogger()
    logger.emit(event("workflow:start"))
    assert logger.find("node:error") is None


def test_filter_returns_every_event_of_a_type_in_order() -> None:
    logger = InMemoryEventLogger()
    for e in (event("workflow:start"), event("node:start", nodeId="A"), event("node:start", nodeId="B"),
              event("node:finish", nodeId="A")):
        logger.emit(e)
    assert [e.payload["nodeId"] for e in logger.filter("node:start")] == ["A", "B"]


def test_filter_without_a_match_returns_an_empty_list() -> None:
    logger = InMemoryEventLogger()
    logger.emit(event("workflow:start"))
    assert logger.filter("node:error") == []


def test_print_log_of_no_events_says_so() -> None:
    lines = printed(InMemoryEventLogger(), "Empty Trace")
    assert "--- Empty Trace ---" in lines
    assert "No events were captured." in lines


def test_print_log_numbers_every_event() -> None:
    logger = InMemoryEventLogger()
    for e in (event("workflow:start"), event("node:start", nodeId="A", input={"x": 1}),
              event("node:finish", nodeId="A", result={"output": 1}),
              event("workflow:finish", status="completed", errors=[])):
        logger.emit(e)
    lines = printed(logger, "Test Trace")
    for line in ("--- Test Trace ---", "[1] workflow:start", "[2] node:start", "[3] node:finish",
                 "[4] workflow:finish"):
        assert line in lines
    assert '  - Node: "A" | Input: {"x": 1}' in lines


def test_print_log_describes_edge_evaluations() -> None:
    logger = InMemoryEventLogger()
    logger.emit(FlowcraftEvent("edge:evaluate", {"source": "A", "target": "B", "condition": "x > 0", "result": True}))
    lines = printed(logger)
    assert '  - Edge: "A" -> "B"' in lines
    assert "  - Condition: x > 0 | Result: true" in lines


def test_print_log_describes_a_context_write() -> None:
    logger = InMemoryEventLogger()
    logger.emit(event("context:change", op="set", key="myKey", value="myValue", sourceNode="A"))
    assert '  - Node "A" wrote to context -> Key: "myKey" | Value: "myValue"' in printed(logger)


def test_print_log_describes_a_context_delete() -> None:
    logger = InMemoryEventLogger()
    logger.emit(event("context:change", op="delete", key="myKey", sourceNode="A"))
    assert '  - Node "A" deleted from context -> Key: "myKey"' in printed(logger)


def test_print_log_describes_a_node_error() -> None:
    # Upstream prints the error on stderr; ours keeps the whole trace in one stream.
    logger = InMemoryEventLogger()
    logger.emit(event("node:error", nodeId="A", error=FlowcraftError("Test error")))
    lines = printed(logger)
    assert '  - Node: "A"' in lines
    assert "  - Error: Test error" in lines


def test_print_log_shows_the_payload_of_other_events() -> None:
    logger = InMemoryEventLogger()
    logger.emit(FlowcraftEvent("custom:event", {"custom": "data"}))
    text = "\n".join(printed(logger))
    assert "custom:event" in text
    assert '"custom": "data"' in text


def test_the_same_event_emitted_three_times_is_kept_three_times() -> None:
    logger = InMemoryEventLogger()
    start = event("node:start", nodeId="A")
    for _ in range(3):
        logger.emit(start)
    assert len(logger.events) == 3


# --- ours ---------------------------------------------------------------------------------


def test_it_serves_as_the_bus_of_async_and_sync_emitters() -> None:
    logger = InMemoryEventLogger()
    asyncio.run(emit(logger, "workflow:start", {"executionId": "r"}))
    emit_sync(logger, "workflow:finish", {"executionId": "r"})
    assert logger.types() == ["workflow:start", "workflow:finish"]


def test_it_records_a_real_run_and_answers_per_node() -> None:
    flow = create_flow("pair").node("A", lambda c: {"output": 1}).node("B", lambda c: {"output": c.input + 1})
    flow.edge("A", "B")
    logger = InMemoryEventLogger()
    result = FlowRuntime(registry=flow.registry, event_bus=logger).run_sync(flow.to_blueprint())
    assert result.status == "completed"
    assert [e.type for e in logger.for_node("B")] == ["node:start", "node:finish"]
    finish = logger.filter("node:finish")[-1]
    assert finish.payload["result"]["output"] == 2
    assert logger.find("workflow:finish").payload["status"] == "completed"  # type: ignore[union-attr]
