"""Blueprints: load, validate and index the Flowcraft JSON workflow format.

A `Blueprint` is immutable once loaded (the TypeScript engine mutates the shared
blueprint while routing; we never do). Validation happens at load time and every
problem names the blueprint and the node or edge at fault.
"""

from __future__ import annotations

import copy
import math
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field, replace
from pathlib import Path
from types import MappingProxyType
from typing import Any, Protocol

import orjson

from .errors import BlueprintError, ExpressionError

JOIN_STRATEGIES = ("all", "any")
BUILTIN_USES = frozenset(
    {"wait", "sleep", "webhook", "subflow", "batch-scatter", "batch-gather", "loop-controller"}
)
NODE_FIELDS = ("id", "uses", "params", "inputs", "config")
EDGE_FIELDS = ("source", "target", "action", "condition", "transform")


class ExpressionValidator(Protocol):
    def validate(self, expression: str) -> None: ...


@dataclass(frozen=True)
class Node:
    id: str
    uses: str
    params: Mapping[str, Any]
    inputs: str | Mapping[str, str] | None
    max_retries: int
    retry_delay_ms: float
    timeout_ms: float | None
    fallback: str | None
    join_strategy: str
    definition: Mapping[str, Any] = field(repr=False)
    # An edge with a transform leads here: the node reads its routed `_inputs.<id>`, even
    # with explicit `inputs` (TS rewrites the target's inputs to that key).
    routed_input: bool = False
    # Why `inputs` can never be read (a path segment outside the property characters): the
    # node fails when it is to run, the same in process and distributed.
    input_error: str | None = None


@dataclass(frozen=True)
class Edge:
    index: int
    source: str
    target: str
    action: str | None
    condition: str | None
    transform: str | None


class Blueprint:
    """A validated, indexed, read-only workflow definition."""

    def __init__(self, raw: Mapping[str, Any], nodes: list[Node], edges: list[Edge]) -> None:
        self.id: str = raw["id"]
        metadata = raw.get("metadata") or {}
        version = metadata.get("version") if isinstance(metadata, Mapping) else None
        self.version: str | None = None if version is None else str(version)
        self.metadata: Mapping[str, Any] = MappingProxyType(dict(metadata))
        transform_targets = {e.target for e in edges if e.transform}
        nodes = [replace(n, routed_input=True) if n.id in transform_targets and n.inputs else n for n in nodes]
        nodes = [replace(n, input_error=e) if (e := inputs_problem(n.inputs)) else n for n in nodes]
        self.nodes: tuple[Node, ...] = tuple(nodes)
        self.node_index: Mapping[str, int] = MappingProxyType({n.id: i for i, n in enumerate(nodes)})
        self.edges: tuple[Edge, ...] = tuple(edges)
        self.node_by_id: Mapping[str, Node] = MappingProxyType({n.id: n for n in nodes})
        self._raw = raw
        self._index_edges()

    def _index_edges(self) -> None:
        out: dict[str, list[Edge]] = {n.id: [] for n in self.nodes}
        preds: dict[str, list[str]] = {n.id: [] for n in self.nodes}
        for edge in self.edges:
            out[edge.source].append(edge)
            if edge.source not in preds[edge.target]:
                preds[edge.target].append(edge.source)
        self.out_edges: Mapping[str, tuple[Edge, ...]] = {k: tuple(v) for k, v in out.items()}
        self.predecessors: Mapping[str, tuple[str, ...]] = {k: tuple(v) for k, v in preds.items()}
        fallback_of: dict[str, list[str]] = {}
        for node in self.nodes:
            if node.fallback:
                fallback_of.setdefault(node.fallback, []).append(node.id)
        self.fallback_of: Mapping[str, tuple[str, ...]] = {
            k: tuple(v) for k, v in fallback_of.items()
        }
        targets = {e.target for e in self.edges}
        sources = {e.source for e in self.edges}
        self.structural_start_ids: tuple[str, ...] = tuple(
            n.id for n in self.nodes if n.id not in targets
        )
        self.terminal_node_ids: tuple[str, ...] = tuple(
            n.id for n in self.nodes if n.id not in sources
        )
        # Fallback-only nodes have no incoming edge but are not where a run starts.
        self.start_node_ids: tuple[str, ...] = tuple(
            nid for nid in self.structural_start_ids if nid not in self.fallback_of
        ) or self._cycle_entry_points()

    def _cycle_entry_points(self) -> tuple[str, ...]:
        """A graph that is all cycles starts, as TS does, at each cycle's entry point:
        the first member listed in metadata.cycleEntryPoints, else the cycle's first node."""
        from .analysis import find_cycles  # analysis builds on this module

        listed = self.metadata.get("cycleEntryPoints") or []
        entries: list[str] = []
        for cycle in find_cycles(self):
            chosen = next((n for n in cycle if n in listed), cycle[0])
            if chosen not in entries:
                entries.append(chosen)
        return tuple(entries)

    def to_dict(self) -> dict[str, Any]:
        """A deep copy of the blueprint as JSON-ready data."""
        return copy.deepcopy(dict(self._raw))

    def __repr__(self) -> str:
        return f"Blueprint(id={self.id!r}, nodes={len(self.nodes)}, edges={len(self.edges)})"


