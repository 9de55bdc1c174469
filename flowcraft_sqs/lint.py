"""`lint_blueprint`: find a blueprint's mistakes before a run does, as a list of coded issues.

It reads the blueprint as written (a dict, JSON text, or a loaded `Blueprint`), so it also
reports what `load_blueprint` would refuse, all at once instead of as one error.

Codes shared with TypeScript Flowcraft's linter keep its names:

    MISSING_NODE_IMPLEMENTATION   a node's `uses` is not in the registry
    INVALID_BATCH_WORKER_KEY      a batch-scatter's `workerUsesKey` is missing or not registered
    INVALID_SUBFLOW_BLUEPRINT_ID  a subflow's `blueprintId` is missing or not among `blueprints`
    INVALID_EDGE_SOURCE           an edge starts at a node that does not exist
    INVALID_EDGE_TARGET           an edge ends at a node that does not exist
    ORPHAN_NODE                   a node no start node reaches

and these are ours:

    INVALID_NODE_DEFINITION       a node's id, uses, params, inputs or config has the wrong shape
    DUPLICATE_NODE_ID             two nodes share an id
    INVALID_FALLBACK              `config.fallback` names no node of the blueprint
    INVALID_BATCH_GATHER_NODE     a batch-scatter's `gatherNodeId` is not a batch-gather node
    UNSUPPORTED_BUILTIN           a built-in this product does not run (webhook)
    INVALID_EXPRESSION            an edge condition or transform does not parse
    LOOP_WITHOUT_CONTINUE         a loop-controller with no `continue` edge can never loop
    LOOP_WITHOUT_EXIT             (warning) nothing follows a loop-controller when its loop ends
    CYCLE_WITHOUT_LOOP_CONTROLLER (warning) a cycle with no loop-controller runs once, not repeatedly

Differences from upstream, on purpose: built-ins (`wait`, `sleep`, `subflow`, batch and loop
nodes) are never "missing" (our runtimes provide them; upstream flags wait/sleep/subflow);
`registry=None` skips the implementation checks; warnings do not make a blueprint invalid.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import orjson

from . import builtins
from .blueprint import BUILTIN_USES, UNSUPPORTED_BUILTINS, Blueprint
from .errors import ExpressionError

ERROR = "error"
WARNING = "warning"


@dataclass(frozen=True)
class LintIssue:
    code: str
    message: str
    node_id: str | None = None
    related_id: str | None = None  # the other end of an edge at fault
    severity: str = ERROR

    def __str__(self) -> str:
        return f"{self.severity}: {self.code}: {self.message}"


@dataclass(frozen=True)
class LintResult:
    blueprint_id: str
    issues: list[LintIssue] = field(default_factory=list)

    @property
    def errors(self) -> list[LintIssue]:
        return [issue for issue in self.issues if issue.severity == ERROR]

    @property
    def warnings(self) -> list[LintIssue]:
        return [issue for issue in self.issues if issue.severity == WARNING]

    @property
    def is_valid(self) -> bool:
        """No errors (warnings allowed)."""
        return not self.errors


def lint_blueprint(
    blueprint: Blueprint | Mapping[str, Any] | str | bytes,
    registry: Mapping[str, Any] | None = None,
    blueprints: Mapping[str, Any] | Iterable[str] | None = None,
    *,
    evaluator: Any = None,
) -> LintResult:
    """Every issue found in `blueprint`, in the order upstream's linter reports them, ours after.

    `registry` maps `uses` keys to implementations (None: skip those checks); `blueprints`
    holds the ids a subflow may name; `evaluator` (default: ours) checks expressions.
    """
    raw = _raw(blueprint)
    all_nodes = list(raw.get("nodes") or [])
    nodes = [n for n in all_nodes if isinstance(n, Mapping) and isinstance(n.get("id"), str) and n["id"]]
    edges = [e for e in raw.get("edges") or [] if isinstance(e, Mapping)]
    known_blueprints = set(blueprints or ())
    issues: list[LintIssue] = []
    if registry is not None:
        issues += _missing_implementations(nodes, registry)
    issues += _batch_problems(nodes, registry)
    issues += _subflow_problems(nodes, known_blueprints)
    issues += _edge_problems(nodes, edges)
    issues += _orphans(nodes, edges)
    issues += _definition_problems(all_nodes)
    issues += _duplicates(nodes)
    issues += _fallback_problems(nodes)
    issues += _unsupported(nodes, registry)
    issues += _expression_problems(edges, evaluator or _default_evaluator())
    issues += _loop_problems(nodes, edges)
    issues += _cycles_without_controller(nodes, edges)
    return LintResult(str(raw.get("id") or "<anonymous>"), issues)


# --- upstream's checks ------------------------------------------------------------------


def _missing_implementations(nodes: list[Mapping[str, Any]], registry: Mapping[str, Any]) -> list[LintIssue]:
    return [
        LintIssue("MISSING_NODE_IMPLEMENTATION",
                  f"Node implementation key '{n.get('uses')}' is not found in the provided registry.", n["id"])
        for n in nodes
        if n.get("uses") not in registry and n.get("uses") not in BUILTIN_USES
    ]


def _batch_problems(nodes: list[Mapping[str, Any]], registry: Mapping[str, Any] | None) -> list[LintIssue]:
    gathers = {n["id"] for n in nodes if n.get("uses") == builtins.BATCH_GATHER}
    issues: list[LintIssue] = []
    for node in nodes:
        if node.get("uses") != builtins.BATCH_SCATTER:
            continue
        params = _params(node)
        worker = params.get("workerUsesKey")
        if not isinstance(worker, str) or not worker:
            issues.append(LintIssue("INVALID_BATCH_WORKER_KEY",
                                    f"Batch node '{node['id']}' has no params.workerUsesKey.", node["id"]))
        elif registry is not None and worker not in registry:
            issues.append(LintIssue(
                "INVALID_BATCH_WORKER_KEY",
                f"Batch node '{node['id']}' references workerUsesKey '{worker}' which is not found in the registry.",
                node["id"]))
        gather = params.get("gatherNodeId")
        if gather not in gathers:
            issues.append(LintIssue(
                "INVALID_BATCH_GATHER_NODE",
                f"Batch node '{node['id']}' names gatherNodeId {gather!r}, which is not a batch-gather node.",
                node["id"], gather if isinstance(gather, str) else None))
    return issues


def _subflow_problems(nodes: list[Mapping[str, Any]], known: set[str]) -> list[LintIssue]:
    issues: list[LintIssue] = []
    for node in nodes:
        if node.get("uses") != builtins.SUBFLOW:
            continue
        child = _params(node).get("blueprintId")
        if not isinstance(child, str) or not child:
            issues.append(LintIssue("INVALID_SUBFLOW_BLUEPRINT_ID",
                                    f"Subflow node '{node['id']}' has no params.blueprintId.", node["id"]))
        elif child not in known:
            issues.append(LintIssue(
                "INVALID_SUBFLOW_BLUEPRINT_ID",
                f"Subflow node '{node['id']}' references blueprintId '{child}' which is not found in the "
                "blueprints registry.", node["id"], child))
    return issues


def _edge_problems(nodes: list[Mapping[str, Any]], edges: list[Mapping[str, Any]]) -> list[LintIssue]:
    ids = {n["id"] for n in nodes}
    issues: list[LintIssue] = []
    for edge in edges:
        source, target = edge.get("source"), edge.get("target")
        if source not in ids:
            issues.append(LintIssue("INVALID_EDGE_SOURCE",
                                    f"Edge source '{source}' does not correspond to a valid node ID.",
                                    related_id=_text(target)))
        if target not in ids:
            issues.append(LintIssue("INVALID_EDGE_TARGET",
                                    f"Edge target '{target}' does not correspond to a valid node ID.",
                                    related_id=_text(source)))
    return issues


def _orphans(nodes: list[Mapping[str, Any]], edges: list[Mapping[str, Any]]) -> list[LintIssue]:
    """Nodes no start node reaches (a lone node is its own start, so never an orphan)."""
    if len(nodes) <= 1:
        return []
    graph = _Graph(nodes, edges)
    reached = graph.reachable_from(graph.start_ids())
    return [LintIssue("ORPHAN_NODE", f"Node '{n['id']}' is not reachable from any start node.", n["id"])
            for n in nodes if n["id"] not in reached]


# --- our checks ---------------------------------------------------------------------------


_NUMBER_CONFIG = {"maxRetries": "a number", "retryDelay": "a number of milliseconds >= 0",
                  "timeout": "a positive number of milliseconds"}


def _definition_problems(nodes: list[Any]) -> list[LintIssue]:
    """The shapes `load_blueprint` insists on, each reported with its node."""
    issues: list[LintIssue] = []
    for index, node in enumerate(nodes):
        node_id = node.get("id") if isinstance(node, Mapping) else None
        where = f"Node '{node_id}'" if isinstance(node_id, str) and node_id else f"nodes[{index}]"
        issues += [LintIssue("INVALID_NODE_DEFINITION", f"{where}: {problem}.", _text(node_id) or None)
                   for problem in _shape_problems(node)]
    return issues


def _shape_problems(node: Any) -> list[str]:
    if not isinstance(node, Mapping):
        return ["must be an object"]
    problems = []
    if not isinstance(node.get("id"), str) or not node.get("id"):
        problems.append("'id' must be a non-empty string")
    if not isinstance(node.get("uses"), str) or not node.get("uses"):
        problems.append("'uses' must be a non-empty string")
    for name in ("params", "config"):
        if node.get(name) is not None and not isinstance(node.get(name), Mapping):
            problems.append(f"'{name}' must be an object")
    inputs = node.get("inputs")
    if inputs is not None and not isinstance(inputs, str) and not (
            isinstance(inputs, Mapping) and all(isinstance(v, str) for v in inputs.values())):
        problems.append("'inputs' must be a string or a map of strings")
    return problems + _config_problems(_config(node))


def _config_problems(config: Mapping[str, Any]) -> list[str]:
    problems = []
    for key, wanted in _NUMBER_CONFIG.items():
        value = config.get(key)
        if value is None:
            continue
        number = isinstance(value, (int, float)) and not isinstance(value, bool) and value == value
        if not number or (key == "retryDelay" and value < 0) or (key == "timeout" and value <= 0):
            problems.append(f"config.{key} must be {wanted}, not {value!r}")
    if config.get("joinStrategy") not in (None, "all", "any"):
        problems.append(f"config.joinStrategy must be 'all' or 'any', not {config.get('joinStrategy')!r}")
    if config.get("fallback") not in (None, "") and not isinstance(config.get("fallback"), str):
        problems.append(f"config.fallback must be a node id, not {config.get('fallback')!r}")
    return problems


def _duplicates(nodes: list[Mapping[str, Any]]) -> list[LintIssue]:
    seen: set[str] = set()
    issues: list[LintIssue] = []
    for node in nodes:
        if node["id"] in seen:
            issues.append(LintIssue("DUPLICATE_NODE_ID", f"Node id '{node['id']}' is used more than once.",
                                    node["id"]))
        seen.add(node["id"])
    return issues


def _fallback_problems(nodes: list[Mapping[str, Any]]) -> list[LintIssue]:
    ids = {n["id"] for n in nodes}
    issues: list[LintIssue] = []
    for node in nodes:
        fallback = _config(node).get("fallback")
        if fallback and (fallback not in ids or fallback == node["id"]):
            why = "names the node itself" if fallback == node["id"] else "is not a node of this blueprint"
            issues.append(LintIssue("INVALID_FALLBACK", f"Node '{node['id']}': config.fallback '{fallback}' {why}.",
                                    node["id"], _text(fallback)))
    return issues


def _unsupported(nodes: list[Mapping[str, Any]], registry: Mapping[str, Any] | None) -> list[LintIssue]:
    return [
        LintIssue("UNSUPPORTED_BUILTIN", f"Node '{n['id']}': {UNSUPPORTED_BUILTINS[n['uses']]}.", n["id"])
        for n in nodes
        if n.get("uses") in UNSUPPORTED_BUILTINS and (registry is None or n.get("uses") not in registry)
    ]


def _expression_problems(edges: list[Mapping[str, Any]], evaluator: Any) -> list[LintIssue]:
    issues: list[LintIssue] = []
    for edge in edges:
        for name in ("condition", "transform"):
            text = edge.get(name)
            if not isinstance(text, str) or not text:
                continue
            try:
                evaluator.validate(text)
            except ExpressionError as exc:
                issues.append(LintIssue("INVALID_EXPRESSION",
                                        f"Edge '{edge.get('source')}' -> '{edge.get('target')}': {name} {exc}",
                                        _text(edge.get("source")), _text(edge.get("target"))))
    return issues


def _loop_problems(nodes: list[Mapping[str, Any]], edges: list[Mapping[str, Any]]) -> list[LintIssue]:
    issues: list[LintIssue] = []
    for node in (n for n in nodes if n.get("uses") == builtins.LOOP_CONTROLLER):
        actions = [e.get("action") for e in edges if e.get("source") == node["id"]]
        if "continue" not in actions:
            issues.append(LintIssue("LOOP_WITHOUT_CONTINUE",
                                    f"Loop controller '{node['id']}' has no 'continue' edge, so it never loops.",
                                    node["id"]))
        if all(action == "continue" for action in actions):
            issues.append(LintIssue(
                "LOOP_WITHOUT_EXIT",
                f"Loop controller '{node['id']}' has no 'break' (or action-less) edge: nothing runs after the loop.",
                node["id"], severity=WARNING))
    return issues


def _cycles_without_controller(nodes: list[Mapping[str, Any]], edges: list[Mapping[str, Any]]) -> list[LintIssue]:
    # Our runtimes run a join at most once per pass, so a cycle repeats only through a
    # loop-controller; without one its nodes run once (TS would loop until its wave limit).
    graph = _Graph(nodes, edges)
    controllers = {n["id"] for n in nodes if n.get("uses") == builtins.LOOP_CONTROLLER}
    return [
        LintIssue("CYCLE_WITHOUT_LOOP_CONTROLLER",
                  f"Cycle {' -> '.join(cycle)} has no loop-controller: its nodes run once, not repeatedly.",
                  cycle[0], severity=WARNING)
        for cycle in graph.cycles()
        if not controllers.intersection(cycle)
    ]


# --- helpers ------------------------------------------------------------------------------


class _Graph:
    """The edges between known nodes, in blueprint order."""

    def __init__(self, nodes: list[Mapping[str, Any]], edges: list[Mapping[str, Any]]) -> None:
        self.ids = [n["id"] for n in nodes]
        known = set(self.ids)
        self.out: dict[str, list[str]] = {node_id: [] for node_id in self.ids}
        self.targets: set[str] = set()
        for edge in edges:
            source, target = edge.get("source"), edge.get("target")
            if target in known:
                # As upstream: an edge from an unknown node still makes its target no start.
                self.targets.add(str(target))
            if source in known and target in known:
                self.out[str(source)].append(str(target))

    def start_ids(self) -> list[str]:
        starts = [node_id for node_id in self.ids if node_id not in self.targets]
        # A graph that is all cycles starts at each cycle's first node, as our runtimes do
        # (upstream reports every node of such a graph as an orphan).
        return starts or [cycle[0] for cycle in self.cycles()]

    def reachable_from(self, starts: list[str]) -> set[str]:
        reached: set[str] = set()
        stack = list(starts)
        while stack:
            node_id = stack.pop()
            if node_id not in reached:
                reached.add(node_id)
                stack.extend(self.out[node_id])
        return reached

    def cycles(self) -> list[list[str]]:
        """One cycle per back edge of a DFS in node order, each reported once."""
        found: list[list[str]] = []
        seen: set[frozenset[str]] = set()
        state: dict[str, int] = {}
        for root in self.ids:
            if root not in state:
                self._visit(root, [], state, found, seen)
        return found

    def _visit(self, root: str, path: list[str], state: dict[str, int], found: list[list[str]],
               seen: set[frozenset[str]]) -> None:
        stack: list[Iterator[str]] = [iter(self.out[root])]
        state[root] = 1
        path.append(root)
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                state[path.pop()] = 2
            elif state.get(nxt) == 1:
                cycle = path[path.index(nxt):]
                if frozenset(cycle) not in seen:
                    seen.add(frozenset(cycle))
                    found.append([*cycle, nxt])
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter(self.out[nxt]))


def _raw(blueprint: Blueprint | Mapping[str, Any] | str | bytes) -> Mapping[str, Any]:
    if isinstance(blueprint, Blueprint):
        return blueprint.to_dict()
    if isinstance(blueprint, (str, bytes)):
        data = orjson.loads(blueprint)
        return data if isinstance(data, Mapping) else {}
    return blueprint


def _params(node: Mapping[str, Any]) -> Mapping[str, Any]:
    params = node.get("params")
    return params if isinstance(params, Mapping) else {}


def _config(node: Mapping[str, Any]) -> Mapping[str, Any]:
    config = node.get("config")
    return config if isinstance(config, Mapping) else {}


def _text(value: Any) -> str | None:
    return value if isinstance(value, str) else None


def _default_evaluator() -> Any:
    from .expressions import DefaultEvaluator

    return DefaultEvaluator()


__all__ = ["ERROR", "WARNING", "LintIssue", "LintResult", "lint_blueprint"]
