"""Port of upstream packages/core/test/errors.test.ts (FlowcraftError)."""

from __future__ import annotations

import pickle

from flowcraft_sqs.errors import BlueprintError, ContextTooLarge, FlowcraftError, NodeFailure


def test_a_flowcraft_error_carries_every_property_given() -> None:
    original = ValueError("original")
    err = FlowcraftError("Test message", cause=original, node_id="node-123", blueprint_id="bp-abc",
                         execution_id="exec-id-1", is_fatal=False)
    assert isinstance(err, Exception)
    assert type(err).__name__ == "FlowcraftError"
    assert str(err) == "Test message"
    assert (err.node_id, err.blueprint_id, err.execution_id) == ("node-123", "bp-abc", "exec-id-1")
    assert err.cause is original
    assert err.__cause__ is original
    assert err.is_fatal is False


def test_a_fatal_flowcraft_error() -> None:
    err = FlowcraftError("Fatal error", node_id="node-1", blueprint_id="bp-1", is_fatal=True)
    assert str(err) == "Fatal error"
    assert (err.node_id, err.blueprint_id, err.is_fatal) == ("node-1", "bp-1", True)


def test_missing_options_default_to_none_and_not_fatal() -> None:
    err = FlowcraftError("Simple error")
    assert str(err) == "Simple error"
    assert (err.node_id, err.blueprint_id, err.execution_id, err.cause) == (None, None, None, None)
    assert err.is_fatal is False


# --- ours: the subclasses fill the same fields --------------------------------------------


def test_a_node_failure_names_its_node_and_fatality() -> None:
    err = NodeFailure("A", "bad credentials", fatal=True)
    assert str(err) == "Node 'A' failed: bad credentials"
    assert (err.node_id, err.is_fatal, err.fatal, err.original_message) == ("A", True, True, "bad credentials")


def test_a_blueprint_error_names_its_blueprint() -> None:
    err = BlueprintError("bp", ["node 'A': bad"])
    assert (err.blueprint_id, err.problems, err.node_id) == ("bp", ["node 'A': bad"], None)


def test_a_context_too_large_error_names_its_run() -> None:
    err = ContextTooLarge("run-1", 500_000, 400_000)
    assert (err.execution_id, err.run_id) == ("run-1", "run-1")


def test_errors_cross_a_process_boundary_with_their_fields() -> None:
    # Executors are separate processes: an error pickled there must arrive whole.
    for err in (FlowcraftError("x", node_id="n", execution_id="r", is_fatal=True),
                NodeFailure("A", "boom", fatal=True), BlueprintError("bp", ["p"]), ContextTooLarge("r", 2, 1)):
        copy = pickle.loads(pickle.dumps(err))
        assert type(copy) is type(err)
        assert str(copy) == str(err)
        assert vars(copy) == vars(err)
