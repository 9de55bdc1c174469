"""The context a node sees: a snapshot of the run plus its own recorded writes."""

from __future__ import annotations

import asyncio

import pytest

from flowcraft_sqs.jsvalues import UNDEFINED
from flowcraft_sqs.node_context import NodeContext, RunContextView


def run(coro):
    return asyncio.run(coro)


def test_reads_see_the_snapshot_and_missing_keys_give_the_default():
    view = RunContextView({"userId": 7, "_outputs.A": {"n": 1}})

    async def scenario():
        return (
            await view.get("userId"),
            await view.get("_outputs.A"),
            await view.get("nope"),
            await view.get("nope", "fallback"),
            await view.has("userId"),
            await view.has("nope"),
        )

    assert run(scenario()) == (7, {"n": 1}, None, "fallback", True, False)


def test_keys_with_dots_are_flat_keys_not_paths():
    view = RunContextView({"_outputs.A": 1, "_outputs": {"A": 2}})
    assert view.get_sync("_outputs.A") == 1


def test_reads_see_the_nodes_own_writes_on_top_of_the_snapshot():
    view = RunContextView({"a": 1})

    async def scenario():
        await view.set("a", 2)
        await view.set("b", 3)
        return await view.get("a"), await view.get("b"), await view.has("b")

    assert run(scenario()) == (2, 3, True)


def test_writes_are_recorded_and_never_applied_to_the_snapshot():
    snapshot = {"a": 1, "gone": True}
    view = RunContextView(snapshot)
    view.set_sync("a", 2)
    view.delete_sync("gone")
    assert snapshot == {"a": 1, "gone": True}
    assert view.snapshot == {"a": 1, "gone": True}
    assert view.writes() == {"a": 2}
    assert view.deletes() == {"gone"}


def test_the_last_write_of_a_key_wins():
    view = RunContextView()
    view.set_sync("k", 1)
    view.set_sync("k", 2)
    assert view.writes() == {"k": 2}


def test_a_set_then_a_delete_of_the_same_key_ends_as_a_delete():
    view = RunContextView({"k": 0})
    view.set_sync("k", 1)
    view.delete_sync("k")
    assert view.writes() == {}
    assert view.deletes() == {"k"}
    assert view.get_sync("k") is None
    assert view.has_sync("k") is False


def test_a_delete_then_a_set_of_the_same_key_ends_as_a_set():
    view = RunContextView({"k": 0})
    view.delete_sync("k")
    view.set_sync("k", 1)
    assert view.writes() == {"k": 1}
    assert view.deletes() == set()
    assert view.get_sync("k") == 1


def test_delete_says_whether_the_key_was_visible_and_records_it_either_way():
    view = RunContextView({"present": 1})
    assert view.delete_sync("present") is True
    assert view.delete_sync("present") is False
    assert view.delete_sync("never") is False
    assert view.deletes() == {"present", "never"}


def test_to_json_is_the_snapshot_with_own_writes_on_top_and_deleted_keys_removed():
    view = RunContextView({"a": 1, "b": 2, "c": 3})
    view.set_sync("b", 20)
    view.set_sync("d", 4)
    view.delete_sync("c")
    assert run(view.to_json()) == {"a": 1, "b": 20, "d": 4}
    assert run(view.toJSON()) == view.to_json_sync()


def test_patch_applies_sets_and_deletes_in_order():
    view = RunContextView({"x": 1})
    run(
        view.patch(
            [
                {"op": "set", "key": "y", "value": 2},
                {"op": "delete", "key": "x"},
                {"op": "set", "key": "x", "value": 3},
                {"op": "delete", "key": "y"},
            ]
        )
    )
    assert view.writes() == {"x": 3}
    assert view.deletes() == {"y"}


