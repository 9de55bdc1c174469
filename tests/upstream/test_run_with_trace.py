"""Port of upstream packages/core/test/testing/run-with-trace.test.ts (runWithTrace)."""

from __future__ import annotations

import asyncio
import io
import json
from typing import Any

import pytest

from flowcraft_sqs import FlowRuntime, create_flow
from flowcraft_sqs.testing import InMemoryEventLogger, run_with_trace_sync


def trace(flow: Any, initial: Any = None, runtime: FlowRuntime | None = None, **options: Any) -> tuple[Any, str]:
    out = io.StringIO()
    result = run_with_trace_sync(runtime or FlowRuntime(), flow.to_blueprint(), initial,
                                 registry=flow.registry, file=out, **options)
    return result, out.getvalue()


@pytest.fixture(autouse=True)
def no_debug(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DEBUG", raising=False)


def test_a_successful_run_returns_its_result_and_prints_nothing() -> None:
    flow = create_flow("trace-success").node("A", lambda c: {"output": "hello"})
    flow.node("B", lambda c: {"output": f"{c.input}-world"}).edge("A", "B")
    result, printed = trace(flow)
    assert result.status == "completed"
    assert result.context["_outputs.B"] == "hello-world"
    assert printed == ""


def test_a_failed_run_is_returned_and_its_trace_printed() -> None:
    def fail(ctx: Any) -> None:
        raise RuntimeError("Intentional failure")

    result, printed = trace(create_flow("trace-fail").node("A", fail))
    assert result.status == "failed"
    assert result.errors
    assert "--- Failing Test Trace: trace-fail ---" in printed
    assert "Error: Node 'A' failed: Intentional failure" in printed


def test_with_debug_set_a_successful_trace_is_printed_too(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("DEBUG", "1")
    result, printed = trace(create_flow("trace-debug").node("A", lambda c: {"output": "debug-test"}))
    assert result.status == "completed"
    assert "Successful Trace: trace-debug" in printed


def test_the_initial_context_reaches_the_nodes() -> None:
    flow = create_flow("trace-state").node("A", lambda c: {"output": c.context.get_sync("initialValue")})
    result, _ = trace(flow, {"initialValue": "test-value"})
    assert result.context["_outputs.A"] == "test-value"


def test_a_serialized_initial_context_is_accepted() -> None:
    flow = create_flow("trace-serialized").node("A", lambda c: {"output": c.context.get_sync("initialValue")})
    result, _ = trace(flow, json.dumps({"initialValue": "serialized-value"}))
    assert result.context["_outputs.A"] == "serialized-value"


def test_the_signal_option_reaches_the_nodes() -> None:
    flow = create_flow("trace-signal").node(
        "A", lambda c: {"output": "has-signal" if c.signal is not None else "no-signal"})
    result, _ = trace(flow, signal=asyncio.Event())  # an unset Event: a signal never raised
    assert result.context["_outputs.A"] == "has-signal"


def test_the_registry_option_adds_the_flows_implementations() -> None:
    # Upstream's `strict` and `functionRegistry` options: ours has no strict mode, and the
    # builder's registry is passed as `registry=`.
    result, _ = trace(create_flow("trace-registry").node("A", lambda c: {"output": "registry-test"}))
    assert result.context["_outputs.A"] == "registry-test"


def test_a_longer_workflow_with_context_writes_is_traced() -> None:
    def init(ctx: Any) -> dict[str, Any]:
        ctx.context.set_sync("counter", 0)
        return {"output": "init"}

    def process(ctx: Any) -> dict[str, Any]:
        counter = ctx.context.get_sync("counter") + 1
        ctx.context.set_sync("counter", counter)
        return {"output": f"{ctx.input}-{counter}"}

    def finalize(ctx: Any) -> dict[str, Any]:
        return {"output": f"{ctx.input}-final-{ctx.context.get_sync('counter')}"}

    flow = (create_flow("trace-complex").node("init", init).node("process", process).node("finalize", finalize)
            .edge("init", "process").edge("process", "finalize"))
    result, _ = trace(flow)
    assert result.context["counter"] == 1
    assert result.context["_outputs.finalize"] == "init-1-final-1"


# --- ours ---------------------------------------------------------------------------------


def test_the_runtime_keeps_its_options_and_its_own_bus_still_hears_every_event() -> None:
    own = InMemoryEventLogger()
    runtime = FlowRuntime(dependencies={"greeting": "hi"}, event_bus=own)
    flow = create_flow("deps").node("A", lambda c: {"output": c.dependencies["greeting"]})
    logger = InMemoryEventLogger()
    result = run_with_trace_sync(runtime, flow.to_blueprint(), registry=flow.registry, logger=logger,
                                 file=io.StringIO())
    assert result.context["_outputs.A"] == "hi"
    assert logger.types() == own.types()
    assert "node:finish" in logger.types()


def test_an_exception_from_the_run_prints_the_trace_and_propagates() -> None:
    out = io.StringIO()
    with pytest.raises(Exception, match="no implementation registered"):
        run_with_trace_sync(FlowRuntime(), {"id": "broken", "nodes": [{"id": "A", "uses": "missing"}]}, file=out)