_PATH_CHARACTERS = re.compile(r"[A-Za-z0-9_$.]*")  # as a property expression's path


def input_path_problem(source: str) -> str | None:
    """Why the input path `source` (`node.path.to.value`) cannot be read, if it cannot."""
    if source.startswith("_") or "." not in source:
        return None
    if _PATH_CHARACTERS.fullmatch(source.split(".", 1)[1]):
        return None
    return f"inputs {source!r}: a path after the node id may hold only A-Z, a-z, 0-9, '_', '$' and '.'"


def inputs_problem(inputs: str | Mapping[str, str] | None) -> str | None:
    sources = [inputs] if isinstance(inputs, str) else list(inputs.values()) if isinstance(inputs, Mapping) else []
    return next((p for s in sources if isinstance(s, str) and (p := input_path_problem(s))), None)


def load_blueprint(
    source: Blueprint | Mapping[str, Any] | str | bytes | Path,
    *,
    registry: Mapping[str, Any] | None = None,
    evaluator: ExpressionValidator | None = None,
    blueprint_id: str | None = None,
) -> Blueprint:
    """Load and validate a blueprint from a dict, a JSON string, or a file path.

    `registry`, when given, must provide every `uses` key (built-ins excepted).
    `evaluator`, when given, validates every edge condition and transform.
    """
    if isinstance(source, Blueprint):
        return source
    raw = _read_raw(source)
    if blueprint_id is not None and "id" not in raw:
        raw["id"] = blueprint_id
    return _build(raw, registry, evaluator)


def load_blueprints(
    sources: Mapping[str, Any] | Iterable[Any],
    *,
    registry: Mapping[str, Any] | None = None,
    evaluator: ExpressionValidator | None = None,
) -> dict[str, Blueprint]:
    """Load a mapping id -> blueprint (or an iterable of blueprints) into validated Blueprints."""
    if isinstance(sources, Mapping):
        items = [(key, value) for key, value in sources.items()]
    else:
        items = [(None, value) for value in sources]
    loaded: dict[str, Blueprint] = {}
    for key, value in items:
        bp = load_blueprint(value, registry=registry, evaluator=evaluator, blueprint_id=key)
        loaded[key if key is not None else bp.id] = bp
    return loaded


def _read_raw(source: Mapping[str, Any] | str | bytes | Path) -> dict[str, Any]:
    if isinstance(source, Path) or (
        isinstance(source, str) and not source.lstrip().startswith("{")
    ):
        path = Path(source)
        try:
            data = orjson.loads(path.read_bytes())
        except OSError as exc:
            raise BlueprintError(str(path), [f"cannot read file: {exc.strerror}"]) from exc
        except orjson.JSONDecodeError as exc:
            raise BlueprintError(str(path), [f"not valid JSON: {exc}"]) from exc
    elif isinstance(source, (str, bytes)):
        try:
            data = orjson.loads(source)
        except orjson.JSONDecodeError as exc:
            raise BlueprintError("<json>", [f"not valid JSON: {exc}"]) from exc
    else:
        data = source
    if not isinstance(data, Mapping):
        raise BlueprintError("<unknown>", [f"a blueprint is a JSON object, not {type(data).__name__}"])
    return copy.deepcopy(dict(data))


