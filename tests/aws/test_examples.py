"""The examples in flowcraft_sqs/examples run to completion through the single-process
SqsAdapter against the local server, and the seed document's three scripts (worker, client,
reconcile) work in their Python spelling."""

from __future__ import annotations

import os
import random
import time
from pathlib import Path
from typing import Any

import pytest

from flowcraft_sqs import protocol
from flowcraft_sqs.adapter import SqsAdapter
from flowcraft_sqs.client import FlowcraftClient, RunResult
from flowcraft_sqs.examples import app, config, moderation
from flowcraft_sqs.examples import client as seed_client
from flowcraft_sqs.examples.reconcile import make_reconciler, run_reconciliation
from flowcraft_sqs.examples.worker import make_adapter

pytestmark = pytest.mark.aws

TIMEOUT_S = 60.0


def _adapter(aws_clients: Any, infra: Any) -> SqsAdapter:
    return make_adapter(aws_clients.sqs, aws_clients.dynamodb, infra.queue_url,
                        context_table_name=infra.context_table,
                        status_table_name=infra.status_table,
                        coordination_table_name=infra.coordination_table,
                        wait_time_seconds=1)


def _client(aws_clients: Any, infra: Any) -> FlowcraftClient:
    return FlowcraftClient(aws_clients.sqs, aws_clients.dynamodb, infra.queue_url,
                           infra.context_table, infra.status_table, blueprints=app.blueprints)


def _drive(adapter: SqsAdapter, client: FlowcraftClient, run_ids: list[str]) -> dict[str, RunResult]:
    """Poll the queue in this thread until every run has a final status."""
    deadline = time.monotonic() + TIMEOUT_S
    while time.monotonic() < deadline:
        seen = {run_id: client.status(run_id) for run_id in run_ids}
        if all(s is not None and s.status in protocol.FINAL_STATUSES for s in seen.values()):
            return {run_id: s for run_id, s in seen.items() if s is not None}
        adapter.poll_once(wait_time_seconds=1)
    raise AssertionError(f"runs not finished after {TIMEOUT_S} s: {seen}")


def test_every_moderation_verdict_completes_with_its_moderation_result(aws_clients: Any,
                                                                       infra: Any) -> None:
    # Given the seed's moderation workflow and one post per verdict,
    adapter, client = _adapter(aws_clients, infra), _client(aws_clients, infra)
    runs = {client.start_run(moderation.BLUEPRINT_ID, context): expected
            for _, context, expected in moderation.SAMPLE_POSTS}

    # when the adapter works the queue,
    results = _drive(adapter, client, list(runs))

    # then each run completed, through the branch its post called for.
    for run_id, expected in runs.items():
        result = results[run_id]
        assert result.status == "completed", result.reason
        assert result.context is not None
        assert result.context["moderation_result"].startswith(f"{expected}: ")
        assert result.context["_outputs.triage_post"] == expected


def test_the_seed_use_case_redacts_the_pii(aws_clients: Any, infra: Any) -> None:
    adapter, client = _adapter(aws_clients, infra), _client(aws_clients, infra)
    use_case = config["4.content-moderation"]
    run_id = client.start_run(use_case["mainWorkflowId"], use_case["initialContext"])
    result = _drive(adapter, client, [run_id])[run_id]
    assert result.context is not None
    assert result.context["moderation_result"] == (
        "action_redact: post by user-456 redacted: Hi, I need help with my account. "
        "My email is [EMAIL] and my phone is [PHONE].")
    # Only the chosen branch ran; the others never started.
    ran = {k.removeprefix("_outputs.") for k in result.context if k.startswith("_outputs.")}
    assert ran == {"check_for_pii", "check_for_hate_speech", "check_for_spam", "triage_post",
                   "redact_post_branch", "final_log"}


def test_diamond_and_long_complete(aws_clients: Any, infra: Any) -> None:
    adapter, client = _adapter(aws_clients, infra), _client(aws_clients, infra)
    diamond = client.start_run("diamond", {"value": 3})
    long = client.start_run("long", {"seconds": 0.2})
    results = _drive(adapter, client, [diamond, long])
    assert results[diamond].context is not None and results[long].context is not None
    assert results[diamond].context["diamond_result"] == {
        "value": 3, "doubled": 6, "squared": 9, "sum": 15}
    assert results[long].context["long_result"]["slept_s"] >= 0.2


