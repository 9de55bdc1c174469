"""Load-test workloads: blueprint generators, node implementations, and timing extraction.

Pure: no AWS, no processes. A workload is named by its blueprint id, so a worker fleet
and the load generator agree on it without sharing anything but the id:

    lt-[<node>-]<shape>

    <node>   noop (default) | cpu-<X>ms (busy loop) | long-<X>ms (blocking sleep, a sync
             node on a requests-style client) | await-<X>ms (async node: asyncio.sleep) |
             payload-<S>kb
    <shape>  chain-<L> | diamond-<W> (W parallel branches, then an `all` join) |
             fanout-<W> (one node, then W leaves) | single (one node: the task-queue case)

    lt-chain-10  lt-diamond-8  lt-fanout-16  lt-single  lt-cpu-20ms-chain-5
    lt-long-2000ms-single  lt-await-1000ms-single  lt-payload-16kb-chain-3

The I/O-bound workloads `async-wait` and `sync-wait` (io_workload) are one-node runs of an
await or long node: the task-queue case, where throughput comes from many nodes in flight.

Every node returns `{"s": start, "e": end}` (wall-clock epoch seconds, `time.time()`), plus
`"p"` (the payload) for payload nodes. The outputs land in the run's context as
`_outputs.<node>`, so the harness reads each node's start and end from the final context,
whichever process or host ran it. Hop latency = a node's start minus the end of the
predecessor that released it (the last one to finish, for a join). Across hosts this is
only as good as their clock sync (chrony on EC2: well under 1 ms).
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Final

PREFIX: Final = "lt"
NODE_KINDS: Final = ("noop", "cpu", "long", "await", "payload")
SHAPES: Final = ("chain", "diamond", "fanout", "single")
#: Upper bounds that keep a workload inside what DynamoDB and SQS accept (400 KB items).
MAX_NODES: Final = 1000
MAX_PAYLOAD_KB: Final = 350

_ID = re.compile(
    r"^lt-(?:(?P<kind>cpu|long|await|payload)-(?P<amount>\d+)(?P<unit>ms|kb)-)?"
    r"(?P<shape>chain|diamond|fanout|single)(?:-(?P<size>\d+))?$"
)
_UNITS: Final = {"cpu": "ms", "long": "ms", "await": "ms", "payload": "kb"}
#: I/O-bound workload name -> the node kind of its one-node runs.
IO_WORKLOADS: Final = {"async-wait": "await", "sync-wait": "long"}


@dataclass(frozen=True)
class Workload:
    """One workload: what each node does, and how the nodes are wired."""

    shape: str = "chain"
    size: int = 10  # chain length, diamond/fan-out width; 1 for single
    kind: str = "noop"
    amount: int = 0  # ms for cpu/long, KB for payload

    def __post_init__(self) -> None:
        if self.shape not in SHAPES:
            raise ValueError(f"unknown shape {self.shape!r}; choose one of {', '.join(SHAPES)}")
        if self.kind not in NODE_KINDS:
            raise ValueError(f"unknown node kind {self.kind!r}; choose one of {', '.join(NODE_KINDS)}")
        if self.shape == "single" and self.size != 1:
            object.__setattr__(self, "size", 1)
        if self.size < 1:
            raise ValueError(f"{self.shape} size must be at least 1, got {self.size}")
        if self.kind != "noop" and self.amount < 1:
            raise ValueError(f"{self.kind} nodes need a positive amount ({_UNITS[self.kind]})")
        if self.kind == "noop" and self.amount:
            object.__setattr__(self, "amount", 0)
        if self.nodes > MAX_NODES:
            raise ValueError(f"{self.id}: {self.nodes} nodes is more than {MAX_NODES}")
        if self.kind == "payload" and self.amount * self.nodes > MAX_PAYLOAD_KB:
            raise ValueError(
                f"{self.id}: {self.nodes} nodes x {self.amount} KB outputs exceed the "
                f"{MAX_PAYLOAD_KB} KB that fits in one DynamoDB item (400 KB) with room to spare")

    @property
    def id(self) -> str:
        node = "" if self.kind == "noop" else f"{self.kind}-{self.amount}{_UNITS[self.kind]}-"
        shape = "single" if self.shape == "single" else f"{self.shape}-{self.size}"
        return f"{PREFIX}-{node}{shape}"

    @property
    def nodes(self) -> int:
        """Node executions per run."""
        return {"chain": self.size, "diamond": self.size + 2, "fanout": self.size + 1,
                "single": 1}[self.shape]

    @property
    def hops(self) -> int:
        """Hops per run: nodes started by a predecessor (a join counts once)."""
        return {"chain": self.size - 1, "diamond": self.size + 1, "fanout": self.size,
                "single": 0}[self.shape]

    def describe(self) -> str:
        node = {"noop": "no-op", "cpu": f"{self.amount} ms CPU-bound", "long": f"{self.amount} ms sleeping",
                "await": f"async, {self.amount} ms awaiting",
                "payload": f"no-op with a {self.amount} KB output"}[self.kind]
        shape = {"chain": f"chain of {self.size}", "diamond": f"diamond of width {self.size} ('all' join)",
                 "fanout": f"fan-out to {self.size}", "single": "single node"}[self.shape]
        return f"{shape}, {node} nodes ({self.nodes} node executions per run)"


def parse_workload(blueprint_id: str) -> Workload:
    """The Workload a blueprint id names; ValueError saying the grammar if it names none."""
    m = _ID.match(blueprint_id)
    if m is None:
        raise ValueError(
            f"{blueprint_id!r} is not a load-test blueprint id: expected "
            "lt-[cpu-<X>ms-|long-<X>ms-|await-<X>ms-|payload-<S>kb-]<chain-<L>|diamond-<W>|fanout-<W>|single>")
    kind = m["kind"] or "noop"
    if m["unit"] and m["unit"] != _UNITS[kind]:
        raise ValueError(f"{blueprint_id!r}: {kind} takes {_UNITS[kind]}, not {m['unit']}")
    shape = m["shape"]
    if shape == "single":
        if m["size"]:
            raise ValueError(f"{blueprint_id!r}: 'single' takes no size")
        size = 1
    elif not m["size"]:
        raise ValueError(f"{blueprint_id!r}: {shape} needs a size, e.g. lt-{shape}-8")
    else:
        size = int(m["size"])
    return Workload(shape=shape, size=size, kind=kind, amount=int(m["amount"] or 0))


def workload_from_options(shape: str, *, length: int = 10, width: int = 8, node: str = "noop",
                          cpu_ms: int = 0, long_ms: int = 0, payload_kb: int = 0) -> Workload:
    """The CLI's options (--workload chain --length 10 ...) as a Workload."""
    size = {"chain": length, "diamond": width, "fanout": width, "single": 1}[shape]
    amount = {"noop": 0, "cpu": cpu_ms, "long": long_ms, "await": long_ms, "payload": payload_kb}[node]
    return Workload(shape=shape, size=size, kind=node, amount=amount)