def _build(
    raw: dict[str, Any],
    registry: Mapping[str, Any] | None,
    evaluator: ExpressionValidator | None,
) -> Blueprint:
    bp_id = raw.get("id")
    if not isinstance(bp_id, str) or not bp_id:
        raise BlueprintError(str(bp_id), ["'id' must be a non-empty string"])
    problems: list[str] = []
    if raw.get("metadata") is not None and not isinstance(raw["metadata"], Mapping):
        problems.append(f"'metadata' must be an object, not {type(raw['metadata']).__name__}")
        raw["metadata"] = {}
    raw["nodes"] = _as_list(raw.get("nodes"), "nodes", problems)
    raw["edges"] = _as_list(raw.get("edges", []), "edges", problems)
    nodes = [n for i, d in enumerate(raw["nodes"]) if (n := _node(d, i, problems)) is not None]
    _check_unique_ids(nodes, problems)
    known = {n.id for n in nodes}
    edges = [e for i, d in enumerate(raw["edges"]) if (e := _edge(d, i, known, problems))]
    _check_fallbacks(nodes, known, problems)
    _check_unsupported_builtins(nodes, registry, problems)
    _check_batches(nodes, registry, problems)
    _check_loops(nodes, edges, registry, problems)
    if registry is not None:
        _check_implementations(nodes, registry, problems)
    if evaluator is not None:
        _check_expressions(edges, evaluator, problems)
    if problems:
        raise BlueprintError(bp_id, problems)
    # Keep only the known keys, as the TS sanitizer does (drops __proto__ and the like).
    raw["nodes"] = [{k: d[k] for k in NODE_FIELDS if k in d} for d in raw["nodes"]]
    raw["edges"] = [{k: d[k] for k in EDGE_FIELDS if k in d} for d in raw["edges"]]
    return Blueprint(raw, nodes, edges)


def _as_list(value: Any, name: str, problems: list[str]) -> list[Any]:
    if value is None:
        problems.append(f"'{name}' is missing") if name == "nodes" else None
        return []
    if isinstance(value, Mapping):
        return list(value.values())
    if isinstance(value, list):
        return value
    problems.append(f"'{name}' must be a list, not {type(value).__name__}")
    return []


def _node(d: Any, index: int, problems: list[str]) -> Node | None:
    where = f"nodes[{index}]"
    if not isinstance(d, Mapping):
        problems.append(f"{where} must be an object")
        return None
    node_id, uses = d.get("id"), d.get("uses")
    if not isinstance(node_id, str) or not node_id:
        problems.append(f"{where}: 'id' must be a non-empty string")
        return None
    where = f"node '{node_id}'"
    if not isinstance(uses, str) or not uses:
        problems.append(f"{where}: 'uses' must be a non-empty string")
        return None
    params = d.get("params") or {}
    if not isinstance(params, Mapping):
        problems.append(f"{where}: 'params' must be an object")
        params = {}
    inputs = _node_inputs(d.get("inputs"), where, problems)
    config = d.get("config") or {}
    if not isinstance(config, Mapping):
        problems.append(f"{where}: 'config' must be an object")
        config = {}
    return Node(
        id=node_id,
        uses=uses,
        params=MappingProxyType(dict(params)),
        inputs=inputs,
        max_retries=_int_config(config, "maxRetries", 1, where, problems),
        retry_delay_ms=_number_config(config, "retryDelay", 0.0, where, problems, minimum=0),
        timeout_ms=_timeout_config(config, where, problems),
        fallback=_str_config(config, "fallback", where, problems),
        join_strategy=_join_config(config, where, problems),
        definition=MappingProxyType(copy.deepcopy(dict(d))),
    )


def _node_inputs(value: Any, where: str, problems: list[str]) -> str | Mapping[str, str] | None:
    if value is None or value == "":
        return None
    if isinstance(value, str):
        return value
    if isinstance(value, Mapping) and all(
        isinstance(k, str) and isinstance(v, str) for k, v in value.items()
    ):
        return MappingProxyType(dict(value)) if value else None
    problems.append(f"{where}: 'inputs' must be a string or a map of strings")
    return None


def _int_config(config: Mapping, key: str, default: int, where: str, problems: list[str]) -> int:
    value = config.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        problems.append(f"{where}: config.{key} must be a number, not {value!r}")
        return default
    return int(value)