def test_the_seed_client_prints_completed_and_the_moderation_result(
        aws_clients: Any, infra: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a worker running in a thread, as the seed's worker.ts does,
    adapter = _adapter(aws_clients, infra)
    adapter.start()
    try:
        # when the seed's client.ts (in Python, raw boto3 calls) starts a run and waits,
        outcome = seed_client.main(aws_clients.sqs, aws_clients.dynamodb, infra.queue_url,
                                   context_table_name=infra.context_table,
                                   status_table_name=infra.status_table, timeout_ms=30_000)
    finally:
        assert adapter.stop(timeout=10)

    # then it printed what the seed's client prints.
    out = capsys.readouterr().out
    assert outcome["status"] == "completed"
    assert f"✅ Workflow Run ID: {outcome['runId']} COMPLETED." in out
    assert ("Final Output: action_redact: post by user-456 redacted: Hi, I need help with my "
            "account. My email is [EMAIL] and my phone is [PHONE].") in out


def test_reconcile_resumes_a_run_whose_start_jobs_were_never_sent(
        aws_clients: Any, infra: Any, capsys: pytest.CaptureFixture[str]) -> None:
    # Given a run whose client died after writing its state and status, before its jobs,
    client = _client(aws_clients, infra)
    bp = client.blueprints[moderation.BLUEPRINT_ID]
    state = protocol.new_run(bp, str(random.randrange(1_000_000)),
                             dict(moderation.SEED_INITIAL_CONTEXT), time.time() - 1)
    client.store.create_run(state)
    client.statuses.start(state.run_id, time.time() - 1)

    # when reconcile.py runs (with a threshold of 0 s: every running run is stalled),
    reconciler = make_reconciler(aws_clients.sqs, aws_clients.dynamodb, infra.queue_url,
                                 threshold_s=0, context_table_name=infra.context_table,
                                 status_table_name=infra.status_table,
                                 coordination_table_name=infra.coordination_table)
    stats = run_reconciliation(reconciler)

    # then it re-enqueued the run's start jobs, and a worker finishes it.
    assert (stats.stalled_runs, stats.reconciled_runs, stats.failed_runs) == (1, 1, 0)
    assert "Stalled: 1, Resumed: 1, Failed: 0" in capsys.readouterr().out
    result = _drive(_adapter(aws_clients, infra), client, [state.run_id])[state.run_id]
    assert result.status == "completed"
    assert result.context is not None
    assert result.context["moderation_result"].startswith("action_redact: ")


# --- the README's Python snippets run as written -------------------------------------------

README = Path(__file__).resolve().parents[2] / "README.md"


def readme_snippet(heading: str) -> str:
    """The first ```python block after the line `heading` in README.md."""
    text = README.read_text()
    after = text[text.index(heading + "\n"):]
    return after.split("```python\n", 1)[1].split("```", 1)[0]


@pytest.mark.timeout(120)
def test_the_readme_worker_client_and_reconcile_snippets_run_as_written(
        capsys: pytest.CaptureFixture[str]) -> None:
    # Given a server of our own (the snippets use the seed's fixed names) and its tables,
    from flowcraft_sqs.aws import make_clients
    from flowcraft_sqs.infra import ensure_infrastructure
    from flowcraft_sqs.local import start_local_aws

    aws = start_local_aws()
    saved = dict(os.environ)
    namespace: dict[str, Any] = {}
    try:
        os.environ.update(aws.env())
        clients = make_clients()
        os.environ["SQS_QUEUE_URL"] = ensure_infrastructure(clients.sqs, clients.dynamodb).queue_url
        # when the README's worker, client and reconcile snippets run one after another,
        exec(readme_snippet("### `worker.py`"), namespace)
        try:
            exec(readme_snippet("### `client.py`"), namespace)
            exec(readme_snippet("### `reconcile.py`"), namespace)
        finally:
            namespace["adapter"].stop(timeout=30)  # returns after its current 20 s long poll
    finally:
        os.environ.clear()
        os.environ.update(saved)
        aws.stop()

    # then the run completed with its moderation result, and the reconciler found nothing stalled.
    out = capsys.readouterr().out
    assert "completed action_redact: post by user-456 redacted" in out
    assert "Scanned: 1, Stalled: 0, Resumed: 0, Failed: 0" in out


def test_the_readme_node_example_runs_as_written() -> None:
    from flowcraft_sqs.node_context import NodeContext, RunContextView

    namespace: dict[str, Any] = {}
    exec(readme_snippet("### Your own workflows"), namespace)
    view = RunContextView({"userId": "user-1"})
    result = namespace["classify"](NodeContext(view, input={"text": "buy spam now"}))
    assert result == {"output": {"user": "user-1"}, "action": "unsafe"}
    assert view.writes() == {"checked": True}
