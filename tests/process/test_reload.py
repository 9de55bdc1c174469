"""SIGHUP reloads the app without stopping intake, and keeps running if the new app is broken."""

from __future__ import annotations

import signal
import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from .helpers import ROOT, AwsFleet, executions, wait_until

pytestmark = [pytest.mark.process, pytest.mark.timeout(120)]

APP_MODULE = "reloadable_app"
GOOD_APP = "from tests.process.workerapp import blueprints, registry  # noqa: F401\n"
BROKEN_APP = "raise RuntimeError('broken on disk')\n"


@pytest.fixture
def fleet(tmp_path: Path, local_aws: Any, aws_clients: Any, infra: Any) -> Iterator[AwsFleet]:
    (tmp_path / f"{APP_MODULE}.py").write_text(GOOD_APP)
    fleet = AwsFleet(tmp_path, local_aws, aws_clients, infra)
    fleet.env["PYTHONPATH"] = f"{ROOT}:{tmp_path}"
    yield fleet
    for worker in fleet.workers:
        worker.cleanup()


def test_sighup_replaces_every_child_while_a_long_node_runs_and_intake_goes_on(fleet: AwsFleet) -> None:
    # Given a worker running a 7 s node
    (long_run,) = fleet.start("long", 1)
    worker = fleet.worker("--app", APP_MODULE, "--procs", "2")
    wait_until(lambda: executions(fleet.tmp / "exec.log"), 30, "the long node to start")
    # When it gets SIGHUP
    worker.signal(signal.SIGHUP)
    # Then a run started meanwhile completes at once, not after the long node
    submitted = time.monotonic()
    (short_run,) = fleet.start("chain", 1)
    assert fleet.wait_final([short_run], 20)[short_run]["status"] == "completed"
    assert time.monotonic() - submitted < 4
    # And the long node finishes once, and every child ends up replaced
    assert fleet.wait_final([long_run], 30)[long_run]["status"] == "completed"
    wait_until(lambda: "every child runs the reloaded app" in worker.log(), 30, "the reload to finish")
    assert Counter(node for run, node, _ in executions(fleet.tmp / "exec.log") if run == long_run) == {"long": 1}
    assert worker.alive()


def test_sighup_with_a_broken_app_on_disk_keeps_the_running_children(fleet: AwsFleet) -> None:
    # Given a running worker whose app module is then broken on disk
    worker = fleet.worker("--app", APP_MODULE, "--procs", "1")
    (first,) = fleet.start("chain", 1)
    fleet.wait_final([first], 30)
    (fleet.tmp / f"{APP_MODULE}.py").write_text(BROKEN_APP)
    # When it gets SIGHUP
    worker.signal(signal.SIGHUP)
    # Then it says why it keeps the old children, and goes on running runs
    wait_until(lambda: "does not load; keeping the running children" in worker.log(), 30, "the check to fail")
    assert "broken on disk" in worker.log()
    (second,) = fleet.start("chain", 1)
    assert fleet.wait_final([second], 20)[second]["status"] == "completed"
    assert worker.alive()
