"""The `--app` of the reliability tests and the chaos benchmark, and how their runs are judged.

    flowcraft-worker --app flowcraft_sqs.testing.chaosapp ...

Blueprints:

    diamond        src -> b0, b1, b2 -> join ('all')   every node instant
    diamond-slow   the same, each node sleeping 50 ms  (a load that lasts long enough to hurt)
    long           one node sleeping `params.seconds` (7 s)
    too-big        fill (150 KB output) -> more (150 KB): the second commit passes 400 KB
    unstorable     first -> bad; `bad` returns what the run's `kind` names (nan, set, ...)

A diamond run starts with `{"x": <int>}`. `src` outputs `v = x`, branch `bk` outputs
`v = x * (k + 1)`, and `join` outputs the sum, so a completed run's `join.v` must be `6 * x`.

Every diamond execution writes one line to the file named by $FLOWCRAFT_CHAOS_EXEC_LOG
(`O_APPEND`; a line this short is written atomically): `run node token pid`. The token is
fresh per execution and is part of the node's output (`tok`), and each node also records the
tokens of the outputs it consumed (`saw`). That is what `judge` uses to tell a node
*executed* twice (two log lines: allowed when a process dies before its commit) from a node
*committed* twice (two different tokens of it observed as committed: never allowed).
"""

from __future__ import annotations

import math
import os
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

EXEC_LOG_ENV: Final = "FLOWCRAFT_CHAOS_EXEC_LOG"
WIDTH: Final = 3
BRANCHES: Final = tuple(f"b{k}" for k in range(WIDTH))
DIAMOND_NODES: Final = ("src", *BRANCHES, "join")
#: join.v = x * (1 + 2 + ... + WIDTH)
JOIN_FACTOR: Final = WIDTH * (WIDTH + 1) // 2
FILL_BYTES: Final = 150 * 1024


# --- nodes ----------------------------------------------------------------------------------


def _record(ctx: Any) -> str:
    token = uuid.uuid4().hex[:16]
    path = os.environ.get(EXEC_LOG_ENV)
    if path:
        fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, f"{ctx.run_id} {ctx.node_id} {token} {os.getpid()}\n".encode())
        finally:
            os.close(fd)
    pause = float(ctx.params.get("sleep", 0.0))
    if pause:
        time.sleep(pause)
    return token


def source(ctx: Any) -> dict[str, Any]:
    token = _record(ctx)
    return {"output": {"tok": token, "v": int(ctx.context.get_sync("x", 0))}}


def branch(ctx: Any) -> dict[str, Any]:
    token = _record(ctx)
    given = ctx.input if isinstance(ctx.input, Mapping) else {}
    factor = int(ctx.params["k"]) + 1
    return {"output": {"tok": token, "v": int(given.get("v", 0)) * factor, "saw": {"src": given.get("tok")}}}


def join(ctx: Any) -> dict[str, Any]:
    token = _record(ctx)
    outputs = {b: ctx.context.get_sync(f"_outputs.{b}") or {} for b in BRANCHES}
    total = sum(int(out.get("v", 0)) for out in outputs.values())
    return {"output": {"tok": token, "v": total, "saw": {b: out.get("tok") for b, out in outputs.items()}}}


def sleeper(ctx: Any) -> dict[str, Any]:
    token = _record(ctx)
    time.sleep(float(ctx.params.get("seconds", 0)))
    return {"output": {"tok": token}}


def filler(ctx: Any) -> dict[str, Any]:
    return {"output": "f" * int(ctx.params.get("bytes", FILL_BYTES))}


#: What `bad` returns for each `kind`: values DynamoDB (through us) cannot hold.
UNSTORABLE: Final = {
    "nan": lambda: math.nan,
    "inf": lambda: {"deep": [1, math.inf]},
    "set": lambda: {1, 2, 3},
    "bytes": lambda: b"\x00\x01",
    "object": lambda: object(),
    "bigint": lambda: 2**70,
    "intkey": lambda: {1: "one"},
}


def unstorable(ctx: Any) -> dict[str, Any]:
    kind = ctx.context.get_sync("kind")
    if kind == "context-nan":
        ctx.context.set_sync("written", math.nan)
        return {"output": "fine"}
    return {"output": UNSTORABLE[kind]()}


