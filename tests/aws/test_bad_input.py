"""Bad input and security, as automated checks against real workers and the local server.

The bad-message policy checked here is the one `adapter.py` and `receiver.py` document: a
message that can never succeed (not JSON, not a job, ids of the wrong type or size, a body
over 256 KiB, an unknown run, node or blueprint) is logged at ERROR as
`dropping message <id>: <fault>` — its id and fault, never its body — and deleted at once; it
does not wait for the DLQ. A job for a blueprint the worker lacks fails *that run* when the
run exists (as TS). Everything else that raises leaves the message for redelivery.

Also: values DynamoDB cannot hold and contexts past 400 KB fail the run with a reason that
names the value or the size, leaving the stored item intact; credentials and message bodies
never reach the log at the default level; and, statically, nothing unpickles, nothing
evaluates text, every multiprocessing start method is explicit.
"""

from __future__ import annotations

import ast
import logging
import re
import time
from collections import Counter
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import flowcraft_sqs
from flowcraft_sqs import protocol
from flowcraft_sqs.errors import MalformedMessage
from flowcraft_sqs.messages import Job, parse_job
from flowcraft_sqs.testing import chaosapp
from flowcraft_sqs.testing.fleet import Fleet, wait_until

PACKAGE = Path(flowcraft_sqs.__file__).resolve().parent
FAST = ("--procs", "2", "--visibility-timeout", "5", "--wait-time", "1")
BAD_MESSAGES = 300
GOOD_RUNS = 20
SECRET_BODY = "SECRET-BODY-6f1c"  # in message bodies and run contexts
SECRET_KEY = "SECRET-KEY-93ad"  # AWS_SECRET_ACCESS_KEY
SECRET_TOKEN = "SECRET-TOKEN-1b77"  # AWS_SESSION_TOKEN
FORGED = "FORGED-LOG-LINE"


@pytest.fixture
def fleet(tmp_path: Path, local_aws: Any, infra: Any) -> Iterator[Fleet]:
    fleet = Fleet(tmp_path, infra, local_aws.env())
    yield fleet
    fleet.close()


def sacrificial_runs(fleet: Fleet, count: int) -> list[str]:
    """Runs with state and a `running` status but no job: bad messages will name them."""
    bp = fleet.client.blueprints["diamond"]
    run_ids = [f"sacrificial-{i}-{time.time_ns()}" for i in range(count)]
    for run_id in run_ids:
        fleet.store.create_run(protocol.new_run(bp, run_id, {"x": 1}, time.time()))
        fleet.statuses.start(run_id, time.time())
    return run_ids


# --- malformed messages ---------------------------------------------------------------------


@pytest.mark.process
@pytest.mark.timeout(150)
def test_malformed_messages_mixed_into_a_good_load_are_each_dropped_once_with_an_error_naming_the_fault(
    fleet: Fleet,
) -> None:
    # Given good diamond runs, then 300 malformed messages of every kind, then more good runs
    good = fleet.start("diamond", GOOD_RUNS // 2)
    victims = sacrificial_runs(fleet, 3)
    bad = chaosapp.bad_messages(BAD_MESSAGES, good_runs=good, sacrificial_runs=victims, seed=11)
    sent = chaosapp.send_bad_messages(fleet.direct_sqs, fleet.infra.queue_url, bad)
    good += fleet.start("diamond", GOOD_RUNS // 2, first_x=GOOD_RUNS // 2)
    # When a worker drains the queue
    worker = fleet.worker(*FAST)
    fleet.wait_final(good + victims, 90)
    wait_until(lambda: fleet.queue_counts() == (0, 0), 30, "the queue to drain", 0.25)
    # Then the worker never crashed, and the good runs completed as if nothing had happened
    assert worker.alive() and "CRITICAL" not in worker.log()
    verdict = fleet.verdict(good)
    assert verdict.ok, (verdict.summary(), verdict.problems[:5])
    # And every bad message was dropped with one ERROR line naming its fault
    dropped = chaosapp.dropped_messages(worker.log())
    missing = {mid: m.category for mid, m in sent.items() if mid not in dropped}
    assert not missing, f"{len(missing)} bad messages not dropped, e.g. {list(missing.items())[:5]}"
    wrong = {m.category: dropped[mid] for mid, m in sent.items() if m.fault not in dropped[mid]}
    assert not wrong, wrong
    assert Counter(m.category for m in sent.values()).keys() >= {
        "invalid-json", "not-an-object", "wrong-type", "oversized", "unknown-run", "unknown-node",
        "unknown-blueprint"}
    # And none of them was left for the DLQ
    assert fleet.queue_counts(fleet.infra.dlq_url) == (0, 0)
    # And a job for a blueprint the worker lacks failed its (existing) run, naming the blueprint
    for run_id in victims:
        item = fleet.statuses.get(run_id) or {}
        assert item.get("status") == "failed" and "no-such-blueprint" in item.get("reason", ""), item


def _as_json(value: Any) -> bytes:
    try:
        return orjson.dumps(value)
    except TypeError:  # NaN is encoded as null; only integers past 64 bits refuse
        return b"{"


@settings(max_examples=300, deadline=500, suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(
    st.text(max_size=200),
    st.binary(max_size=200),
    st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=20),
                 lambda children: st.lists(children, max_size=4) | st.dictionaries(
                     st.sampled_from(["runId", "blueprintId", "nodeId", "notBefore", "x"]), children, max_size=5),
                 max_leaves=12).map(_as_json),
))
def test_parse_job_turns_any_body_into_a_job_or_malformed_message(body: str | bytes) -> None:
    # Given any body at all, When it is parsed, Then it is a Job or a MalformedMessage, nothing else
    try:
        job = parse_job(body)
    except MalformedMessage:
        return
    assert isinstance(job, Job) and all(isinstance(v, str) and v for v in (job.run_id, job.blueprint_id, job.node_id))