def _number_config(
    config: Mapping, key: str, default: float, where: str, problems: list[str], minimum: float
) -> float:
    value = config.get(key, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        problems.append(f"{where}: config.{key} must be a number of milliseconds, not {value!r}")
        return default
    if value < minimum:
        problems.append(f"{where}: config.{key} must be >= {minimum}, not {value!r}")
        return default
    return float(value)


def _timeout_config(config: Mapping, where: str, problems: list[str]) -> float | None:
    if config.get("timeout") is None:
        return None
    value = _number_config(config, "timeout", 0.0, where, problems, minimum=0)
    if value <= 0:
        problems.append(f"{where}: config.timeout must be a positive number of milliseconds")
        return None
    return value


def _str_config(config: Mapping, key: str, where: str, problems: list[str]) -> str | None:
    value = config.get(key)
    if value is None or value == "":
        return None
    if not isinstance(value, str):
        problems.append(f"{where}: config.{key} must be a string, not {value!r}")
        return None
    return value


def _join_config(config: Mapping, where: str, problems: list[str]) -> str:
    value = config.get("joinStrategy", "all")
    if value is None:
        return "all"
    if value not in JOIN_STRATEGIES:
        problems.append(f"{where}: config.joinStrategy must be 'all' or 'any', not {value!r}")
        return "all"
    return str(value)


def _edge(d: Any, index: int, known: set[str], problems: list[str]) -> Edge | None:
    where = f"edges[{index}]"
    if not isinstance(d, Mapping):
        problems.append(f"{where} must be an object")
        return None
    source, target = d.get("source"), d.get("target")
    where = f"edge {source!r} -> {target!r} ({where})"
    ok = True
    for name, value in (("source", source), ("target", target)):
        if not isinstance(value, str) or value not in known:
            problems.append(f"{where}: {name} {value!r} is not a node of this blueprint")
            ok = False
    fields = {}
    for name in ("action", "condition", "transform"):
        value = d.get(name)
        if value is not None and not isinstance(value, str):
            problems.append(f"{where}: '{name}' must be a string, not {value!r}")
            ok = False
        fields[name] = value or None
    if not ok or not isinstance(source, str) or not isinstance(target, str):
        return None
    return Edge(index=index, source=source, target=target, **fields)


def _check_unique_ids(nodes: list[Node], problems: list[str]) -> None:
    seen: set[str] = set()
    for node in nodes:
        if node.id in seen:
            problems.append(f"node id '{node.id}' is used more than once")
        seen.add(node.id)


def _check_fallbacks(nodes: list[Node], known: set[str], problems: list[str]) -> None:
    for node in nodes:
        if node.fallback is not None and node.fallback not in known:
            problems.append(
                f"node '{node.id}': config.fallback '{node.fallback}' is not a node of this blueprint"
            )
        if node.fallback == node.id:
            problems.append(f"node '{node.id}': config.fallback names the node itself")


UNSUPPORTED_BUILTINS = {
    "webhook": (
        "the 'webhook' built-in needs an HTTP endpoint, which flowcraft-sqs does not run; use a "
        "'wait' node and resume it with FlowcraftClient.resume(run_id, action=..., output=...)"
    ),
}


def _check_unsupported_builtins(
    nodes: list[Node], registry: Mapping[str, Any] | None, problems: list[str]
) -> None:
    for node in nodes:
        why = UNSUPPORTED_BUILTINS.get(node.uses)
        if why is not None and (registry is None or node.uses not in registry):
            problems.append(f"node '{node.id}': {why}")


def _check_batches(nodes: list[Node], registry: Mapping[str, Any] | None, problems: list[str]) -> None:
    """A batch-scatter names a registered worker and a batch-gather node of this blueprint."""
    gathers = {n.id for n in nodes if n.uses == "batch-gather"}
    for node in nodes:
        if node.uses != "batch-scatter" or (registry is not None and node.uses in registry):
            continue
        worker = node.params.get("workerUsesKey")
        if not isinstance(worker, str) or not worker:
            problems.append(f"node '{node.id}': batch-scatter needs params.workerUsesKey")
        elif registry is not None and worker not in registry:
            problems.append(f"node '{node.id}': params.workerUsesKey '{worker}' is not registered")
        gather = node.params.get("gatherNodeId")
        if not isinstance(gather, str) or gather not in gathers:
            problems.append(
                f"node '{node.id}': params.gatherNodeId {node.params.get('gatherNodeId')!r} "
                "is not a batch-gather node of this blueprint"
            )


def _check_loops(
    nodes: list[Node], edges: list[Edge], registry: Mapping[str, Any] | None, problems: list[str]
) -> None:
    """A loop controller needs a `continue` edge, or it could never loop (refused as TS does)."""
    continuing = {e.source for e in edges if e.action == "continue"}
    for node in nodes:
        if node.uses != "loop-controller" or (registry is not None and node.uses in registry):
            continue
        if node.id not in continuing:
            problems.append(
                f"Loop '{node.id}' has no continue edge to start node. Ensure edges are wired inside "
                "the loop and incoming/breaking edges point to the loop controller."
            )


def _check_implementations(
    nodes: list[Node], registry: Mapping[str, Any], problems: list[str]
) -> None:
    for node in nodes:
        if node.uses not in registry and node.uses not in BUILTIN_USES:
            problems.append(
                f"node '{node.id}': no implementation registered for uses '{node.uses}'"
            )


def _check_expressions(
    edges: list[Edge], evaluator: ExpressionValidator, problems: list[str]
) -> None:
    for edge in edges:
        for name in ("condition", "transform"):
            text = getattr(edge, name)
            if text is None:
                continue
            try:
                evaluator.validate(text)
            except ExpressionError as exc:
                problems.append(f"edge '{edge.source}' -> '{edge.target}': {name} {exc}")