registry: dict[str, Any] = {
    "chaos-source": source, "chaos-branch": branch, "chaos-join": join, "chaos-sleep": sleeper,
    "chaos-fill": filler, "chaos-unstorable": unstorable,
}


def _diamond(bp_id: str, sleep: float = 0.0) -> dict[str, Any]:
    extra = {"sleep": sleep} if sleep else {}
    nodes = [{"id": "src", "uses": "chaos-source", "params": dict(extra)}]
    nodes += [{"id": b, "uses": "chaos-branch", "params": {"k": k, **extra}} for k, b in enumerate(BRANCHES)]
    nodes.append({"id": "join", "uses": "chaos-join", "params": dict(extra), "config": {"joinStrategy": "all"}})
    edges = [{"source": "src", "target": b} for b in BRANCHES] + [{"source": b, "target": "join"} for b in BRANCHES]
    return {"id": bp_id, "nodes": nodes, "edges": edges}


blueprints: dict[str, Any] = {
    "diamond": _diamond("diamond"),
    "diamond-slow": _diamond("diamond-slow", sleep=0.05),
    "long": {"id": "long", "nodes": [{"id": "long", "uses": "chaos-sleep", "params": {"seconds": 7}}]},
    "too-big": {"id": "too-big", "nodes": [{"id": "fill", "uses": "chaos-fill"}, {"id": "more", "uses": "chaos-fill"}],
                "edges": [{"source": "fill", "target": "more"}]},
    "unstorable": {"id": "unstorable", "nodes": [{"id": "first", "uses": "chaos-fill", "params": {"bytes": 10}},
                                                 {"id": "bad", "uses": "chaos-unstorable"}],
                   "edges": [{"source": "first", "target": "bad"}]},
}


# --- judging runs ---------------------------------------------------------------------------


@dataclass(frozen=True)
class Execution:
    run_id: str
    node_id: str
    token: str
    pid: int


def read_executions(path: str | Path) -> list[Execution]:
    """Every execution logged so far (a torn last line, from a process killed mid-write, is skipped)."""
    try:
        text = Path(path).read_text()
    except FileNotFoundError:
        return []
    found = []
    for line in text.splitlines():
        parts = line.split()
        if len(parts) == 4 and parts[3].isdigit():
            found.append(Execution(parts[0], parts[1], parts[2], int(parts[3])))
    return found


@dataclass
class Verdict:
    """How a diamond load ended, from the tables and the execution log."""

    runs: int
    completed: int = 0
    lost: list[str] = field(default_factory=list)  # not completed, or wrong output
    committed_twice: list[tuple[str, str]] = field(default_factory=list)  # (run, node)
    duplicate_executions: int = 0  # executions beyond the first of each (run, node)
    executions: int = 0
    problems: list[str] = field(default_factory=list)  # why each lost run counts as lost

    @property
    def ok(self) -> bool:
        return not self.lost and not self.committed_twice

    def summary(self) -> str:
        return (f"{self.completed}/{self.runs} completed, {len(self.lost)} lost, "
                f"{len(self.committed_twice)} nodes committed twice, "
                f"{self.duplicate_executions} duplicate executions ({self.executions} executions)")


def judge(run_ids: Iterable[str], contexts: Mapping[str, Mapping[str, Any] | None],
          statuses: Mapping[str, Mapping[str, Any] | None], executions: Iterable[Execution]) -> Verdict:
    """Judge diamond runs: `contexts` maps run id -> the stored context (None if missing),
    `statuses` run id -> the status item.

    A node is *committed twice* when two different tokens of it are seen as committed.
    Tokens are unique per execution, and only a committed output is visible to anyone else:
    the contexts table holds one; each successor records the one it consumed (it ran on
    the committed state); the status item's `result.context` holds the one of the commit
    that completed the run. With one commit per node these all agree; a second commit that
    overwrote the first, or a join fired twice, makes them differ.
    """
    ids = list(run_ids)
    verdict = Verdict(runs=len(ids))
    counts = Counter((e.run_id, e.node_id) for e in executions)
    wanted = set(ids)
    verdict.executions = sum(n for (run, _), n in counts.items() if run in wanted)
    verdict.duplicate_executions = sum(n - 1 for (run, _), n in counts.items() if run in wanted and n > 1)
    for run_id in ids:
        context, status = contexts.get(run_id), statuses.get(run_id) or {}
        why = _run_problem(context, status)
        if why is None:
            verdict.completed += 1
        else:
            verdict.lost.append(run_id)
            verdict.problems.append(f"{run_id}: {why}")
        for node_id in DIAMOND_NODES:
            if len(_committed_tokens(node_id, context or {}, status)) > 1:
                verdict.committed_twice.append((run_id, node_id))
    return verdict


