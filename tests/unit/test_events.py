"""Workflow events from the in-process runtime and the distributed engine."""

from __future__ import annotations

from typing import Any

from flowcraft_sqs import FlowRuntime
from flowcraft_sqs.blueprint import load_blueprint
from flowcraft_sqs.events import FlowcraftEvent
from flowcraft_sqs.expressions import DefaultEvaluator
from tests.cases.distributed import run_distributed


class RecordingBus:
    def __init__(self) -> None:
        self.events: list[FlowcraftEvent] = []

    def emit(self, event: FlowcraftEvent) -> None:
        self.events.append(event)

    def types(self) -> list[str]:
        return [e.type for e in self.events]

    def of(self, type_: str) -> list[dict[str, Any]]:
        return [dict(e.payload) for e in self.events if e.type == type_]


class AsyncBus(RecordingBus):
    async def emit(self, event: FlowcraftEvent) -> None:  # type: ignore[override]
        self.events.append(event)


def const(ctx: Any) -> dict[str, Any]:
    return {"output": ctx.params.get("value")}


ROUTED = {
    "id": "routed",
    "nodes": [
        {"id": "A", "uses": "const", "params": {"value": 3}},
        {"id": "B", "uses": "const", "params": {"value": "big"}},
        {"id": "C", "uses": "const", "params": {"value": "small"}},
    ],
    "edges": [
        {"source": "A", "target": "B", "condition": "result.output > 2"},
        {"source": "A", "target": "C", "condition": "result.output <= 2"},
    ],
}


def test_a_runtime_without_options_has_a_logger_and_the_builtins() -> None:
    runtime = FlowRuntime()
    assert runtime.logger is not None
    for uses in ("wait", "sleep", "subflow", "batch-scatter", "batch-gather", "loop-controller"):
        assert uses in runtime.registry


def test_a_function_node_gets_the_logger_among_its_dependencies() -> None:
    seen: list[Any] = []

    def look(ctx: Any) -> None:
        seen.append(ctx.dependencies.get("logger"))

    runtime = FlowRuntime(registry={"look": look})
    runtime.run_sync({"id": "one", "nodes": [{"id": "a", "uses": "look"}]})
    assert seen == [runtime.logger]


def test_the_in_process_runtime_reports_the_run_its_nodes_and_its_edges() -> None:
    bus = RecordingBus()
    result = FlowRuntime(registry={"const": const}, event_bus=bus).run_sync(ROUTED)
    types = bus.types()
    assert types[:2] == ["workflow:start", "workflow:resume"]
    assert types[-1] == "workflow:finish"
    assert [p["nodeId"] for p in bus.of("node:start")] == ["A", "B"]
    assert bus.of("node:finish")[0]["result"] == {"output": 3, "action": None}
    evaluated = {(p["target"], p["result"]) for p in bus.of("edge:evaluate")}
    assert evaluated == {("B", True), ("C", False)}
    assert bus.of("node:skipped")[0]["edge"]["target"] == "C"
    assert {"key": "_outputs.A", "op": "set", "value": 3}.items() <= bus.of("context:change")[0].items()
    for event in bus.events:
        assert event.payload["executionId"] == result.run_id
        assert event.payload["blueprintId"] == "routed"
    assert bus.of("workflow:finish")[0]["status"] == "completed"


def test_an_async_bus_is_awaited() -> None:
    bus = AsyncBus()
    FlowRuntime(registry={"const": const}, event_bus=bus).run_sync(ROUTED)
    assert "workflow:finish" in bus.types()


def test_retries_and_errors_are_reported() -> None:
    calls = {"n": 0}

    def flaky(ctx: Any) -> None:
        calls["n"] += 1
        raise RuntimeError("always")

    bus = RecordingBus()
    bp = {"id": "f", "nodes": [{"id": "x", "uses": "flaky", "config": {"maxRetries": 3}}]}
    result = FlowRuntime(registry={"flaky": flaky}, event_bus=bus).run_sync(bp)
    assert result.status == "failed"
    assert [p["attempt"] for p in bus.of("node:retry")] == [1, 2]
    assert bus.of("node:error")[0]["nodeId"] == "x"
    assert bus.of("workflow:finish")[0]["errors"][0]["message"] == result.reason


