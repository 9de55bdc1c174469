"""Fuzzing blueprints: random structures, config types and expressions, loaded and run.

For every generated blueprint: loading raises nothing but BlueprintError; a blueprint that
loads runs in-process (`FlowRuntime`, trivial nodes, sleeps that take no time) to a status
within a bounded time, and raises nothing; and nothing from the blueprint is executed as
code: eval/exec/compile are never called while it loads or runs, and injection payloads in
its expressions leave no trace.
"""

from __future__ import annotations

import asyncio
import builtins
import contextlib
import os
import random
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

from flowcraft_sqs.blueprint import BUILTIN_USES, load_blueprint
from flowcraft_sqs.errors import BlueprintError
from flowcraft_sqs.expressions import DefaultEvaluator
from flowcraft_sqs.runtime import FlowRuntime

#: Each run must end within this long; the trivial nodes take microseconds.
RUN_TIMEOUT_S = 3.0
FUZZ_SETTINGS = settings(max_examples=300, deadline=None,  # RUN_TIMEOUT_S bounds each example
                         suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large,
                                                HealthCheck.filter_too_much])
STATUSES = {"completed", "failed", "cancelled", "awaiting"}
PWNED = Path(tempfile.gettempdir()) / f"flowcraft-blueprint-fuzz-{os.getpid()}"

# --- trivial nodes --------------------------------------------------------------------------


def ok(ctx: Any) -> dict[str, Any]:
    return {"output": {"n": 1, "input": ctx.input if isinstance(ctx.input, (int, str, type(None))) else None}}


def fail(ctx: Any) -> None:
    raise ValueError("this node always fails")


def act(ctx: Any) -> dict[str, Any]:
    return {"output": ctx.params.get("out", 1), "action": ctx.params.get("action", "a")}


async def later(ctx: Any) -> dict[str, Any]:
    await asyncio.sleep(0)
    return {"output": "later"}


def item(ctx: Any) -> dict[str, Any]:
    return {"output": ctx.input}


REGISTRY = {"ok": ok, "fail": fail, "act": act, "later": later, "item": item}

# --- strategies -----------------------------------------------------------------------------

IDS = ["a", "b", "c", "d", "e", "a.b", "_x", "λ", "runId", "fc:v", "constructor", "__proto__"]
INJECTIONS = [
    "__import__('pathlib').Path(" + repr(str(PWNED)) + ").touch()",
    "open(" + repr(str(PWNED)) + ", 'w')",
    "eval('1+1')", "exec('x=1')", "compile('1', 'f', 'eval')",
    "().__class__.__bases__[0].__subclasses__()", "x.__class__.__init__.__globals__",
    "constructor.constructor('return process')()", "this.constructor", "globalThis",
    "require('child_process').execSync('touch pwn')", "x; import os", "`${1}`", "x => x",
    "a.__dict__", "input['__class__']", "lambda: 1",
]
SAFE = ["x > 1", "input.v === 1", "!flag", "a && b || c", "x ? 'y' : 'z'", "items.length",
        "obj['k-1']", "a?.b?.c", "1 + 'a'", "n % 0", "input", "true", "null", "x == undefined",
        "context.x", "'a' < 'b'", "-x * 2 / 3"]
json_leaf = st.none() | st.booleans() | st.integers(-5, 10**20) | st.floats() | st.text(max_size=8)
json_value = st.recursive(json_leaf, lambda c: st.lists(c, max_size=3) | st.dictionaries(st.text(max_size=5), c, max_size=3),
                          max_leaves=8)
node_id = st.sampled_from(IDS)
uses = st.sampled_from([*REGISTRY, *REGISTRY, *sorted(BUILTIN_USES), "missing"])
clean_uses = st.sampled_from([*REGISTRY, *REGISTRY, *sorted(BUILTIN_USES - {"webhook", "batch-scatter"})])
junk = st.integers() | st.lists(st.integers(), max_size=2) | st.booleans() | st.text(max_size=4)


class Dice:
    """The example's yes/no decisions, from a seeded Random: hypothesis draws small integers
    far more often than others, which would make every rare fault common."""

    def __init__(self, seed: int, clean: bool = False) -> None:
        self.rng = random.Random(seed)
        self.clean = clean  # no wrong types, no values the loader refuses: blueprints that run

    def __call__(self, p: float) -> bool:
        return self.rng.random() < p

    def junk_or(self, strategy: st.SearchStrategy[Any], p: float = 0.03) -> st.SearchStrategy[Any]:
        """`strategy`, or (with probability `p`) a value of the wrong type."""
        return junk if not self.clean and self(p) else strategy

    def expression(self) -> st.SearchStrategy[str]:
        if self(0.1):
            return st.sampled_from(INJECTIONS)
        return st.text(max_size=40) if self(0.1) else st.sampled_from(SAFE)


