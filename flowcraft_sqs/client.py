"""`FlowcraftClient`: start runs, wait for them, read their status, cancel them.

Starting a run writes, in this order:

1. the run's state (contexts table, conditional on a new run id): a worker that receives a
   job for a run it cannot find drops the job as a bad message, so the state comes first;
2. its status item (`running`): before any job exists, so no worker can publish the final
   status first and have it overwritten by `running`;
3. the jobs of its start nodes (SQS).

A crash between 2 and 3 leaves a `running` run with nothing queued: the reconciler finds it
(its `lastUpdated` does not move) and enqueues its start nodes, which the state lists as
outstanding.
"""

from __future__ import annotations

import os
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Final

from . import protocol
from .aws import make_clients
from .blueprint import Blueprint, load_blueprint, load_blueprints
from .engine import Engine, perform
from .errors import ConfigError, RunStateError
from .expressions import DefaultEvaluator
from .messages import Job
from .stores.dynamodb import DynamoRunStore, DynamoStatusTable
from .transport.sqs import SqsQueue

DEFAULT_POLL_S: Final = 0.5  # a status GetItem every half second: cheap, and fast enough for people
# `wait` returns on these: the final statuses, and `awaiting` (a human must act first).
SETTLED_STATUSES: Final = protocol.FINAL_STATUSES | {protocol.AWAITING}


@dataclass(frozen=True)
class RunResult:
    """A run's status as the status table has it; `context` is set once it completed."""

    status: str
    context: dict[str, Any] | None = None
    reason: str | None = None
    run_id: str = ""
    awaiting: dict[str, Any] | None = None  # when awaiting: node id -> what it waits for

    @classmethod
    def from_item(cls, run_id: str, item: Mapping[str, Any]) -> RunResult:
        result = item.get("result")
        context = result.get("context") if isinstance(result, Mapping) else None
        awaiting = item.get("awaiting") if isinstance(item.get("awaiting"), Mapping) else None
        return cls(str(item.get("status")), context, item.get("reason"), run_id, awaiting)


class FlowcraftClient:
    """Starts and follows runs. Clients default to `aws.make_clients()`, the queue to SQS_QUEUE_URL."""

    def __init__(
        self,
        sqs_client: Any = None,
        dynamodb_client: Any = None,
        queue_url: str | None = None,
        context_table_name: str = "flowcraft-contexts",
        status_table_name: str = "flowcraft-statuses",
        blueprints: Mapping[str, Any] | None = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        if sqs_client is None or dynamodb_client is None:
            made = make_clients()
            sqs_client, dynamodb_client = sqs_client or made.sqs, dynamodb_client or made.dynamodb
        url = queue_url or os.environ.get("SQS_QUEUE_URL")
        if not url:
            raise ConfigError("FlowcraftClient needs queue_url= or the SQS_QUEUE_URL environment variable")
        self.blueprints: dict[str, Blueprint] = load_blueprints(blueprints or {})
        self.queue = SqsQueue(sqs_client, url)
        self.store = DynamoRunStore(dynamodb_client, context_table_name)
        self.statuses = DynamoStatusTable(dynamodb_client, status_table_name)
        self.clock = clock
        self._engine = Engine(self.blueprints, self.store, evaluator=DefaultEvaluator(), clock=clock)

    def start_run(
        self,
        blueprint: str | Blueprint | Mapping[str, Any],
        initial_context: Mapping[str, Any] | None = None,
        run_id: str | None = None,
    ) -> str:
        """Start a run (state, then status, then jobs: see the module doc); returns its id."""
        bp = self._blueprint(blueprint)
        now = self.clock()
        state = protocol.new_run(bp, run_id or uuid.uuid4().hex, initial_context or {}, now)
        self.store.create_run(state)
        self.statuses.start(state.run_id, now)
        if state.is_final:  # a blueprint with no node to run is done at once
            self.statuses.publish(state.run_id, state.status, None, protocol.public_context(state), now)
        self.queue.send_jobs([Job(state.run_id, bp.id, node_id) for node_id in protocol.outstanding_jobs(state)])
        return state.run_id

    def _blueprint(self, blueprint: str | Blueprint | Mapping[str, Any]) -> Blueprint:
        if isinstance(blueprint, str) and blueprint in self.blueprints:
            return self.blueprints[blueprint]
        if isinstance(blueprint, str) and not blueprint.lstrip().startswith("{"):
            known = ", ".join(sorted(self.blueprints)) or "none"
            raise ConfigError(f"unknown blueprint '{blueprint}' (this client has: {known})")
        return load_blueprint(blueprint)

    def status(self, run_id: str) -> RunResult | None:
        """The run's current status item, or None if there is none."""
        item = self.statuses.get(run_id)
        return RunResult.from_item(run_id, item) if item else None

    def wait(self, run_id: str, timeout_s: float, poll_s: float = DEFAULT_POLL_S) -> RunResult:
        """Poll until the run is final or `awaiting`; TimeoutError after `timeout_s`."""
        deadline = time.monotonic() + timeout_s
        while True:
            current = self.status(run_id)
            if current is not None and current.status in SETTLED_STATUSES:
                return current
            if time.monotonic() >= deadline:
                seen = current.status if current else "no status item"
                raise TimeoutError(f"run '{run_id}' still {seen} after {timeout_s} s")
            time.sleep(poll_s)

    def cancel(self, run_id: str, reason: str = "cancelled by client") -> str:
        """Cancel a run: nothing new starts, running nodes may finish. Returns its final status
        (`cancelled`, or the status it had already ended with)."""
        try:
            effects = self._engine.end_run(run_id, protocol.CANCELLED, reason)
        except KeyError:
            raise RunStateError(f"run '{run_id}' has no state in the contexts table") from None
        perform(effects, self.queue, self.statuses, self.clock)
        return effects.publishes[0][1].status if effects.publishes else protocol.CANCELLED

    def resume(
        self, run_id: str, node_id: str | None = None, action: str | None = None, output: Any = None
    ) -> None:
        """Resume a waiting node: it completes with `output`, and its edges are taken by `action`.

        `node_id` may be left out when the run waits at one node only. Resuming a node that
        was already resumed does nothing; a run that is not waiting raises RunStateError.
        The client needs the run's blueprint (`blueprints=`) to route.
        """
        effects = self._engine.resume(run_id, node_id, action, output)
        perform(effects, self.queue, self.statuses, self.clock)
