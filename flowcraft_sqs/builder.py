"""`create_flow`: build a blueprint in Python instead of writing its JSON by hand.

    flow = (
        create_flow("greet")
        .node("fetch", fetch_user)
        .node("hello", say_hello, inputs="fetch")
        .edge("fetch", "hello")
    )
    runtime = FlowRuntime(registry=flow.registry)
    result = runtime.run_sync(flow.to_blueprint())

`to_blueprint()` returns the plain JSON form, so a built flow can be stored, linted or run
by a fleet. Every function or class passed as an implementation is collected into
`flow.registry` under the `uses` key the blueprint names.

Keys are deterministic, unlike TS's counter-based hashes: a class's name, or for a function
`fn_<name>_<digest of its code>`, so a worker that builds the same flow gets the same keys
(a distributed run needs that) and two flows' registries can be merged. Two implementations
with one key in a builder are numbered; closures made by one factory share code, so give
each its own name (or register it yourself) before mixing them in one registry.

The shapes follow TypeScript Flowcraft's FlowBuilder: `.batch()` makes `<id>_scatter` and
`<id>_gather` and rewires edges to and from `<id>`; `.loop()` makes a `loop-controller`
named `<id>` with a `continue` edge back to the loop's start, and edges leaving the
controller default to action `break`.
"""

from __future__ import annotations

import copy
import hashlib
import inspect
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from . import builtins
from .errors import BlueprintError

_UNSAFE_KEY_CHARS = re.compile(r"[^A-Za-z0-9_]+")


@dataclass(frozen=True)
class _Loop:
    id: str
    start_node_id: str
    end_node_id: str
    condition: str


@dataclass(frozen=True)
class _Batch:
    id: str
    scatter_id: str
    gather_id: str


def create_flow(flow_id: str) -> FlowBuilder:
    """A new, empty FlowBuilder for the blueprint `flow_id`."""
    return FlowBuilder(flow_id)