def configs(dice: Dice, ids: list[str]) -> dict[str, st.SearchStrategy[Any]]:
    fields = {
        "maxRetries": dice.junk_or(st.integers(-2, 4) | st.floats(-1, 4)),
        "retryDelay": dice.junk_or(st.integers(0 if dice.clean else -1, 10**9) | st.floats(0 if dice.clean else None)),
        "timeout": dice.junk_or(st.integers(1 if dice.clean else -1, 10**9) | st.floats(0.001, 10**6)),
        "joinStrategy": dice.junk_or(st.sampled_from(["all", "any", None])),
    }
    if dice(0.15):
        fields["fallback"] = dice.junk_or(st.sampled_from(ids or ["a"]))
    return {name: strategy for name, strategy in fields.items() if dice(0.4)}


def params(dice: Dice, bp_id: str, ids: list[str]) -> dict[str, st.SearchStrategy[Any]]:
    fields = {
        "condition": dice.expression(), "maxIterations": dice.junk_or(st.integers(-1, 50)),
        "blueprintId": dice.junk_or(st.sampled_from([bp_id, "other", ""])),
        "duration": dice.junk_or(st.integers(-5, 10**12) | st.sampled_from(["30s", "5m", "1d", "soon"])),
        "workerUsesKey": dice.junk_or(st.sampled_from(["item", "ok", "fail", "missing"])),
        "gatherNodeId": dice.junk_or(st.sampled_from(ids or ["a"])), "chunkSize": dice.junk_or(st.integers(-1, 5)),
        "outputKey": st.text(max_size=4), "action": st.sampled_from(["a", "b", "continue", "break"]),
        "out": json_value,
        "inputs": dice.junk_or(st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2)),
        "outputs": dice.junk_or(st.dictionaries(st.text(max_size=3), st.text(max_size=3), max_size=2)),
    }
    return {name: strategy for name, strategy in fields.items() if dice(0.25)}


@st.composite
def blueprints(draw: st.DrawFn, clean: bool = False) -> Any:
    """Blueprint-shaped data; `clean` ones mostly load (some expressions still do not parse)."""
    dice = Dice(draw(st.integers(0, 2**32 - 1)), clean)
    bp_id = draw(dice.junk_or(st.sampled_from(["fuzz", "other"]) | st.text(min_size=1, max_size=5)))
    ids = draw(st.lists(node_id, min_size=0, max_size=7, unique=True))
    if ids and not clean and dice(0.05):
        ids.append(draw(dice.junk_or(st.sampled_from(ids), 0.5)))  # a duplicate id, or not an id at all
    nodes: list[Any] = []
    for nid in ids:
        node: dict[str, Any] = {"id": nid, "uses": draw(dice.junk_or(clean_uses if clean else uses))}
        if dice(0.6):
            node["params"] = draw(dice.junk_or(st.fixed_dictionaries(params(dice, str(bp_id), ids))))
        if dice(0.5):
            node["config"] = draw(dice.junk_or(st.fixed_dictionaries(configs(dice, ids))))
        if dice(0.3):
            node["inputs"] = draw(dice.junk_or(st.sampled_from(ids) | st.dictionaries(
                st.text(max_size=3), st.sampled_from(ids), max_size=2)))
        nodes.append(draw(dice.junk_or(st.just(node), 0.01)))
    edges: list[Any] = []
    for _ in range(draw(st.integers(0, 9)) if ids else int(dice(0.05))):
        endpoint = dice.junk_or(st.sampled_from(ids), 0.01) if ids else junk
        edge: dict[str, Any] = {"source": draw(endpoint), "target": draw(endpoint)}
        if dice(0.3):
            edge["action"] = draw(dice.junk_or(st.sampled_from(["a", "b", "continue", "break"])))
        for name in ("condition", "transform"):
            if dice(0.25):
                edge[name] = draw(dice.expression())
        edges.append(edge)
    raw: dict[str, Any] = {"id": bp_id, "nodes": nodes, "edges": edges}
    if dice(0.3):
        raw["metadata"] = draw(dice.junk_or(st.dictionaries(st.sampled_from(["version", "name"]), json_value, max_size=2), 0.2))
    if clean and dice(0.3):  # a batch: scatter over the input, gather into `gathered`
        nodes += [{"id": "scatter", "uses": "batch-scatter", "params": {"workerUsesKey": "item", "gatherNodeId": "gather",
                                                                         "chunkSize": draw(st.integers(1, 3))}},
                  {"id": "gather", "uses": "batch-gather", "params": {"outputKey": "gathered"}}]
        edges.append({"source": "scatter", "target": "gather"})
    if not clean and dice(0.02):
        raw[draw(st.sampled_from(["nodes", "edges"]))] = draw(junk | st.dictionaries(st.text(max_size=3), st.just({}), max_size=2))
    return raw


# --- guards ---------------------------------------------------------------------------------