# --- values DynamoDB cannot hold ------------------------------------------------------------

#: kind -> what the failure reason must name
UNSTORABLE_REASONS = {
    "nan": "nan", "inf": "inf", "set": "set", "bytes": "bytes", "object": "object",
    "bigint": str(2**70), "intkey": "map key 1", "context-nan": "context key 'written'",
}


@pytest.mark.process
@pytest.mark.timeout(120)
def test_unstorable_outputs_and_a_context_past_400_kb_fail_the_run_naming_the_value_and_keep_the_item(
    fleet: Fleet,
) -> None:
    # Given runs whose second node returns a value DynamoDB cannot hold, and one whose second
    # node's output takes the run's context past DynamoDB's 400 KB item limit
    kinds = {fleet.client.start_run("unstorable", {"kind": kind}): kind for kind in UNSTORABLE_REASONS}
    (too_big,) = fleet.start("too-big", 1)
    # When a worker runs them
    worker = fleet.worker(*FAST)
    finals = fleet.wait_final([*kinds, too_big], 60)
    states = fleet.store.load_runs([*kinds, too_big])
    # Then each run failed with a reason naming the value, and its stored item holds the
    # first node's output and nothing of the bad one
    for run_id, kind in kinds.items():
        item, state = finals[run_id] or {}, states[run_id]
        assert item.get("status") == "failed", (kind, item)
        assert "Node 'bad' failed" in item["reason"] and UNSTORABLE_REASONS[kind] in item["reason"], (kind, item)
        assert state is not None and state.status == "failed" and state.meta.reason == item["reason"]
        assert state.context["_outputs.first"] == "f" * 10
        assert "_outputs.bad" not in state.context and "written" not in state.context, (kind, sorted(state.context))
    # And the run past 400 KB failed with a reason giving the size, its earlier output intact
    item, state = finals[too_big] or {}, states[too_big]
    size = re.search(r"would be (\d+) bytes, over the (\d+)-byte", item.get("reason", ""))
    assert item.get("status") == "failed" and size, item
    assert int(size[1]) > int(size[2]) == 400 * 1024
    assert state is not None and state.context["_outputs.fill"] == "f" * chaosapp.FILL_BYTES
    assert "_outputs.more" not in state.context
    assert worker.alive()


# --- log hygiene ----------------------------------------------------------------------------


def secret_messages() -> list[chaosapp.BadMessage]:
    """Bodies that carry SECRET_BODY where a careless log line would print it."""
    return [
        chaosapp.BadMessage("invalid-json", f'{{"runId": "{SECRET_BODY}"', chaosapp.NOT_JSON),
        chaosapp.BadMessage("wrong-type", chaosapp._job(run=5, note=SECRET_BODY), chaosapp.NOT_STRING),
        chaosapp.BadMessage("unknown-run", chaosapp._job(run="unknown-run-1", apiKey=SECRET_BODY), chaosapp.NO_RUN),
        chaosapp.BadMessage("oversized", chaosapp._job(run="r", pad=SECRET_BODY * 30_000), chaosapp.TOO_BIG),
        chaosapp.BadMessage("not-an-object", f'["{SECRET_BODY}"]', chaosapp.NOT_OBJECT),
    ]