class FlowBuilder:
    """A fluent builder of one blueprint; every method but the `to_*` ones returns the builder."""

    def __init__(self, flow_id: str) -> None:
        self.id = flow_id
        self._nodes: list[dict[str, Any]] = []
        self._edges: list[dict[str, Any]] = []
        self._registry: dict[str, Any] = {}
        self._loops: list[_Loop] = []
        self._batches: list[_Batch] = []
        self._cycle_entry_points: list[str] = []

    # --- nodes and edges ----------------------------------------------------------------

    def node(
        self,
        node_id: str,
        implementation: Any,
        *,
        params: Mapping[str, Any] | None = None,
        inputs: str | Mapping[str, str] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> FlowBuilder:
        """A node run by `implementation`: a function, a node class, or a registered `uses` key."""
        uses = implementation if isinstance(implementation, str) else self._register(implementation)
        self._nodes.append(_definition(node_id, uses, params, inputs, config))
        return self

    def edge(
        self,
        source: str,
        target: str,
        *,
        action: str | None = None,
        condition: str | None = None,
        transform: str | None = None,
    ) -> FlowBuilder:
        """An edge; only the options given appear in the blueprint."""
        options = {"action": action, "condition": condition, "transform": transform}
        self._edges.append({"source": source, "target": target, **_present(options)})
        return self

    # --- built-in patterns --------------------------------------------------------------

    def batch(
        self,
        batch_id: str,
        worker: Any,
        *,
        input_key: str,
        output_key: str,
        chunk_size: int | None = None,
    ) -> FlowBuilder:
        """Run `worker` once per item of the array at `input_key`; the results land in `output_key`.

        Edges to and from `batch_id` are rewired to the scatter and the gather.
        """
        scatter_id, gather_id = f"{batch_id}_scatter", f"{batch_id}_gather"
        worker_key = worker if isinstance(worker, str) else self._register(worker, batch_worker=True)
        scatter_params = {"workerUsesKey": worker_key, "outputKey": output_key, "gatherNodeId": gather_id,
                          "chunkSize": chunk_size}
        self._nodes.append(_definition(scatter_id, builtins.BATCH_SCATTER, _present(scatter_params), input_key))
        gather_params = {"outputKey": output_key, "gatherNodeId": gather_id}
        self._nodes.append(_definition(gather_id, builtins.BATCH_GATHER, gather_params, None, {"joinStrategy": "all"}))
        self._batches.append(_Batch(batch_id, scatter_id, gather_id))
        return self.edge(scatter_id, gather_id)

    def loop(
        self,
        loop_id: str,
        *,
        start_node_id: str,
        end_node_id: str,
        condition: str,
        max_iterations: int | None = None,
    ) -> FlowBuilder:
        """Repeat `start_node_id`..`end_node_id` while `condition` holds.

        Enter the loop with an edge into `loop_id` (the controller), as upstream's examples do;
        edges from `loop_id` to elsewhere run when the loop ends.
        """
        params = _present({"condition": condition, "maxIterations": max_iterations})
        self._nodes.append(_definition(loop_id, builtins.LOOP_CONTROLLER, params, None, {"joinStrategy": "any"}))
        self._loops.append(_Loop(loop_id, start_node_id, end_node_id, condition))
        self.edge(end_node_id, loop_id)
        return self.edge(loop_id, start_node_id, action="continue", transform=_output_of(end_node_id))

    def sleep(self, node_id: str, *, duration: int | float | str) -> FlowBuilder:
        """Pause for `duration`: milliseconds, or text like '30s', '5m', '2h', '1d'."""
        self._nodes.append(_definition(node_id, builtins.SLEEP, {"duration": duration}))
        return self

    def wait(
        self,
        node_id: str,
        *,
        params: Mapping[str, Any] | None = None,
        inputs: str | Mapping[str, str] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> FlowBuilder:
        """Pause until a client resumes the run at this node (with an action and an output)."""
        self._nodes.append(_definition(node_id, builtins.WAIT, params, inputs, config))
        return self

    def subflow(
        self,
        node_id: str,
        blueprint_id: str,
        *,
        inputs: Mapping[str, str] | None = None,
        outputs: Mapping[str, str] | None = None,
        config: Mapping[str, Any] | None = None,
    ) -> FlowBuilder:
        """Run the registered blueprint `blueprint_id` as a child run.

        `inputs` maps child keys to parent keys, `outputs` parent keys to child keys (the
        built-in subflow's `params.inputs` / `params.outputs`). Upstream's builder has no
        such method; this one only spares writing the node by hand.
        """
        params = _present({"blueprintId": blueprint_id, "inputs": _plain(inputs), "outputs": _plain(outputs)})
        self._nodes.append(_definition(node_id, builtins.SUBFLOW, params, None, config))
        return self

    def set_cycle_entry_point(self, node_id: str) -> FlowBuilder:
        """Where a run starts in a graph that is all cycles (metadata.cycleEntryPoints)."""
        if node_id not in self._cycle_entry_points:
            self._cycle_entry_points.append(node_id)
        return self

    # --- results ------------------------------------------------------------------------

    @property
    def registry(self) -> dict[str, Any]:
        """`uses` key -> implementation for every function or class given to this builder."""
        return dict(self._registry)

    def get_function_registry(self) -> dict[str, Any]:
        """The registry under upstream's name."""
        return self.registry

    def to_blueprint(self) -> dict[str, Any]:
        """The blueprint as JSON-ready data; a fresh copy on every call."""
        if not self._nodes:
            raise BlueprintError(self.id, ["Cannot build a blueprint with no nodes."])
        self._check_loops()
        blueprint: dict[str, Any] = {
            "id": self.id,
            "nodes": copy.deepcopy(self._nodes),
            "edges": self._final_edges(),
        }
        if self._cycle_entry_points:
            blueprint["metadata"] = {"cycleEntryPoints": list(self._cycle_entry_points)}
        return blueprint

    def to_graph(self) -> dict[str, Any]:
        """A graph for a UI: loops drawn as a loop-back edge, each batch as one node."""
        return _UIGraph(self.to_blueprint(), self._loops).build()

    def to_graph_representation(self) -> dict[str, Any]:
        """`to_graph` under upstream's name."""
        return self.to_graph()

    # --- internals ----------------------------------------------------------------------

    def _register(self, implementation: Any, *, batch_worker: bool = False) -> str:
        for key, known in self._registry.items():
            if known is implementation:
                return key  # the same implementation twice keeps one key
        key = self._unique_key(_base_key(implementation, batch_worker))
        self._registry[key] = implementation
        return key

    def _unique_key(self, base: str) -> str:
        key, number = base, 2
        while key in self._registry:
            key, number = f"{base}_{number}", number + 1
        return key

    def _final_edges(self) -> list[dict[str, Any]]:
        """Edges with loop exits and batch ends rewired, rewired ones first (as upstream)."""
        rewired: list[dict[str, Any]] = []
        done: set[int] = set()
        for loop in self._loops:
            for index, edge in self._edges_where(lambda e, lp=loop: e["source"] == lp.id
                                                 and e["target"] != lp.start_node_id):
                rewired.append({**edge, "action": edge.get("action") or "break",
                                "transform": _output_of(loop.end_node_id)})
                done.add(index)
        for batch in self._batches:
            for index, edge in self._edges_where(lambda e, b=batch: e["target"] == b.id):
                rewired.append({**edge, "target": batch.scatter_id})
                done.add(index)
            for index, edge in self._edges_where(lambda e, b=batch: e["source"] == b.id):
                rewired.append({**edge, "source": batch.gather_id})
                done.add(index)
        rest = [dict(edge) for index, edge in enumerate(self._edges) if index not in done]
        return rewired + rest

    def _edges_where(self, wanted: Any) -> list[tuple[int, dict[str, Any]]]:
        return [(index, edge) for index, edge in enumerate(self._edges) if wanted(edge)]

    def _check_loops(self) -> None:
        known = {node["id"] for node in self._nodes}
        for loop in self._loops:
            for role, node_id in (("start", loop.start_node_id), ("end", loop.end_node_id)):
                if node_id not in known:
                    raise BlueprintError(
                        self.id, [f"Loop '{loop.id}' references non-existent {role} node '{node_id}'."]
                    )


class _UIGraph:
    """Upstream's `toGraphRepresentation`: what a graph editor draws instead of the built-ins."""

    def __init__(self, blueprint: Mapping[str, Any], loops: list[_Loop]) -> None:
        self.nodes: list[dict[str, Any]] = list(blueprint["nodes"])
        self.edges: list[dict[str, Any]] = list(blueprint["edges"])
        self.loops = loops
        self.ui_nodes: list[dict[str, Any]] = []
        self.ui_edges: list[dict[str, Any]] = []
        self.hidden: set[str] = set()

    def build(self) -> dict[str, Any]:
        for loop in self.loops:
            self._draw_loop(loop)
        for scatter in (n for n in self.nodes if n["uses"] == builtins.BATCH_SCATTER):
            self._draw_batch(scatter)
        self.ui_nodes.extend(n for n in self.nodes if n["id"] not in self.hidden)
        for edge in self.edges:
            if edge["source"] in self.hidden or edge["target"] in self.hidden or self._drawn(edge):
                continue
            self.ui_edges.append(edge)
        return {"nodes": self.ui_nodes, "edges": self.ui_edges}

    def _draw_loop(self, loop: _Loop) -> None:
        self.hidden.add(loop.id)
        label = f"continue if: {loop.condition}"
        self.ui_edges.append({"source": loop.end_node_id, "target": loop.start_node_id,
                              "data": {"isLoopback": True, "condition": loop.condition, "label": label}})
        for edge in self.edges:
            if edge["source"] == loop.id and edge.get("action") == "break":
                self.ui_edges.append({**edge, "source": loop.end_node_id})
            elif edge["target"] == loop.id and edge["source"] != loop.end_node_id:
                self.ui_edges.append({**edge, "target": loop.start_node_id})

    def _draw_batch(self, scatter: Mapping[str, Any]) -> None:
        params = scatter.get("params") or {}
        gather_id = params.get("gatherNodeId")
        if not gather_id:
            return
        self.hidden.update({scatter["id"], gather_id})
        batch_id = scatter["id"].removesuffix("_scatter")
        gather = next((n for n in self.nodes if n["id"] == gather_id), {})
        data = {"label": f"Batch: {batch_id}", "isBatchPlaceholder": True,
                "workerUsesKey": params.get("workerUsesKey"), "inputKey": scatter.get("inputs"),
                "outputKey": (gather.get("params") or {}).get("outputKey")}
        self.ui_nodes.append({"id": batch_id, "uses": params.get("workerUsesKey"), "type": "batch-worker",
                              "data": data})
        self.ui_edges.extend({**e, "target": batch_id} for e in self.edges if e["target"] == scatter["id"])
        self.ui_edges.extend({**e, "source": batch_id} for e in self.edges if e["source"] == gather_id)

    def _drawn(self, edge: Mapping[str, Any]) -> bool:
        return any(e["source"] == edge["source"] and e["target"] == edge["target"]
                   and e.get("action") == edge.get("action") for e in self.ui_edges)


def _definition(
    node_id: str,
    uses: str,
    params: Mapping[str, Any] | None = None,
    inputs: str | Mapping[str, str] | None = None,
    config: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    options = {"params": _plain(params), "inputs": _plain(inputs), "config": _plain(config)}
    return {"id": node_id, "uses": uses, **_present(options)}


def _output_of(node_id: str) -> str:
    # Upstream writes `context["<end>"]`, the bare key its in-memory runtime sets; our
    # runtimes keep a node's output only under `_outputs.<id>` (as the distributed engine
    # must), so the transform reads that key.
    return f'context["_outputs.{node_id}"]'


def _base_key(implementation: Any, batch_worker: bool) -> str:
    """`ClassName` for a named class, `fn_<name>_<code hash>` for a function (upstream's prefixes)."""
    name = getattr(implementation, "__name__", "") or type(implementation).__name__
    if inspect.isclass(implementation):
        if name and name != "BaseNode":
            return name
        return "class_batch_worker" if batch_worker else "class_node"
    safe = _UNSAFE_KEY_CHARS.sub("_", name).strip("_") or "anonymous"
    prefix = "fn_batch_worker" if batch_worker else "fn"
    return f"{prefix}_{safe}_{_code_hash(implementation)}"


def _code_hash(function: Any) -> str:
    """A digest of where and what the function is: the same in every process running the
    same code, and different for two lambdas, so registries of several flows can merge."""
    code = getattr(function, "__code__", None)
    where = f"{getattr(function, '__module__', '')}.{getattr(function, '__qualname__', '')}"
    body = b"" if code is None else code.co_code + repr(code.co_consts).encode() + str(code.co_firstlineno).encode()
    return hashlib.sha1(where.encode() + body, usedforsecurity=False).hexdigest()[:8]


def _present(options: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in options.items() if value is not None}


def _plain(value: Any) -> Any:
    """A JSON-ready copy: mappings become dicts, so a blueprint never shares caller state."""
    if isinstance(value, Mapping):
        return {key: _plain(item) for key, item in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(item) for item in value]
    return value


__all__ = ["FlowBuilder", "create_flow"]
