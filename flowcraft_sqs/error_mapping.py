"""Error mappers: turn whatever a node raised into a `FlowcraftError` that says where it happened.

An error mapper is a function `exception -> exception`. Two are here:

- `to_flowcraft_error(exc, node_id=..., blueprint_id=..., execution_id=...)`: any exception
  as a FlowcraftError carrying the ids (the original kept as its `cause`); a FlowcraftError
  keeps its class and only gains the ids it lacked.
- `create_error_mapper(blueprints)`: upstream's source-map mapper. A blueprint compiled from
  code may give nodes and edges a `_sourceLocation` ({file, line, column}); an error about
  such a node (its `node_id`, or `nodeId: <id>` in its message; `<source>-<target>` for an
  edge) becomes "Workflow error at file:line:column. Original error: ...". Any other error
  is returned unchanged, as upstream's.

Where it plugs in: `map_error(exc, mapper, node_id=..., ...)` is the one call a runtime makes
where it turns a node's exception into a failure reason: it applies `to_flowcraft_error`,
then the user's mapper, and never raises (a mapper that fails is logged and skipped).
"""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Iterable, Mapping
from typing import Any

from .blueprint import Blueprint
from .errors import FlowcraftError

log = logging.getLogger("flowcraft_sqs.errors")

ErrorMapper = Callable[[BaseException], BaseException]

_NODE_ID_IN_MESSAGE = re.compile(r"nodeId: (\S+)")


def to_flowcraft_error(
    exc: BaseException,
    *,
    node_id: str | None = None,
    blueprint_id: str | None = None,
    execution_id: str | None = None,
) -> FlowcraftError:
    """`exc` as a FlowcraftError with these ids (an existing error keeps the ids it has)."""
    if not isinstance(exc, FlowcraftError):
        return FlowcraftError(str(exc) or type(exc).__name__, node_id=node_id, blueprint_id=blueprint_id,
                              execution_id=execution_id, cause=exc)
    exc.node_id = exc.node_id or node_id
    exc.blueprint_id = exc.blueprint_id or blueprint_id
    exc.execution_id = exc.execution_id or execution_id
    return exc


def map_error(
    exc: BaseException,
    mapper: ErrorMapper | None = None,
    *,
    node_id: str | None = None,
    blueprint_id: str | None = None,
    execution_id: str | None = None,
) -> FlowcraftError:
    """The error a runtime reports for `exc`: with its ids, through `mapper` if one is given."""
    error = to_flowcraft_error(exc, node_id=node_id, blueprint_id=blueprint_id, execution_id=execution_id)
    if mapper is None:
        return error
    try:
        mapped = mapper(error)
    except Exception:
        log.warning("error mapper %r failed; reporting the error unmapped", mapper, exc_info=True)
        return error
    return to_flowcraft_error(mapped, node_id=node_id, blueprint_id=blueprint_id, execution_id=execution_id)


def create_error_mapper(blueprints: Mapping[str, Any] | Iterable[Any]) -> ErrorMapper:
    """A mapper that points errors at the `_sourceLocation` of their node or edge."""
    locations = _source_locations(blueprints.values() if isinstance(blueprints, Mapping) else blueprints)

    def map_to_source(exc: BaseException) -> BaseException:
        node_id = getattr(exc, "node_id", None) or _node_id_in(str(exc))
        location = locations.get(node_id) if node_id else None
        if location is None:
            return exc
        where = f"{location.get('file')}:{location.get('line')}:{location.get('column')}"
        return FlowcraftError(f"Workflow error at {where}. Original error: {exc}", node_id=node_id,
                              blueprint_id=getattr(exc, "blueprint_id", None),
                              execution_id=getattr(exc, "execution_id", None),
                              is_fatal=bool(getattr(exc, "is_fatal", False)), cause=exc)

    return map_to_source


def _source_locations(blueprints: Iterable[Any]) -> dict[str, Mapping[str, Any]]:
    """node id (or `source-target` for an edge) -> its `_sourceLocation`."""
    found: dict[str, Mapping[str, Any]] = {}
    for blueprint in blueprints:
        for node in _node_definitions(blueprint):
            if isinstance(node.get("_sourceLocation"), Mapping):
                found[str(node.get("id"))] = node["_sourceLocation"]
        # A loaded Blueprint keeps each node's full definition but only the known edge fields.
        for edge in [] if isinstance(blueprint, Blueprint) else blueprint.get("edges") or []:
            if isinstance(edge, Mapping) and isinstance(edge.get("_sourceLocation"), Mapping):
                found[f"{edge.get('source')}-{edge.get('target')}"] = edge["_sourceLocation"]
    return found


def _node_definitions(blueprint: Any) -> list[Mapping[str, Any]]:
    if isinstance(blueprint, Blueprint):
        return [node.definition for node in blueprint.nodes]
    return [node for node in blueprint.get("nodes") or [] if isinstance(node, Mapping)]


def _node_id_in(message: str) -> str | None:
    match = _NODE_ID_IN_MESSAGE.search(message)
    return match.group(1) if match else None


__all__ = ["ErrorMapper", "create_error_mapper", "map_error", "to_flowcraft_error"]