def forging_messages(good: str) -> list[chaosapp.BadMessage]:
    """Ids with control characters: a newline that would start a forged line, a terminal
    escape, NUL. Ids are logged (they are what an operator acts on), so they must be escaped."""
    return [
        chaosapp.BadMessage("unknown-node", chaosapp._job(run=good, node=f"x\n{FORGED} fake entry"), chaosapp.NO_NODE),
        chaosapp.BadMessage("unknown-run", chaosapp._job(run="\u001b[31mred\u0000"), chaosapp.NO_RUN),
    ]


def worker_log(fleet: Fleet, bad: Callable[[str], list[chaosapp.BadMessage]]) -> str:
    """A worker at the default level, with marker credentials, handles a run whose context
    holds SECRET_BODY and the bad messages `bad(run_id)`; returns its log."""
    (good,) = [fleet.client.start_run("diamond", {"x": 3, "password": SECRET_BODY})]
    sent = chaosapp.send_bad_messages(fleet.direct_sqs, fleet.infra.queue_url, bad(good))
    worker = fleet.worker(*FAST, env={"AWS_SECRET_ACCESS_KEY": SECRET_KEY, "AWS_SESSION_TOKEN": SECRET_TOKEN})
    fleet.wait_final([good], 60)
    wait_until(lambda: set(sent) <= set(chaosapp.dropped_messages(worker.log())), 30, "every bad message")
    return worker.log()


def adapter_log(fleet: Fleet, bad: Callable[[str], list[chaosapp.BadMessage]],
                caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch) -> str:
    """The same with the single-process SqsAdapter, logging at INFO; returns what was logged."""
    from flowcraft_sqs.adapter import SqsAdapter
    from flowcraft_sqs.aws import make_clients

    monkeypatch.setenv("AWS_ACCESS_KEY_ID", "test")
    monkeypatch.setenv("AWS_SECRET_ACCESS_KEY", SECRET_KEY)
    monkeypatch.setenv("AWS_SESSION_TOKEN", SECRET_TOKEN)
    monkeypatch.setenv("AWS_REGION", fleet.env.get("AWS_REGION", "us-east-1"))
    clients = make_clients(sqs_endpoint_url=fleet.proxy.url, dynamodb_endpoint_url=fleet.ddb_proxy.url)
    (good,) = [fleet.client.start_run("diamond", {"x": 3, "password": SECRET_BODY})]
    sent = chaosapp.send_bad_messages(fleet.direct_sqs, fleet.infra.queue_url, bad(good))
    adapter = SqsAdapter(clients.sqs, clients.dynamodb, fleet.infra.queue_url, fleet.infra.context_table,
                         fleet.infra.status_table,
                         runtime_options={"registry": chaosapp.registry, "blueprints": chaosapp.blueprints})
    caplog.set_level(logging.INFO)
    deadline = time.monotonic() + 60
    while (fleet.unfinished([good]) or fleet.queue_counts()[0]) and time.monotonic() < deadline:
        adapter.poll_once(wait_time_seconds=1)
    assert not fleet.unfinished([good])
    dropped = chaosapp.dropped_messages("\n".join(f"x ERROR {r.getMessage()}" for r in caplog.records))
    assert set(sent) <= set(dropped), "every bad message is dropped with an ERROR"
    return caplog.text


def assert_no_secret(log: str) -> None:
    for marker in (SECRET_BODY, SECRET_KEY, SECRET_TOKEN):
        assert marker not in log, [line for line in log.splitlines() if marker in line][:3]


def assert_not_forged(log: str) -> None:
    assert not [line for line in log.splitlines() if line.startswith(FORGED)], "a message forged a log line"
    assert "\x1b" not in log and "\x00" not in log, "a message put control characters in the log"


@pytest.mark.process
@pytest.mark.timeout(120)
def test_a_worker_at_the_default_level_logs_neither_credentials_nor_message_bodies(fleet: Fleet) -> None:
    # Given credentials that are markers, a run whose context holds a secret, and bad
    # messages whose bodies hold it too; When a worker at the default level handles them
    log = worker_log(fleet, lambda good: secret_messages())
    # Then no marker appears in its log
    assert_no_secret(log)