def _run_problem(context: Mapping[str, Any] | None, status: Mapping[str, Any]) -> str | None:
    if context is None:
        return "no state in the contexts table"
    if status.get("status") != "completed":
        return f"status {status.get('status')!r} ({status.get('reason')})"
    x = context.get("x")
    join_out = context.get("_outputs.join") or {}
    if not isinstance(x, int) or join_out.get("v") != JOIN_FACTOR * x:
        return f"wrong output: x={x!r}, join={join_out!r}"
    result = (status.get("result") or {}).get("context") or {}
    if (result.get("_outputs.join") or {}).get("v") != join_out.get("v"):
        return "the status item's result differs from the stored context"
    return None


def _committed_tokens(node_id: str, context: Mapping[str, Any], status: Mapping[str, Any]) -> set[str]:
    seen: set[str] = set()
    views = [context, (status.get("result") or {}).get("context") or {}]
    for view in views:
        out = view.get(f"_outputs.{node_id}")
        if isinstance(out, Mapping) and out.get("tok"):
            seen.add(str(out["tok"]))
        for successor in _successors(node_id):
            saw = (view.get(f"_outputs.{successor}") or {}).get("saw") or {}
            if saw.get(node_id):
                seen.add(str(saw[node_id]))
    return seen


def _successors(node_id: str) -> tuple[str, ...]:
    if node_id == "src":
        return BRANCHES
    return ("join",) if node_id in BRANCHES else ()


# --- bad messages ---------------------------------------------------------------------------

#: The fault the worker's ERROR line must name, per category (fragments of its messages).
NOT_JSON: Final = "not valid JSON"
NOT_OBJECT: Final = "must be a JSON object"
NOT_STRING: Final = "must be a non-empty string"
NOT_NUMBER: Final = "'notBefore' must be a number"
TOO_BIG: Final = "bytes, over"
TOO_LONG: Final = "longer than 512 characters"
NO_RUN: Final = "has no state"
CONTROL: Final = "contains control characters"
NO_NODE: Final = "has no node"
NO_BLUEPRINT: Final = "not found in the worker's runtime registry"
#: A body bigger than parse_job's limit (256 KiB), yet under SQS's (1 MiB on new queues).
OVERSIZED_BYTES: Final = 300 * 1024


@dataclass(frozen=True)
class BadMessage:
    category: str
    body: str
    fault: str  # what the worker's "dropping message <id>: ..." line must contain
    run_id: str | None = None  # the existing run it names, if any


def _job(run: Any = "r", bp: Any = "diamond", node: Any = "src", **extra: Any) -> str:
    import orjson

    return orjson.dumps({"runId": run, "blueprintId": bp, "nodeId": node, **extra}).decode()


