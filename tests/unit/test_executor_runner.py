"""The executor's node running, without processes: fast path, execute_node path, wire format."""

from __future__ import annotations

import asyncio
import subprocess
import sys

import orjson
import pytest

from flowcraft_sqs.app import App
from flowcraft_sqs.blueprint import load_blueprints
from flowcraft_sqs.completion import run_node
from flowcraft_sqs.executor import (
    NodeRunner,
    WorkItem,
    decode_completion,
    encode_completion,
    encode_work,
    unstorable_reason,
)
from flowcraft_sqs.jsvalues import UNDEFINED
from flowcraft_sqs.protocol import NodeCompletion


def plain(ctx):
    ctx.context.set_sync("seen", ctx.input)
    ctx.context.delete_sync("gone")
    return {"output": {"n": ctx.input}, "action": "next"}


def boom(ctx):
    raise ValueError("no luck")


def nothing(ctx):
    return None


def bad_value(ctx):
    return {"output": {"items": {1, 2}}}


def returns_string(ctx):
    return "oops"


async def async_node(ctx):
    return {"output": "async"}


REGISTRY = {"plain": plain, "boom": boom, "nothing": nothing, "bad": bad_value,
            "string": returns_string, "async": async_node}


def app_for(**config) -> App:
    nodes = [{"id": uses, "uses": uses, "inputs": "value", "config": config} for uses in REGISTRY]
    bps = load_blueprints({"bp": {"id": "bp", "nodes": nodes}}, registry=REGISTRY)
    return App("test", REGISTRY, bps)


def run_item(app: App, node: str, attempts: list | None = None) -> tuple[NodeCompletion, int]:
    runner = NodeRunner(app, lambda item, n, t: (attempts if attempts is not None else []).append(n))
    item = WorkItem(1, 0, "run-1", "bp", node, {"value": 5, "gone": 1}, 1)
    return asyncio.run(runner.run(item))


@pytest.mark.parametrize("node", list(REGISTRY))
@pytest.mark.parametrize("config", [{}, {"maxRetries": 1, "timeout": 5000}])
def test_the_fast_path_and_execute_node_give_the_same_completion(node: str, config: dict) -> None:
    # Given the same node run directly (fast path, no config) and through execute_node (timeout set)
    app = app_for(**config)
    completion, _ = run_item(app, node)
    # Then both equal what completion.run_node (the in-process runtime's way) produces
    bp = app.blueprints["bp"]
    expected = asyncio.run(run_node(bp, node, {"value": 5, "gone": 1}, "run-1", REGISTRY, {}))
    assert completion == expected


def test_plain_sync_functions_take_the_fast_path_and_others_do_not() -> None:
    runner = NodeRunner(app_for(), lambda *a: None)
    bp = runner.app.blueprints["bp"]
    assert runner.fast_impl(bp, bp.node_by_id["plain"]) is plain
    assert runner.fast_impl(bp, bp.node_by_id["async"]) is None
    timed = NodeRunner(app_for(timeout=100), lambda *a: None)
    assert timed.fast_impl(timed.app.blueprints["bp"], timed.app.blueprints["bp"].node_by_id["plain"]) is None


def test_each_attempt_is_reported_for_the_pulse_slot() -> None:
    attempts: list[int] = []
    run_item(app_for(maxRetries=3), "boom", attempts)
    assert attempts == [1, 2, 3]


def test_an_unstorable_output_fails_the_node_naming_the_key() -> None:
    completion, _ = run_item(app_for(), "bad")
    reason = unstorable_reason("bad", completion)
    assert reason is not None and "output of node 'bad'.items" in reason and "set" in reason


def test_results_round_trip_through_orjson_with_undefined_output_kept_apart_from_null() -> None:
    for completion in (
        NodeCompletion(output=UNDEFINED),
        NodeCompletion(output=None, action="a", context_sets={"k": [1, 2.5]}, context_deletes=frozenset({"x"})),
        NodeCompletion(error="Node 'a' failed: boom"),
        NodeCompletion(output=1, fallback_node_id="fb", catch_error={"message": "m", "nodeId": "a"}),
    ):
        assert decode_completion(orjson.loads(encode_completion(7, completion, 1))) == completion


def test_work_items_round_trip() -> None:
    raw = encode_work(42, 1, "run", "bp", "node", {"a": {"b": [1]}}, 2)
    assert WorkItem.decode(raw) == WorkItem(42, 1, "run", "bp", "node", {"a": {"b": [1]}}, 2)


def test_the_supervisor_and_executor_do_not_import_boto3() -> None:
    code = ("import sys, flowcraft_sqs.supervisor, flowcraft_sqs.executor, flowcraft_sqs.receiver, "
            "flowcraft_sqs.cli; assert 'boto3' not in sys.modules, 'boto3 imported'")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