def test_the_adapter_at_info_logs_neither_credentials_nor_message_bodies(
    fleet: Fleet, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the same, When the single-process adapter handles them with logging at INFO
    log = adapter_log(fleet, lambda good: secret_messages(), caplog, monkeypatch)
    # Then no marker appears in what it logged
    assert_no_secret(log)


@pytest.mark.process
@pytest.mark.timeout(120)
def test_ids_in_a_message_cannot_forge_a_line_of_the_worker_log(fleet: Fleet) -> None:
    # Given messages whose ids hold a newline + fake entry, a terminal escape and NUL
    # When a worker drops them, Then its log has no line they started and no control character
    assert_not_forged(worker_log(fleet, forging_messages))


def test_ids_in_a_message_cannot_forge_a_line_of_the_adapter_log(
    fleet: Fleet, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch,
) -> None:
    # Given the same, When the adapter drops them, Then what it logged holds no forged line
    assert_not_forged(adapter_log(fleet, forging_messages, caplog, monkeypatch))


# --- static checks --------------------------------------------------------------------------

#: Modules that turn bytes into objects (code execution on load), or that run text as code.
UNSAFE_MODULES = frozenset({"pickle", "cPickle", "_pickle", "marshal", "shelve", "dill", "cloudpickle",
                            "jsonpickle", "yaml", "code", "codeop"})
UNSAFE_BUILTINS = frozenset({"eval", "exec", "compile", "__import__", "breakpoint", "input"})
#: multiprocessing calls that use the default start method (fork on Linux before 3.14).
DEFAULT_CONTEXT_CALLS = frozenset({"Process", "Pool", "Queue", "SimpleQueue", "JoinableQueue", "Pipe",
                                   "Manager", "Lock", "RLock", "Event", "Condition", "Semaphore",
                                   "BoundedSemaphore", "Barrier", "Value", "Array", "set_start_method"})
SAFE_START_METHODS = frozenset({"spawn", "forkserver"})


def package_modules() -> list[tuple[str, ast.Module]]:
    return [(str(path.relative_to(PACKAGE.parent)), ast.parse(path.read_text(), str(path)))
            for path in sorted(PACKAGE.rglob("*.py"))]


def test_no_module_imports_a_deserializer_that_can_run_code_or_evaluates_text() -> None:
    # Given every module of the package, When its syntax tree is scanned
    found = []
    for name, tree in package_modules():
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                found += [f"{name}:{node.lineno} import {a.name}" for a in node.names
                          if a.name.split(".")[0] in UNSAFE_MODULES]
            elif isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in UNSAFE_MODULES:
                found.append(f"{name}:{node.lineno} from {node.module} import ...")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Name) and node.func.id in UNSAFE_BUILTINS:
                found.append(f"{name}:{node.lineno} {node.func.id}(...)")
            elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and \
                    node.func.attr in {"loads", "load"} and _root_name(node.func) in UNSAFE_MODULES:
                found.append(f"{name}:{node.lineno} {_root_name(node.func)}.{node.func.attr}(...)")
    # Then nothing unpickles, unmarshals or evaluates
    assert not found, found


def test_every_multiprocessing_start_method_is_spawn_or_forkserver() -> None:
    # Given every module of the package, When its uses of multiprocessing and fork are scanned
    found, contexts = [], 0
    for name, tree in package_modules():
        aliases = _multiprocessing_aliases(tree)
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.module == "multiprocessing":
                found += [f"{name}:{node.lineno} from multiprocessing import {a.name}" for a in node.names
                          if a.name in DEFAULT_CONTEXT_CALLS or a.name == "get_context"]
            if not isinstance(node, ast.Call) or not isinstance(node.func, ast.Attribute):
                continue
            owner = node.func.value
            if isinstance(owner, ast.Name) and owner.id == "os" and node.func.attr in {"fork", "forkpty"}:
                found.append(f"{name}:{node.lineno} os.{node.func.attr}()")
            if not (isinstance(owner, ast.Name) and owner.id in aliases):
                continue
            if node.func.attr in DEFAULT_CONTEXT_CALLS:
                found.append(f"{name}:{node.lineno} multiprocessing.{node.func.attr}() uses the default start method")
            elif node.func.attr == "get_context":
                contexts += 1
                method = node.args[0].value if node.args and isinstance(node.args[0], ast.Constant) else None
                if method not in SAFE_START_METHODS:
                    found.append(f"{name}:{node.lineno} get_context({method!r})")
    # Then each process is made from an explicit spawn or forkserver context, never fork
    assert not found, found
    assert contexts >= 1  # the supervisor's


def _root_name(node: ast.expr) -> str | None:
    while isinstance(node, ast.Attribute):
        node = node.value
    return node.id if isinstance(node, ast.Name) else None


def _multiprocessing_aliases(tree: ast.Module) -> set[str]:
    names = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names |= {a.asname or a.name for a in node.names if a.name == "multiprocessing"}
    return names