def bad_messages(count: int, *, good_runs: list[str], sacrificial_runs: list[str], seed: int = 0,
                 oversized: bool = True) -> list[BadMessage]:
    """`count` malformed messages, cycling through every category.

    `good_runs` are runs that must not be affected (jobs for unknown nodes name them);
    `sacrificial_runs` exist in the tables and get jobs for an unknown blueprint, which fail
    them by the documented policy (as TS). `oversized` adds bodies over 256 KiB (one per cycle).
    """
    import random

    rng = random.Random(seed)

    def fresh() -> str:
        return f"bad-{uuid.UUID(int=rng.getrandbits(128)).hex}"

    makers: list[Callable[[], BadMessage]] = [
        lambda: BadMessage("invalid-json", rng.choice(["{", "not json at all", '{"runId": "a",', "[1, 2",
                                                       "{'runId': 'a'}", '{"runId": "a"} trailing']), NOT_JSON),
        lambda: BadMessage("invalid-json", "[" * 2000, NOT_JSON),  # past orjson's depth limit
        lambda: BadMessage("invalid-json", '{"runId": 1e400, "blueprintId": "d", "nodeId": "n"}', NOT_JSON),
        lambda: BadMessage("invalid-json", '{"runId": "\\ud800", "blueprintId": "d", "nodeId": "n"}', NOT_JSON),
        lambda: BadMessage("not-an-object", rng.choice(["null", "[]", '"job"', "42", "true"]), NOT_OBJECT),
        lambda: BadMessage("wrong-type", _job(run=rng.choice([5, None, ["a"], "", {"a": 1}, True, 1.5])), NOT_STRING),
        lambda: BadMessage("wrong-type", _job(run=fresh(), node=rng.choice([0, None, [], False])), NOT_STRING),
        lambda: BadMessage("wrong-type", '{"nodeId": "src"}', NOT_STRING),
        lambda: BadMessage("wrong-type", _job(run=fresh(), notBefore=rng.choice(["soon", True, [1]])), NOT_NUMBER),
        lambda: BadMessage("oversized", _job(run="r" * rng.randint(513, 5000)), TOO_LONG),
        lambda: BadMessage("unknown-run", _job(run=fresh()), NO_RUN),
        lambda: BadMessage("control-characters", _job(run="\u0000\u001b[31m" + fresh()), CONTROL),
        lambda: BadMessage("unknown-run", _job(run="😀" * 512), NO_RUN),
        lambda: BadMessage("unknown-run", _job(run=fresh(), bp="no-such-blueprint"), NO_RUN),
    ]
    if good_runs:
        makers.append(lambda: _named(BadMessage("unknown-node", "", NO_NODE), rng.choice(good_runs),
                                     node=rng.choice(["no-such-node", "SRC", "src ", "_outputs.src"])))
    if sacrificial_runs:
        makers.append(lambda: _named(BadMessage("unknown-blueprint", "", NO_BLUEPRINT), rng.choice(sacrificial_runs),
                                     bp="no-such-blueprint"))
    if oversized:
        makers.append(lambda: BadMessage("oversized", _job(run=fresh(), pad="p" * OVERSIZED_BYTES), TOO_BIG))
    made = [makers[i % len(makers)]() for i in range(count)]
    rng.shuffle(made)
    return made


def _named(template: BadMessage, run_id: str, **fields: Any) -> BadMessage:
    return BadMessage(template.category, _job(run=run_id, **fields), template.fault, run_id)


def send_bad_messages(sqs: Any, queue_url: str, messages: list[BadMessage]) -> dict[str, BadMessage]:
    """Send `messages` (batches of 10, big ones alone); returns SQS message id -> message."""
    sent: dict[str, BadMessage] = {}
    small = [m for m in messages if len(m.body.encode()) < 20_000]
    for message in (m for m in messages if len(m.body.encode()) >= 20_000):
        sent[sqs.send_message(QueueUrl=queue_url, MessageBody=message.body)["MessageId"]] = message
    for start in range(0, len(small), 10):
        chunk = small[start:start + 10]
        entries = [{"Id": str(i), "MessageBody": m.body} for i, m in enumerate(chunk)]
        response = sqs.send_message_batch(QueueUrl=queue_url, Entries=entries)
        if response.get("Failed"):
            raise RuntimeError(f"SQS refused bad messages: {response['Failed']}")
        for entry in response["Successful"]:
            sent[entry["MessageId"]] = chunk[int(entry["Id"])]
    return sent


def dropped_messages(log_text: str) -> dict[str, str]:
    """message id -> the fault, from a worker's `dropping message <id>: <fault>` ERROR lines."""
    found: dict[str, str] = {}
    for line in log_text.splitlines():
        marker = line.find("dropping message ")
        if marker >= 0 and " ERROR " in line[:marker]:
            message_id, _, fault = line[marker + len("dropping message "):].partition(": ")
            found.setdefault(message_id, fault)
    return found
