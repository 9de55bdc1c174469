"""`flowcraft-sqs demo`, the README's first command, end to end in a subprocess: it starts
its own local AWS, a real `flowcraft-worker --procs 2`, runs the examples and the seed's
client flow, prints the results, and leaves no process behind."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import psutil
import pytest

ROOT = Path(__file__).resolve().parents[2]
DEMO_TIMEOUT_S = 150  # ~15 s normally; a first run also installs the local server
pytestmark = [pytest.mark.process, pytest.mark.slow, pytest.mark.timeout(DEMO_TIMEOUT_S + 30)]
SEED_FINAL_OUTPUT = ("Final Output: action_redact: post by user-456 redacted: Hi, I need help "
                     "with my account. My email is [EMAIL] and my phone is [PHONE].")


def run_demo(*args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    proc = subprocess.Popen([sys.executable, "-m", "flowcraft_sqs", "demo", *args], cwd=ROOT,
                            env={**os.environ, **(env or {})}, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, start_new_session=True)
    try:
        out, err = proc.communicate(timeout=DEMO_TIMEOUT_S)
    except subprocess.TimeoutExpired:
        os.killpg(proc.pid, signal.SIGKILL)
        out, err = proc.communicate()
        raise AssertionError(f"demo still running after {DEMO_TIMEOUT_S} s:\n{out}\n{err}") from None
    return subprocess.CompletedProcess(proc.args, proc.returncode, out, err)


def result_row(out: str, label: str) -> str:
    rows = [line for line in out.splitlines() if line.strip().startswith(label + " ")]
    assert rows, f"no result row for {label!r} in:\n{out}"
    return rows[-1]


def assert_runs_completed(out: str) -> None:
    for label, verdict in [("moderation: clean post", "action_approve: post by user-101"),
                           ("moderation: post with PII", "action_redact: post by user-456"),
                           ("moderation: spam", "action_delete_spam: spam post by user-303"),
                           ("moderation: threat", "action_ban: user user-404 banned")]:
        row = result_row(out, label)
        assert " completed " in row and verdict in row, row
    assert "{'value': 3, 'doubled': 6, 'squared': 9, 'sum': 15}" in result_row(out, "diamond")
    assert " completed " in result_row(out, "long (5 s node)")
    assert re.search(r"AWS requests made by the worker for these 6 runs \(31 nodes\): \d+, "
                     r"[\d.]+ per node", out), out
    assert "COMPLETED." in out and SEED_FINAL_OUTPUT in out


def test_demo_runs_the_examples_on_a_local_server_with_a_real_worker() -> None:
    # When the README's first command runs with two executors,
    done = run_demo("--procs", "2", "--long-seconds", "5")

    # then every run completed with its result, the seed client printed its output,
    assert done.returncode == 0, done.stdout + done.stderr
    out = done.stdout
    assert "[3/6] worker: flowcraft-worker --procs 2 --receivers 1" in out
    assert_runs_completed(out)
    # the long node outlived the 4 s visibility timeout, so its lease was extended,
    extended = re.search(r"leases extended \(.*\): (\d+)", out)
    assert extended and int(extended.group(1)) >= 1, out
    # and the worker stopped on SIGTERM with exit code 0, the server too, leaving nothing.
    assert "worker: SIGTERM -> exited with code 0" in out
    assert "local AWS (ministack) stopped" in out
    worker_pid = int(re.search(r"\(pid (\d+)\)", out).group(1))  # type: ignore[union-attr]
    assert not psutil.pid_exists(worker_pid) or psutil.Process(worker_pid).status() == "zombie"


def test_demo_on_configured_aws_with_the_single_process_adapter(tmp_path: Path) -> None:
    # Given an AWS that only boto3's environment names (here a local server we started),
    from flowcraft_sqs.local import start_local_aws

    aws: Any = start_local_aws()
    try:
        # when the demo runs with --no-local (nothing local of its own) and the in-process adapter,
        done = run_demo("--no-local", "--in-process", "--long-seconds", "5", env=aws.env())
    finally:
        aws.stop()

    # then it used that endpoint, and everything completed as with the local default.
    assert done.returncode == 0, done.stdout + done.stderr
    assert f"[1/6] AWS: {aws.sqs_endpoint}" in done.stdout
    assert "SqsAdapter in a thread of this process" in done.stdout
    assert_runs_completed(done.stdout)
