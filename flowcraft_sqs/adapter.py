"""`SqsAdapter`: the seed document's single-process worker (`worker.ts`), in Python.

    SqsAdapter.start() -> consumer thread (owns one asyncio loop):
        ReceiveMessage(<=10, long poll) -> Engine.plan_messages (one consistent batch read)
          -> per message, concurrently (asyncio.gather):
               Execute: run_node -> Engine.complete (conditional commit) -> perform
                        [-> local continuation: the next node, same process, same message]
               replay / skip: perform what the engine planned
          -> DeleteMessageBatch of the finished messages

`engine.perform` carries out each step's effects in the durable order (send successors,
publish statuses, touch) before a message is deleted, so a crash at any point leaves the
message to be redelivered, and the redelivered job finds its node committed and replays
the same routing instead of executing it again.

The bad-message policy: a message that can never succeed — a body that is not a job
(malformed JSON, missing fields), a job for an unknown node, for a run with no state, or
for a blueprint this worker does not have (that run is failed, as TS does) — is logged at
ERROR with its message id and the fault, never its body (bodies may carry user data), and
deleted. It is not left for the DLQ: retrying cannot fix it, and leaving it would have it
redelivered until the redrive limit. Everything else that raises while a message is
processed (throttling, a dropped connection, a bug) leaves the message in the queue: it
comes back after its visibility timeout, and reaches the DLQ after the redrive limit.
A job for another blueprint version goes back to the queue (ChangeMessageVisibility),
for a worker that has that version; so does a copy of a job that is running in this
process right now (the engine claims each execution), to replay once that one committed.

Local continuation: when a commit fires successors, one of them (the first) runs at once
in this process, on the state the commit just wrote, instead of a send + receive + read +
delete through SQS; the others are sent. The received message stays undeleted until its
chain ends, its visibility extended as the chain runs long. If the process dies mid-chain,
the message is redelivered: its own node replays (re-sending what it fired), and because a
chain always continues with the first fired node, the redelivered job follows that path
through the committed nodes and re-sends whatever those fired that is still outstanding
(`continuation.py` holds this policy, shared with the multiprocess receivers). A chain
stops after `max_chain_length` nodes, and never continues from a commit that another
worker made first (a duplicate delivery): that worker continues it.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from . import protocol
from .aws import RequestCounter, make_clients
from .blueprint import Blueprint, load_blueprints
from .completion import run_node
from .continuation import MAX_CHAIN_LENGTH, chain_resends, take_continuation
from .engine import Effects, Engine, Execute, Planned, perform
from .errors import ConfigError, MalformedMessage, RunStateError, TransientError
from .expressions import DefaultEvaluator
from .messages import Job, parse_job
from .ports import Received
from .protocol import RunState
from .stores.dynamodb import DynamoRunStore, DynamoStatusTable
from .transport.sqs import SqsQueue

log = logging.getLogger("flowcraft_sqs.adapter")

DEFAULT_WAIT_TIME_S: Final = 20  # SQS's longest long poll: fewest empty receives when idle
DEFAULT_BATCH_SIZE: Final = 10  # SQS's most messages per receive
SQS_DEFAULT_VISIBILITY_S: Final = 30  # a queue's visibility when neither we nor it say otherwise
RECEIVE_RETRY_DELAY_S: Final = 1.0  # after a failed receive, so a broken endpoint is not hammered

# Outcomes of one message or job (`JobResult.outcome`).
EXECUTED: Final = "executed"  # its node ran and was committed (plus `hops - 1` continued locally)
REPLAYED: Final = "replayed"  # its node was committed before: routing or the final status re-sent
SKIPPED: Final = "skipped"  # nothing to do (run finished, job no longer expected)
REQUEUED: Final = "requeued"  # back to the queue for `retry_after_s` (other version, or a copy running here)
REJECTED: Final = "rejected"  # a bad message, dropped by the policy above
FAILED: Final = "failed"  # processing raised; the message stays in the queue
DONE_OUTCOMES: Final = frozenset({EXECUTED, REPLAYED, SKIPPED, REJECTED})  # delete the message

RUNTIME_OPTIONS: Final = frozenset({"registry", "blueprints", "dependencies", "evaluator", "middleware"})
# TS RuntimeOptions that have no meaning here; accepted so a ported config still loads.
IGNORED_RUNTIME_OPTIONS: Final = frozenset({"event_bus", "serializer", "strict", "logger", "function_registry"})


@dataclass(frozen=True)
class JobResult:
    """What processing one message or job did."""

    outcome: str
    run_id: str | None = None
    node_id: str | None = None
    message_id: str | None = None
    hops: int = 0  # nodes executed for it, local continuation included
    detail: str | None = None  # why it was rejected, requeued or failed
    retry_after_s: int | None = None
    error: BaseException | None = field(default=None, repr=False, compare=False)

    @property
    def done(self) -> bool:
        """Whether its message is finished with (and deleted, in the worker)."""
        return self.outcome in DONE_OUTCOMES


class SqsAdapter:
    """Polls an SQS queue and runs the jobs of Flowcraft runs; state lives in DynamoDB.

    The seed's `SqsAdapter` options in Python spelling. `runtime_options` takes
    `registry`, `blueprints`, `dependencies`, `evaluator` and `middleware` (camelCase keys
    too); blueprints are validated here, so a bad one raises BlueprintError naming it.
    `coordination_store` is accepted for the seed's API: this protocol keeps join state in
    the run's own item, so nothing needs it. `queue`, `store` and `statuses` replace the
    AWS-backed ports (in-memory tests, other backends).
    """

    def __init__(
        self,
        sqs_client: Any = None,
        dynamodb_client: Any = None,
        queue_url: str | None = None,
        context_table_name: str = "flowcraft-contexts",
        status_table_name: str = "flowcraft-statuses",
        coordination_store: Any = None,
        runtime_options: Mapping[str, Any] | None = None,
        wait_time_seconds: int = DEFAULT_WAIT_TIME_S,
        batch_size: int = DEFAULT_BATCH_SIZE,
        visibility_timeout: int | None = None,
        logger: Any = None,
        *,
        local_continuation: bool = True,
        max_chain_length: int = MAX_CHAIN_LENGTH,
        request_counter: RequestCounter | None = None,
        queue: Any = None,
        store: Any = None,
        statuses: Any = None,
        clock: Callable[[], float] = time.time,
    ) -> None:
        options = normalize_runtime_options(runtime_options)
        self.registry: dict[str, Any] = dict(options.get("registry") or {})
        self.evaluator = options.get("evaluator") or DefaultEvaluator()
        self.blueprints: dict[str, Blueprint] = load_blueprints(
            options.get("blueprints") or {},
            registry=self.registry,
            evaluator=self.evaluator if hasattr(self.evaluator, "validate") else None,
        )
        self.dependencies: dict[str, Any] = dict(options.get("dependencies") or {})
        self.middleware: list[Any] = list(options.get("middleware") or ())
        self.log = logger or log
        self.request_counter = request_counter
        self.coordination_store = coordination_store
        self.wait_time_seconds = wait_time_seconds
        self.batch_size = batch_size
        self.visibility_timeout = visibility_timeout
        self.local_continuation = local_continuation
        self.max_chain_length = max(1, max_chain_length)
        self.clock = clock
        self._build_ports(sqs_client, dynamodb_client, queue_url, context_table_name,
                          status_table_name, queue, store, statuses)
        self.engine = Engine(self.blueprints, self.store, self.evaluator, clock, user_uses=self.registry)
        self._statuses_for_effects = _TouchesNeverRaise(self.statuses, self.log)
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._lease_visibility_s: int | None = visibility_timeout

    def _build_ports(self, sqs_client: Any, dynamodb_client: Any, queue_url: str | None,
                     context_table: str, status_table: str, queue: Any, store: Any, statuses: Any) -> None:
        if queue is None or store is None or statuses is None:
            sqs_client, dynamodb_client = self._clients(sqs_client, dynamodb_client)
        if queue is None:
            url = queue_url or os.environ.get("SQS_QUEUE_URL")
            if not url:
                raise ConfigError("SqsAdapter needs queue_url= or the SQS_QUEUE_URL environment variable")
            queue = SqsQueue(sqs_client, url)
        if store is None or statuses is None:
            store = store or DynamoRunStore(dynamodb_client, context_table)
            statuses = statuses or DynamoStatusTable(dynamodb_client, status_table)
        self.queue, self.store, self.statuses = queue, store, statuses

    def _clients(self, sqs_client: Any, dynamodb_client: Any) -> tuple[Any, Any]:
        if sqs_client is None or dynamodb_client is None:
            made = make_clients(counter=self.request_counter)
            sqs_client, dynamodb_client = sqs_client or made.sqs, dynamodb_client or made.dynamodb
        if self.request_counter is not None:
            self.request_counter.attach(sqs_client)
            self.request_counter.attach(dynamodb_client)
        return sqs_client, dynamodb_client

    # --- the consumer thread -------------------------------------------------------------

    def start(self) -> None:
        """Start long-polling in a background thread (a second call while running is a no-op)."""
        if self._thread is not None and self._thread.is_alive():
            self.log.warning("SqsAdapter.start(): the consumer is already running")
            return
        self._stopping.clear()
        self._thread = threading.Thread(target=self._consume, name="flowcraft-sqs-consumer", daemon=True)
        self._thread.start()

    def stop(self, timeout: float | None = None) -> bool:
        """Stop polling after the current batch; True if the thread ended within `timeout`.

        Stopping can take up to one long poll (`wait_time_seconds`) plus the batch in hand;
        messages that arrive after the stop was asked for are released at once.
        """
        self._stopping.set()
        thread = self._thread
        if thread is None:
            return True
        thread.join(timeout)
        return not thread.is_alive()

    @property
    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def _consume(self) -> None:
        self._loop = asyncio.new_event_loop()
        try:
            while not self._stopping.is_set():
                try:
                    self._consume_once()
                except TransientError as exc:
                    self.log.warning("receiving a batch failed (%s); retrying", exc)
                    self._stopping.wait(RECEIVE_RETRY_DELAY_S)
                except Exception:
                    self.log.exception("receiving or processing a batch failed; retrying")
                    self._stopping.wait(RECEIVE_RETRY_DELAY_S)
        finally:
            self._loop.close()
            self._loop = None

    def _consume_once(self) -> None:
        messages = self._receive(self.wait_time_seconds)
        if messages and self._stopping.is_set():
            # Stop was asked during the long poll: let another worker have them now.
            self.queue.change_visibility([m.receipt for m in messages], 0)
        elif messages:
            self.process_messages(messages)

    def poll_once(self, wait_time_seconds: int | None = None) -> list[JobResult]:
        """Receive one batch, process it and settle its messages (delete, requeue)."""
        messages = self._receive(self.wait_time_seconds if wait_time_seconds is None else wait_time_seconds)
        return self.process_messages(messages) if messages else []

    def _receive(self, wait_s: int) -> list[Received]:
        return self.queue.receive(self.batch_size, wait_s, self.visibility_timeout)

    def process_messages(
        self, messages: Sequence[Received], *, settle: bool = True, deadline: float | None = None
    ) -> list[JobResult]:
        """Process received messages; `settle` deletes the finished ones and requeues as planned.

        `deadline` (a `clock()` time) stops local continuation, so a Lambda returns in time.
        """
        return self._run(self._process(messages, settle, deadline))

    def _run(self, coroutine: Any) -> Any:
        if self._loop is not None and threading.current_thread() is self._thread:
            return self._loop.run_until_complete(coroutine)
        return asyncio.run(coroutine)

    async def _process(self, messages: Sequence[Received], settle: bool, deadline: float | None) -> list[JobResult]:
        planned = await asyncio.to_thread(self.engine.plan_messages, messages)
        batch = _Batch(self.queue, self.log, self.clock()) if settle else None
        results = await asyncio.gather(*(self._handle(p, batch, deadline) for p in planned))
        if batch is not None:
            await asyncio.to_thread(batch.settle)
        return list(results)

    # --- one message ---------------------------------------------------------------------

    def handle_job(self, job: Job | Mapping[str, Any]) -> JobResult:
        """Process one job synchronously: plan, execute if needed, commit, perform effects.

        A malformed job is rejected by the bad-message policy; if processing raises, so does
        this (nothing was lost: the caller can retry the job).
        """
        result = self._run(self.handle_job_async(job))
        if result.outcome == FAILED and result.error is not None:
            raise result.error
        return result

    async def handle_job_async(self, job: Job | Mapping[str, Any]) -> JobResult:
        try:
            parsed = job if isinstance(job, Job) else parse_job(dict(job))
        except MalformedMessage as exc:
            return await self._handle(Planned(None, None, error=f"malformed message: {exc}"), None, None)
        planned = await asyncio.to_thread(self.engine.plan_job, parsed)
        return await self._handle(planned, None, None)

    async def _handle(self, p: Planned, batch: _Batch | None, deadline: float | None) -> JobResult:
        try:
            result = await self._dispatch(p, batch, deadline)
        except Exception as exc:
            self._log_failure(p, exc)
            return self._result(p, FAILED, detail=f"{type(exc).__name__}: {exc}", error=exc)
        if batch is not None and p.received is not None:
            if result.done:
                batch.finish(p.received.receipt)
            elif result.retry_after_s is not None:
                batch.requeue(p.received.receipt, result.retry_after_s)
        return result

    async def _dispatch(self, p: Planned, batch: _Batch | None, deadline: float | None) -> JobResult:
        if p.error is not None:
            self._log_bad_message(p)
            await asyncio.to_thread(self._perform, p.effects)
            return self._result(p, REJECTED, detail=p.error)
        if p.requeue_after_s is not None:
            return self._result(p, REQUEUED, retry_after_s=p.requeue_after_s)
        if p.execute is not None:
            lease = self._lease(p.received, batch)
            hops = await self._run_chain(p.execute, lease, deadline)
            return self._result(p, EXECUTED, hops=hops)
        await asyncio.to_thread(self._replay, p)
        return self._result(p, REPLAYED if (p.effects.sends or p.effects.publishes) else SKIPPED)

    def _result(self, p: Planned, outcome: str, **fields: Any) -> JobResult:
        return JobResult(
            outcome,
            run_id=p.job.run_id if p.job else None,
            node_id=p.job.node_id if p.job else None,
            message_id=p.received.message_id if p.received else None,
            **fields,
        )

    # --- execution and local continuation ------------------------------------------------

    async def _run_chain(self, execute: Execute | None, lease: _Lease | None, deadline: float | None) -> int:
        """Run `execute`, commit it, and go on with what it fired (local continuation)."""
        hops = 0
        while execute is not None:
            completion = await self._execute(execute)
            effects, state = await asyncio.to_thread(self.engine.complete, execute, completion)
            hops += 1
            # Only a commit of our own may go on: after a duplicate delivery committed the
            # node first, that delivery's worker continues the chain (effects.committed_here).
            following = self._continuation(effects, state, execute.blueprint, hops, deadline)
            try:
                await asyncio.to_thread(self._perform, effects)
                if following is not None and lease is not None:
                    await asyncio.to_thread(lease.keep)
            except BaseException:
                if following is not None:
                    self.engine.release(following)  # claimed, never run: its job is in the state
                raise
            execute = following
        return hops

    async def _execute(self, execute: Execute) -> protocol.NodeCompletion:
        state, job = execute.state, execute.job
        try:
            return await run_node(
                execute.blueprint, job.node_id, dict(state.context), state.run_id,
                self.registry, self.dependencies, self.middleware, logger=self.log,
            )
        except BaseException:
            self.engine.release(execute)  # Engine.complete releases it otherwise
            raise

    def _continuation(
        self, effects: Effects, state: RunState, bp: Blueprint, hops: int, deadline: float | None
    ) -> Execute | None:
        """The job to run here next, taken out of `effects.sends` (continuation.py's policy)."""
        if not self.local_continuation or (deadline is not None and self.clock() >= deadline):
            return None
        following = take_continuation(effects, state, bp, hops, self.max_chain_length)
        if following is not None and not self.engine.claim_continuation(following):
            effects.sends.append(following.job)  # a copy already runs here: send it, it will replay
            return None
        return following

    def _replay(self, p: Planned) -> None:
        self._perform(p.effects)
        redelivered = p.received is not None and p.received.receive_count > 1
        if self.local_continuation and redelivered and p.job is not None:
            self._resend_chain(p.job)

    def _resend_chain(self, job: Job) -> None:
        """A redelivered message whose node is committed may have started a chain that a crash
        cut short: re-send what that chain fired and nobody ran (one read, redeliveries only)."""
        state = self.store.load_runs([job.run_id]).get(job.run_id)
        bp = self.blueprints.get(job.blueprint_id)
        if state is None or bp is None:
            return
        lost = chain_resends(state, bp, job.node_id, self.max_chain_length)
        if lost:
            self.log.warning("run %s: re-sending %s after an interrupted chain", job.run_id, lost)
            self.queue.send_jobs([Job(job.run_id, bp.id, node_id) for node_id in lost])

    def _lease(self, received: Received | None, batch: _Batch | None) -> _Lease | None:
        if received is None or batch is None or not self.local_continuation:
            return None
        return _Lease(self.queue, received.receipt, self._visibility_s, self.clock, batch)

    def _visibility_s(self) -> int:
        """The visibility our receives get: ours, else the queue's (asked once), else SQS's default."""
        if self._lease_visibility_s is None:
            ask = getattr(self.queue, "default_visibility_s", None)
            self._lease_visibility_s = int(ask()) if callable(ask) else SQS_DEFAULT_VISIBILITY_S
        return self._lease_visibility_s

    # --- effects, logging ----------------------------------------------------------------

    def _perform(self, effects: Effects) -> None:
        perform(effects, self.queue, self._statuses_for_effects, self.clock)

    def _log_bad_message(self, p: Planned) -> None:
        where = f"message {p.received.message_id}" if p.received else "direct job"
        self.log.error("dropping %s: %s", where, p.error)

    def _log_failure(self, p: Planned, exc: Exception) -> None:
        where = f"message {p.received.message_id}" if p.received else "direct job"
        job = f"run {p.job.run_id} node {p.job.node_id}" if p.job else "unparsed job"
        if isinstance(exc, TransientError):
            self.log.warning("%s (%s) will be retried: %s", where, job, exc)
        else:
            self.log.error("%s (%s) failed and will be retried", where, job, exc_info=exc)

    # --- client-side helpers -------------------------------------------------------------

    def enqueue_job(self, job: Job | Mapping[str, Any]) -> None:
        """Put one job on the queue: one message whose JSON body is the job."""
        self.queue.send_jobs([job if isinstance(job, Job) else parse_job(dict(job))])

    def cancel(self, run_id: str, reason: str = "cancelled") -> str:
        """Cancel a run: nothing new starts; running nodes may finish. Returns the final status."""
        try:
            effects = self.engine.end_run(run_id, protocol.CANCELLED, reason)
        except KeyError:
            raise RunStateError(f"run '{run_id}' has no state in the contexts table") from None
        self._perform(effects)
        return effects.publishes[0][1].status if effects.publishes else protocol.CANCELLED

    def resume_with_action(self, run_id: str, action: str, output: Any = None) -> Any:
        raise NotImplementedError("resume_with_action is not implemented yet for SqsAdapter")

    def register_webhook_endpoint(self, run_id: str, node_id: str) -> Any:
        raise NotImplementedError("register_webhook_endpoint not implemented for SqsAdapter")


class _Batch:
    """The messages of one receive: deleted together (one DeleteMessageBatch) when finished."""

    def __init__(self, queue: Any, logger: Any, received_at: float) -> None:
        self.queue = queue
        self.log = logger
        self.received_at = received_at
        self._finished: list[str] = []
        self._requeues: dict[int, list[str]] = {}
        self._lock = threading.Lock()

    def finish(self, receipt: str) -> None:
        with self._lock:
            self._finished.append(receipt)

    def flush(self) -> None:
        """Delete what is finished now (a long chain of another message must not hold them)."""
        with self._lock:
            receipts, self._finished = self._finished, []
        if receipts:
            failed = self.queue.delete(receipts)
            if failed:
                self.log.warning("%d message(s) not deleted; they will be redelivered and replayed", len(failed))

    def requeue(self, receipt: str, seconds: int) -> None:
        with self._lock:
            self._requeues.setdefault(seconds, []).append(receipt)

    def settle(self) -> None:
        """Delete the finished messages, make the requeued ones visible again after their delay."""
        self.flush()
        for seconds, receipts in self._requeues.items():
            self.queue.change_visibility(receipts, seconds)


class _Lease:
    """Keeps one message invisible while its local chain runs (ChangeMessageVisibility)."""

    def __init__(self, queue: Any, receipt: str, visibility_s: Callable[[], int],
                 clock: Callable[[], float], batch: _Batch) -> None:
        self.queue = queue
        self.receipt = receipt
        self.visibility_s = visibility_s
        self.clock = clock
        self.batch = batch
        self.extended_at = batch.received_at

    def keep(self) -> None:
        """Extend once half the visibility has passed; deleting finished batch-mates first."""
        now = self.clock()
        visibility = self.visibility_s()
        if now - self.extended_at < visibility / 2:
            return
        self.batch.flush()
        self.queue.change_visibility([self.receipt], visibility)
        self.extended_at = now


class _TouchesNeverRaise:
    """The status table for `perform`, except that a failed `touch` is logged, not raised.

    A touch only tells the reconciler the run is alive; failing the message for it would
    replay work that is done (TS's onJobStart swallows these errors too).
    """

    def __init__(self, statuses: Any, logger: Any) -> None:
        self._statuses = statuses
        self._log = logger

    def publish(self, *args: Any, **kwargs: Any) -> bool:
        return bool(self._statuses.publish(*args, **kwargs))

    def touch(self, run_id: str, now: float) -> None:
        try:
            self._statuses.touch(run_id, now)
        except Exception as exc:
            self._log.warning("run %s: status touch failed (%s); the run goes on", run_id, exc)


def normalize_runtime_options(options: Mapping[str, Any] | None) -> dict[str, Any]:
    """`runtime_options` with snake_case keys; ConfigError names an unknown key."""
    normalized: dict[str, Any] = {}
    for key, value in (options or {}).items():
        name = re.sub(r"(?<!^)(?=[A-Z])", "_", key).lower()
        if name in IGNORED_RUNTIME_OPTIONS:
            log.debug("runtime option %r has no effect in flowcraft_sqs", key)
            continue
        if name not in RUNTIME_OPTIONS:
            known = ", ".join(sorted(RUNTIME_OPTIONS))
            raise ConfigError(f"unknown runtime option {key!r}; known: {known}")
        normalized[name] = value
    return normalized