@pytest.mark.parametrize(
    "bad_op",
    [
        {"op": "merge", "key": "k", "value": 1},
        {"op": "set", "key": "k"},
        {"op": "set", "key": "runId", "value": 1},
        "not an op",
    ],
)
def test_an_invalid_patch_records_nothing(bad_op):
    view = RunContextView()
    with pytest.raises((ValueError, TypeError)):
        view.patch_sync([{"op": "set", "key": "ok", "value": 1}, bad_op])
    assert view.writes() == {}
    assert view.deletes() == set()


@pytest.mark.parametrize("key", ["runId", "fc:meta", "fc:"])
def test_reserved_keys_cannot_be_written_or_deleted_and_the_error_names_the_key(key):
    view = RunContextView({key: "engine"})
    for attempt in (
        lambda: view.set_sync(key, 1),
        lambda: view.delete_sync(key),
        lambda: run(view.set(key, 1)),
        lambda: view.patch_sync([{"op": "delete", "key": key}]),
    ):
        with pytest.raises(ValueError, match=f"'{key}' is reserved"):
            attempt()
    assert view.writes() == {} and view.deletes() == set()


def test_reserved_keys_can_still_be_read():
    view = RunContextView({"runId": "r1"})
    assert view.get_sync("runId") == "r1"


def test_keys_that_merely_look_similar_are_not_reserved():
    view = RunContextView()
    view.set_sync("runIdentity", 1)
    view.set_sync("xfc:a", 2)
    view.set_sync("FC:a", 3)
    assert view.writes() == {"runIdentity": 1, "xfc:a": 2, "FC:a": 3}


def test_a_key_must_be_a_string():
    with pytest.raises(TypeError, match="strings"):
        RunContextView().set_sync(1, "x")  # type: ignore[arg-type]


def test_values_are_copied_in_and_out_so_mutation_changes_nothing():
    snapshot = {"cfg": {"n": [1]}}
    view = RunContextView(snapshot)
    got = view.get_sync("cfg")
    got["n"].append(2)
    assert view.get_sync("cfg") == {"n": [1]}
    assert snapshot == {"cfg": {"n": [1]}}

    value = {"m": 1}
    view.set_sync("v", value)
    value["m"] = 99
    assert view.writes() == {"v": {"m": 1}}


def test_the_sync_and_async_spellings_share_one_state():
    view = RunContextView()
    view.set_sync("a", 1)
    run(view.set("b", 2))
    assert run(view.get("a")) == 1
    assert view.get_sync("b") == 2


def test_a_closed_view_refuses_writes_but_still_answers_reads():
    view = RunContextView({"a": 1})
    view.set_sync("b", 2)
    view.close()
    with pytest.raises(RuntimeError, match="'c' after the node's execution ended"):
        view.set_sync("c", 3)
    with pytest.raises(RuntimeError):
        view.delete_sync("a")
    assert view.get_sync("b") == 2
    assert view.writes() == {"b": 2}


def test_a_node_context_exposes_the_ts_fields_as_attributes_and_ts_spellings():
    ctx = NodeContext(
        context=RunContextView(),
        input={"x": 1},
        params={"p": 2},
        dependencies={"db": "conn"},
        signal=None,
        node_id="A",
        run_id="r1",
        blueprint_id="bp",
        attempt=2,
    )
    assert (ctx.input, ctx.params, ctx.dependencies, ctx.attempt) == (
        {"x": 1},
        {"p": 2},
        {"db": "conn"},
        2,
    )
    assert (ctx.nodeId, ctx.runId, ctx.blueprintId) == ("A", "r1", "bp")
    assert ctx["input"] == {"x": 1} and ctx["nodeId"] == "A" and ctx["node_id"] == "A"
    with pytest.raises(KeyError):
        ctx["nope"]


def test_a_node_context_defaults_to_no_input_and_empty_params():
    ctx = NodeContext(context=RunContextView())
    assert ctx.input is UNDEFINED
    assert ctx.params == {} and ctx.dependencies == {}
    assert ctx.signal is None and ctx.attempt == 1