@contextlib.contextmanager
def code_execution_recorded() -> Iterator[list[str]]:
    """eval/exec/compile record every call on text (and still work). Calls on code objects
    are the import system loading a module for the first time, not text being run."""
    calls: list[str] = []
    originals = {name: getattr(builtins, name) for name in ("eval", "exec", "compile")}

    def recorder(name: str) -> Any:
        def record(*args: Any, **kwargs: Any) -> Any:
            if args and isinstance(args[0], (str, bytes)):
                calls.append(f"{name}({args[0][:80]!r})")
            return originals[name](*args, **kwargs)
        return record

    for name in originals:
        setattr(builtins, name, recorder(name))
    try:
        yield calls
    finally:
        for name, original in originals.items():
            setattr(builtins, name, original)


async def _sleep_no_time(seconds: float) -> None:
    await asyncio.sleep(0)


#: What a fuzzed blueprint's subflows may start (its own id is not registered: see below).
CHILD: dict[str, Any] = {"id": "other", "nodes": [{"id": "a", "uses": "ok"}, {"id": "b", "uses": "act"}],
         "edges": [{"source": "a", "target": "b"}]}
CONTEXTS = st.dictionaries(st.sampled_from(["x", "flag", "items", "input", "a"]), json_value, max_size=3)


def run_bounded(bp: Any, context: dict[str, Any], blueprints: dict[str, Any]) -> Any:
    runtime = FlowRuntime(registry=REGISTRY, blueprints=blueprints, sleep=_sleep_no_time)
    return asyncio.run(asyncio.wait_for(runtime.run(bp, context), RUN_TIMEOUT_S))


@settings(FUZZ_SETTINGS, max_examples=1000)  # loading alone is cheap: explore more
@given(blueprints())
@example({"id": "meta", "nodes": [], "metadata": "text"})
@example({"id": "batch", "nodes": [{"id": "s", "uses": "batch-scatter",
                                     "params": {"workerUsesKey": "item", "gatherNodeId": ["g"]}}]})
def test_loading_any_blueprint_raises_nothing_but_blueprint_error(raw: Any) -> None:
    # Given any blueprint-shaped data, When it is loaded, Then it loads or raises BlueprintError
    with code_execution_recorded() as calls, contextlib.suppress(BlueprintError):
        load_blueprint(raw, registry=REGISTRY, evaluator=DefaultEvaluator())
    # And nothing in it was executed as code
    assert not calls, calls
    assert not PWNED.exists()


@FUZZ_SETTINGS
@given(blueprints(clean=True), CONTEXTS)
def test_a_loaded_blueprint_runs_to_a_status_in_bounded_time_and_executes_nothing_from_its_text(
    raw: Any, context: dict[str, Any],
) -> None:
    # Given a random blueprint that loads and has somewhere to start (the two tests below
    # cover those that have not); its subflows may start `other`
    try:
        bp = load_blueprint(raw, registry=REGISTRY, evaluator=DefaultEvaluator())
    except (BlueprintError, TypeError, ValueError):  # TypeError/ValueError: the loading test's bugs
        assume(False)
    assume(bp.start_node_ids and bp.id != CHILD["id"])
    # When it runs with a random initial context
    with code_execution_recorded() as calls:
        result = run_bounded(bp, context, {CHILD["id"]: CHILD})
    # Then it ends in a status, raising nothing, within the bound
    assert result.status in STATUSES, result
    # And nothing in it was executed as code
    assert not calls, calls
    assert not PWNED.exists()


def test_a_blueprint_with_no_start_node_is_refused_or_its_runs_end() -> None:
    # Given blueprints where no node is free of incoming edges: none at all, or a cycle
    empty = {"id": "empty", "nodes": [], "edges": []}
    cycle = {"id": "cycle", "nodes": [{"id": "a", "uses": "ok"}, {"id": "b", "uses": "ok"}],
             "edges": [{"source": "a", "target": "b"}, {"source": "b", "target": "a"}]}
    for raw in (empty, cycle):
        # When it is loaded and run, Then it is refused, or the run ends in a status (not 'running')
        try:
            bp = load_blueprint(raw, registry=REGISTRY)
        except BlueprintError:
            continue
        assert run_bounded(bp, {}, {}).status in STATUSES, raw["id"]


def test_a_subflow_that_starts_its_own_blueprint_is_refused_or_bounded() -> None:
    # Given a blueprint whose only node starts the blueprint itself as a subflow
    raw = {"id": "again", "nodes": [{"id": "a", "uses": "subflow", "params": {"blueprintId": "again"}}]}
    # When it is loaded and run, Then it is refused, or the recursion ends in a status in time
    try:
        bp = load_blueprint(raw, registry=REGISTRY)
    except BlueprintError:
        return
    assert run_bounded(bp, {}, {"again": raw}).status in STATUSES
