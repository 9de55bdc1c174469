"""`analyze_blueprint`: the static facts a client needs to start a run (TS §2.1)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .blueprint import Blueprint, load_blueprint


@dataclass(frozen=True)
class BlueprintAnalysis:
    start_node_ids: list[str]
    terminal_node_ids: list[str]
    cycles: list[list[str]]
    node_count: int
    edge_count: int
    is_dag: bool

    # The TypeScript spelling, so ported client code reads the same.
    @property
    def startNodeIds(self) -> list[str]:  # noqa: N802
        return self.start_node_ids

    @property
    def terminalNodeIds(self) -> list[str]:  # noqa: N802
        return self.terminal_node_ids

    @property
    def isDag(self) -> bool:  # noqa: N802
        return self.is_dag


def analyze_blueprint(blueprint: Blueprint | Mapping[str, Any]) -> BlueprintAnalysis:
    """Start nodes (no incoming edge), terminal nodes (no outgoing edge) and cycles.

    Start and terminal ids are structural, in node order, as TS: a fallback-only node
    counts as a start node here. Each cycle is reported once (FIX: TS may repeat one),
    as `[first, ..., last, first]`.
    """
    bp = blueprint if isinstance(blueprint, Blueprint) else _lenient(blueprint)
    if bp is None:
        return BlueprintAnalysis([], [], [], 0, 0, True)
    cycles = find_cycles(bp)
    return BlueprintAnalysis(
        start_node_ids=list(bp.structural_start_ids),
        terminal_node_ids=list(bp.terminal_node_ids),
        cycles=cycles,
        node_count=len(bp.nodes),
        edge_count=len(bp.edges),
        is_dag=not cycles,
    )


def _lenient(raw: Mapping[str, Any]) -> Blueprint | None:
    if not raw.get("nodes"):
        return None
    data = dict(raw)
    data.setdefault("id", "<anonymous>")
    return load_blueprint(data)


def find_cycles(bp: Blueprint) -> list[list[str]]:
    """Every back edge found by a DFS in definition order gives one cycle, reported once."""
    seen_cycles: set[tuple[str, ...]] = set()
    cycles: list[list[str]] = []
    state: dict[str, int] = {}  # 1 = on the DFS path, 2 = finished
    for root in (n.id for n in bp.nodes):
        if root in state:
            continue
        path: list[str] = [root]
        state[root] = 1
        stack = [iter([e.target for e in bp.out_edges[root]])]
        while stack:
            nxt = next(stack[-1], None)
            if nxt is None:
                stack.pop()
                state[path.pop()] = 2
                continue
            if state.get(nxt) == 1:
                cycle = path[path.index(nxt):] + [nxt]
                key = _canonical(cycle[:-1])
                if key not in seen_cycles:
                    seen_cycles.add(key)
                    cycles.append(cycle)
            elif nxt not in state:
                state[nxt] = 1
                path.append(nxt)
                stack.append(iter([e.target for e in bp.out_edges[nxt]]))
    return cycles


def _canonical(members: list[str]) -> tuple[str, ...]:
    i = members.index(min(members))
    return tuple(members[i:] + members[:i])
