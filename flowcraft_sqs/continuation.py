"""Local continuation: run a node's successor here instead of round-tripping it through SQS.

After node A (delivered by message mA) commits and fires successors, the worker runs the
first of them (B) itself — the multiprocess receiver runs as many as its executors have
room for — on the state the commit just wrote, and sends the others as usual. mA stays undeleted, its lease extended, until the chain it started
ends (or reaches MAX_CHAIN_LENGTH nodes); then its last effects go out and mA is deleted.

mA is what keeps the chain durable. If the worker dies mid-chain, mA is redelivered; its
job finds A committed and replays it (re-sending A's uncommitted successors), and because
a chain only continues with nodes its commits fired, `chain_resends` can walk from A
through the committed nodes and name every node they fired that nobody has run yet. The
redelivered message's worker re-sends those. Nothing is lost, and every node still
commits at most once (a duplicate job finds its node committed and replays).

Only the worker whose commit wrote the node may continue its chain (the engine's
`Effects.committed_here`): if a
duplicate delivery committed it elsewhere first, that worker continues, and continuing here
too would run every later node twice. Built-in nodes (wait, sleep, subflow, ...) are never
continued: the engine carries them out where it plans a job, so they go through the queue.

This module is the whole policy, shared by the single-process `SqsAdapter` and the
multiprocess receivers, so both continue and recover the same way.
"""

from __future__ import annotations

from typing import Final

from . import builtins, protocol
from .blueprint import Blueprint
from .engine import Effects, Engine, Execute
from .messages import Job
from .protocol import JobAction, RunState

#: Nodes run locally for one received message before the next one goes through SQS: a
#: bound on how long one message is held, and on how far a recovery walk has to go.
MAX_CHAIN_LENGTH: Final = 100


def take_continuations(
    effects: Effects, state: RunState, bp: Blueprint, hops: int, limit: int = 1,
    max_hops: int = MAX_CHAIN_LENGTH,
) -> list[Execute]:
    """Remove from `effects.sends` up to `limit` jobs to run locally next, and return them.

    `state` is the run as the commit that produced `effects` wrote it; `hops` counts the
    nodes this message has run so far. A job qualifies if it has no `notBefore` delay, is
    not a built-in, and is one the protocol says to EXECUTE. With `limit` above 1, a
    fan-out runs several branches here at once (the receiver passes its free room).
    """
    if hops >= max_hops or state.is_final or not effects.committed_here:
        return []  # not ours to continue: another delivery committed this node and continues
    taken: list[Execute] = []
    for job in list(effects.sends):
        if len(taken) >= limit:
            break
        if _runnable_here(job, state, bp):
            effects.sends.remove(job)
            taken.append(Execute(job, state, bp))
    return taken


def _runnable_here(job: Job, state: RunState, bp: Blueprint) -> bool:
    if job.delay_until is not None or job.run_id != state.run_id or job.blueprint_id != bp.id:
        return False  # a delayed job must not run before its time: SQS holds it
    if bp.node_by_id[job.node_id].uses in builtins.PROTOCOL_BUILTINS:
        return False  # the engine carries out built-ins when it plans their job
    return protocol.plan_job(state, bp, job.node_id).action is JobAction.EXECUTE


def take_continuation(
    effects: Effects, state: RunState, bp: Blueprint, hops: int, max_hops: int = MAX_CHAIN_LENGTH
) -> Execute | None:
    """`take_continuations` with a limit of one."""
    taken = take_continuations(effects, state, bp, hops, 1, max_hops)
    return taken[0] if taken else None


def next_locals(
    engine: Engine, effects: Effects, state: RunState, bp: Blueprint, hops: int,
    limit: int = 1, max_hops: int = MAX_CHAIN_LENGTH,
) -> list[Execute]:
    """`take_continuations`, each claimed in `engine` (Engine.claim_continuation).

    A job a copy of which already executes here is put back into `effects.sends`: sent, it
    will find the node committed and replay.
    """
    claimed: list[Execute] = []
    for following in take_continuations(effects, state, bp, hops, limit, max_hops):
        if engine.claim_continuation(following):
            claimed.append(following)
        else:
            effects.sends.append(following.job)
    return claimed


def next_local(
    engine: Engine, effects: Effects, state: RunState, bp: Blueprint, hops: int,
    max_hops: int = MAX_CHAIN_LENGTH,
) -> Execute | None:
    """`next_locals` with a limit of one."""
    claimed = next_locals(engine, effects, state, bp, hops, 1, max_hops)
    return claimed[0] if claimed else None


def chain_resends(
    state: RunState, bp: Blueprint, node_id: str, max_hops: int = MAX_CHAIN_LENGTH
) -> list[str]:
    """After a crash mid-chain: nodes the chains from `node_id` fired that nobody ran.

    Call it for a redelivered message whose own node is committed (the engine's replay
    re-sends what that node fired). Walks every fired node through committed nodes (a
    chain may have continued several branches of a fan-out here), collecting the nodes
    they fired that are still waiting.
    """
    if state.is_final:
        return []
    resend: list[str] = []
    seen = {node_id}
    frontier = [node_id]
    for depth in range(max_hops):
        following: list[str] = []
        for current in frontier:
            plan = protocol.plan_job(state, bp, current)
            if plan.action is not JobAction.REPLAY:
                continue
            if depth > 0:
                resend += [t for t in plan.fired if _waiting(state, t)]
            following += [t for t in plan.fired if t not in seen]
            seen.update(plan.fired)
        if not following:
            break
        frontier = following
    return list(dict.fromkeys(resend))


def _waiting(state: RunState, node_id: str) -> bool:
    return node_id not in state.meta.results and state.meta.outstanding.get(node_id, 0) > 0