def io_workload(name: str, node_ms: int) -> Workload:
    """`async-wait` / `sync-wait`: one-node runs whose node awaits / blocks `node_ms`."""
    if name not in IO_WORKLOADS:
        raise ValueError(f"unknown I/O workload {name!r}; choose one of {', '.join(IO_WORKLOADS)}")
    return Workload(shape="single", kind=IO_WORKLOADS[name], amount=node_ms)


# --- blueprints ---------------------------------------------------------------------------


def node_ids(w: Workload) -> list[str]:
    if w.shape == "chain":
        return [f"n{i}" for i in range(w.size)]
    if w.shape == "single":
        return ["n0"]
    branches = [f"b{i}" for i in range(w.size)]
    return ["src", *branches, "join"] if w.shape == "diamond" else ["src", *branches]


def edge_pairs(w: Workload) -> list[tuple[str, str]]:
    ids = node_ids(w)
    if w.shape == "chain":
        return list(zip(ids, ids[1:], strict=False))
    if w.shape == "single":
        return []
    branches = [i for i in ids if i.startswith("b")]
    pairs = [("src", b) for b in branches]
    if w.shape == "diamond":
        pairs += [(b, "join") for b in branches]
    return pairs


def blueprint(w: Workload) -> dict[str, Any]:
    """The blueprint (plain dict, the TS JSON format) of a workload."""
    params: dict[str, Any] = {"ms": w.amount} if w.kind in ("cpu", "long", "await") else (
        {"kb": w.amount} if w.kind == "payload" else {})
    uses = f"lt-{w.kind}"
    nodes = []
    for node_id in node_ids(w):
        node: dict[str, Any] = {"id": node_id, "uses": uses, "params": dict(params)}
        if node_id == "join":
            node["config"] = {"joinStrategy": "all"}
        nodes.append(node)
    edges = [{"source": s, "target": t} for s, t in edge_pairs(w)]
    return {"id": w.id, "nodes": nodes, "edges": edges}