def test_a_fallback_is_reported() -> None:
    def boom(ctx: Any) -> None:
        raise RuntimeError("no")

    bus = RecordingBus()
    bp = {"id": "fb", "nodes": [{"id": "x", "uses": "boom", "config": {"fallback": "y"}},
                                {"id": "y", "uses": "const", "params": {"value": 1}}]}
    FlowRuntime(registry={"boom": boom, "const": const}, event_bus=bus).run_sync(bp)
    assert bus.of("node:fallback")[0] == {"executionId": bus.events[0].payload["executionId"],
                                          "blueprintId": "fb", "nodeId": "x", "fallback": "y"}


def test_a_wait_pauses_with_a_pause_event() -> None:
    bus = RecordingBus()
    bp = {"id": "w", "nodes": [{"id": "w", "uses": "wait"}]}
    result = FlowRuntime(event_bus=bus).run_sync(bp)
    assert result.status == "awaiting"
    assert bus.types()[-1] == "workflow:pause"


def test_a_bus_that_raises_never_fails_the_run() -> None:
    class Broken:
        def emit(self, event: FlowcraftEvent) -> None:
            raise RuntimeError("bus down")

    result = FlowRuntime(registry={"const": const}, event_bus=Broken()).run_sync(ROUTED)
    assert result.status == "completed"


def test_the_distributed_engine_reports_the_same_node_events() -> None:
    bus = RecordingBus()
    evaluator = DefaultEvaluator()
    registry = {"const": const}
    bp = load_blueprint(ROUTED, registry=registry, evaluator=evaluator)
    state, _ = run_distributed(bp, registry, {}, evaluator, event_bus=bus)
    assert state.status == "completed"
    assert bus.types()[0] == "workflow:start"
    assert [p["nodeId"] for p in bus.of("node:start")] == ["A", "B"]
    assert [p["nodeId"] for p in bus.of("node:finish")] == ["A", "B"]
    assert {(p["target"], p["result"]) for p in bus.of("edge:evaluate")} == {("B", True), ("C", False)}
    assert bus.of("workflow:finish") == [{"executionId": state.run_id, "blueprintId": "routed", "status": "completed"}]


def test_an_engine_without_a_bus_reports_nothing_and_runs_as_before() -> None:
    evaluator = DefaultEvaluator()
    registry = {"const": const}
    bp = load_blueprint(ROUTED, registry=registry, evaluator=evaluator)
    state, _ = run_distributed(bp, registry, {}, evaluator)
    assert state.status == "completed"


def test_an_app_module_may_supply_an_event_bus(tmp_path: Any, monkeypatch: Any) -> None:
    from flowcraft_sqs.app import load_app

    (tmp_path / "bus_app.py").write_text(
        "class Bus:\n    def emit(self, event):\n        pass\n\n"
        "registry = {'c': lambda ctx: None}\n"
        "blueprints = {'b': {'id': 'b', 'nodes': [{'id': 'n', 'uses': 'c'}]}}\n"
        "event_bus = Bus()\n"
    )
    monkeypatch.syspath_prepend(str(tmp_path))
    app = load_app("bus_app")
    assert type(app.event_bus).__name__ == "Bus"


def test_a_distributed_resume_reports_the_resumed_node() -> None:
    from flowcraft_sqs import protocol
    from flowcraft_sqs.engine import Engine, perform
    from flowcraft_sqs.messages import Job
    from flowcraft_sqs.stores.memory import MemoryRunStore, MemoryStatusTable
    from tests.cases.distributed import DuplicatingQueue, FakeClock, drain

    bus = RecordingBus()
    clock = FakeClock()
    bp = load_blueprint({"id": "w", "nodes": [{"id": "review", "uses": "wait"}]})
    store, statuses, queue = MemoryRunStore(), MemoryStatusTable(), DuplicatingQueue(False, clock)
    engine = Engine({"w": bp}, store, DefaultEvaluator(), clock=clock, event_bus=bus)
    store.create_run(protocol.new_run(bp, "run-1", {}, clock()))
    queue.send_jobs([Job("run-1", "w", "review")])
    drain(engine, queue, statuses, clock, {})
    assert bus.types()[-1] == "workflow:pause"
    perform(engine.resume("run-1", None, "ok", {"by": "ann"}), queue, statuses, clock)
    assert "workflow:resume" in bus.types()
    assert bus.of("node:finish")[-1]["nodeId"] == "review"
    assert bus.of("workflow:finish")[-1]["status"] == "completed"
