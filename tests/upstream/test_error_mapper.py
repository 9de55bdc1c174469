"""Port of upstream packages/core/test/error-mapper.test.ts (createErrorMapper)."""

from __future__ import annotations

from typing import Any

import pytest

from flowcraft_sqs.blueprint import load_blueprint
from flowcraft_sqs.error_mapping import create_error_mapper, map_error, to_flowcraft_error
from flowcraft_sqs.errors import FlowcraftError, NodeFailure

MANIFEST: dict[str, Any] = {
    "testFlow": {
        "id": "testFlow",
        "nodes": [
            {"id": "node1", "uses": "testStep", "_sourceLocation": {"file": "/app/src/test.ts", "line": 10, "column": 5}},
            {"id": "node2", "uses": "anotherStep",
             "_sourceLocation": {"file": "/app/src/test.ts", "line": 20, "column": 8}},
        ],
        "edges": [{"source": "node1", "target": "node2",
                   "_sourceLocation": {"file": "/app/src/test.ts", "line": 15, "column": 2}}],
    }
}


def test_an_error_naming_a_node_points_at_the_nodes_source() -> None:
    mapped = create_error_mapper(MANIFEST)(FlowcraftError("Node execution failed", node_id="node1"))
    assert str(mapped) == "Workflow error at /app/src/test.ts:10:5. Original error: Node execution failed"


def test_a_node_id_is_found_in_the_message() -> None:
    original = RuntimeError("Something went wrong with nodeId: node2 in the workflow")
    mapped = create_error_mapper(MANIFEST)(original)
    assert str(mapped) == ("Workflow error at /app/src/test.ts:20:8. Original error: "
                           "Something went wrong with nodeId: node2 in the workflow")
    assert mapped.__cause__ is original


def test_an_error_naming_no_node_is_returned_unchanged() -> None:
    original = RuntimeError("Some unrelated error")
    assert create_error_mapper(MANIFEST)(original) is original


def test_an_error_naming_an_unknown_node_is_returned_unchanged() -> None:
    original = FlowcraftError("Node execution failed", node_id="nonexistent")
    assert create_error_mapper(MANIFEST)(original) is original


def test_an_edge_is_found_by_its_source_target_key() -> None:
    mapped = create_error_mapper(MANIFEST)(RuntimeError("Error with nodeId: node1-node2"))
    assert str(mapped) == "Workflow error at /app/src/test.ts:15:2. Original error: Error with nodeId: node1-node2"


# --- ours: the hook a runtime calls -------------------------------------------------------


def test_a_loaded_blueprint_keeps_its_nodes_source_locations() -> None:
    bp = load_blueprint(MANIFEST["testFlow"])
    mapped = create_error_mapper([bp])(NodeFailure("node2", "boom"))
    assert str(mapped) == "Workflow error at /app/src/test.ts:20:8. Original error: Node 'node2' failed: boom"
    assert mapped.node_id == "node2"


def test_any_exception_becomes_a_flowcraft_error_with_the_ids_given() -> None:
    original = KeyError("k")
    err = to_flowcraft_error(original, node_id="A", blueprint_id="bp", execution_id="run")
    assert (type(err), err.node_id, err.blueprint_id, err.execution_id) == (FlowcraftError, "A", "bp", "run")
    assert err.cause is original


def test_a_flowcraft_error_keeps_its_class_and_ids_and_gains_the_missing_ones() -> None:
    failure = NodeFailure("A", "boom", fatal=True)
    err = to_flowcraft_error(failure, node_id="other", execution_id="run")
    assert err is failure
    assert (err.node_id, err.execution_id, err.is_fatal) == ("A", "run", True)


def test_map_error_applies_the_users_mapper_after_adding_the_ids() -> None:
    seen: list[Any] = []

    def mapper(exc: BaseException) -> BaseException:
        seen.append(exc)
        return FlowcraftError(f"mapped: {exc}")

    err = map_error(ValueError("bad"), mapper, node_id="A", blueprint_id="bp", execution_id="run")
    assert str(err) == "mapped: bad"
    assert (err.node_id, err.blueprint_id, err.execution_id) == ("A", "bp", "run")
    assert isinstance(seen[0], FlowcraftError) and seen[0].node_id == "A"


def test_a_mapper_that_fails_is_skipped_and_logged(caplog: pytest.LogCaptureFixture) -> None:
    def broken(exc: BaseException) -> BaseException:
        raise RuntimeError("mapper bug")

    err = map_error(ValueError("bad"), broken, node_id="A")
    assert str(err) == "bad"
    assert "error mapper" in caplog.text


def test_without_a_mapper_map_error_only_adds_the_ids() -> None:
    err = map_error(ValueError("bad"), node_id="A")
    assert (str(err), err.node_id) == ("bad", "A")