#: Always available to a worker started with `--app flowcraft_sqs.loadtest.app`: every
#: benchmark in benchmarks/ and the CLI's defaults. FLOWCRAFT_LOADTEST_BLUEPRINTS adds more.
CATALOGUE: Final = (
    "lt-single", "lt-chain-1", "lt-chain-3", "lt-chain-5", "lt-chain-10", "lt-chain-20", "lt-chain-50",
    "lt-diamond-2", "lt-diamond-4", "lt-diamond-8", "lt-diamond-16",
    "lt-fanout-8", "lt-fanout-16", "lt-fanout-50",
    "lt-cpu-5ms-chain-5", "lt-cpu-10ms-chain-5", "lt-cpu-20ms-chain-5", "lt-cpu-50ms-chain-5",
    "lt-cpu-20ms-single", "lt-cpu-20ms-diamond-8",
    "lt-long-1000ms-single", "lt-await-1000ms-single", "lt-long-2000ms-single", "lt-long-10000ms-single", "lt-long-1000ms-chain-3",
    "lt-payload-1kb-chain-5", "lt-payload-16kb-chain-5", "lt-payload-64kb-chain-3",
    "lt-payload-100kb-single",
)


def catalogue(extra: Iterable[str] = ()) -> dict[str, dict[str, Any]]:
    """id -> blueprint for the fixed catalogue plus `extra` ids (ValueError on a bad id)."""
    ids = list(dict.fromkeys([*CATALOGUE, *(e.strip() for e in extra if e.strip())]))
    return {bp_id: blueprint(parse_workload(bp_id)) for bp_id in ids}


# --- node implementations -----------------------------------------------------------------
# Each records its wall-clock start and end. time.time() costs ~50 ns: negligible next to
# the runtime's own per-node cost, so it is kept even for the no-op overhead benchmark.


def noop(ctx: Any) -> dict[str, Any]:
    t = time.time()
    return {"output": {"s": t, "e": t}}


def cpu(ctx: Any) -> dict[str, Any]:
    """Burn `params.ms` of this process's CPU time (not wall time: a descheduled process
    still does the whole amount of work, as a real CPU-bound node would)."""
    start = time.time()
    budget = float(ctx.params.get("ms", 0)) / 1000.0
    clock = time.process_time
    until = clock() + budget
    x = 0
    while clock() < until:
        for _ in range(200):
            x += 1
    return {"output": {"s": start, "e": time.time()}}


def long(ctx: Any) -> dict[str, Any]:
    """Sleep `params.ms`: a node waiting on something else (an API, a model)."""
    start = time.time()
    time.sleep(float(ctx.params.get("ms", 0)) / 1000.0)
    return {"output": {"s": start, "e": time.time()}}


async def await_(ctx: Any) -> dict[str, Any]:
    """Await `params.ms` (asyncio.sleep): an async node waiting on an API. It holds no
    thread, so one process can keep many of them in flight."""
    start = time.time()
    await asyncio.sleep(float(ctx.params.get("ms", 0)) / 1000.0)
    return {"output": {"s": start, "e": time.time()}}


_PAYLOADS: dict[int, str] = {}


def payload(ctx: Any) -> dict[str, Any]:
    """Output `params.kb` KB of text (stored in the run's context, like a real node's data)."""
    start = time.time()
    kb = int(ctx.params.get("kb", 1))
    data = _PAYLOADS.get(kb)
    if data is None:
        data = _PAYLOADS[kb] = ("0123456789abcdef" * 64 * kb)[: kb * 1024]
    return {"output": {"s": start, "e": time.time(), "p": data}}


REGISTRY: Final = {"lt-noop": noop, "lt-cpu": cpu, "lt-long": long, "lt-await": await_,
                   "lt-payload": payload}


# --- reading timings back ---------------------------------------------------------------


def node_times(context: Mapping[str, Any]) -> dict[str, tuple[float, float]]:
    """node id -> (start, end) from a run's context (`_outputs.<node>` = {"s", "e", ...})."""
    times = {}
    for key, out in context.items():
        if key.startswith("_outputs.") and isinstance(out, Mapping) and "s" in out and "e" in out:
            times[key[len("_outputs."):]] = (float(out["s"]), float(out["e"]))
    return times


def hop_latencies(w: Workload, times: Mapping[str, Sequence[float]]) -> list[float]:
    """Seconds from the predecessor finishing to the node starting, one per node started by
    predecessors; a join is released by the last of its predecessors to finish."""
    predecessors: dict[str, list[str]] = {}
    for source, target in edge_pairs(w):
        predecessors.setdefault(target, []).append(source)
    hops = []
    for target, sources in predecessors.items():
        if target in times and all(s in times for s in sources):
            hops.append(times[target][0] - max(times[s][1] for s in sources))
    return hops
