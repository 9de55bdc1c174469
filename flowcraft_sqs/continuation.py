"""Local continuation: run a node's successor here instead of round-tripping it through SQS.

After node A (delivered by message mA) commits and fires successors, the worker runs the
first of them (B) itself, if it can run now, on the state the commit just wrote, and sends
the others as usual. mA stays undeleted, its lease extended, until the chain it started
ends (or reaches MAX_CHAIN_LENGTH nodes); then its last effects go out and mA is deleted.

mA is what keeps the chain durable. If the worker dies mid-chain, mA is redelivered; its
job finds A committed and replays it (re-sending A's uncommitted successors), and because
a chain always continues with the FIRST fired node, `chain_resends` can follow that path
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
from .protocol import JobAction, RunState

#: Nodes run locally for one received message before the next one goes through SQS: a
#: bound on how long one message is held, and on how far a recovery walk has to go.
MAX_CHAIN_LENGTH: Final = 100


def take_continuation(
    effects: Effects, state: RunState, bp: Blueprint, hops: int, max_hops: int = MAX_CHAIN_LENGTH
) -> Execute | None:
    """Remove from `effects.sends` the job to run locally next, and return it (or None).

    `state` is the run as the commit that produced `effects` wrote it; `hops` counts the
    nodes this message has run so far. Only the FIRST sent job is considered, as the
    recovery walk in `chain_resends` follows the first fired node: it must have no
    `notBefore` delay, not be a built-in, and be one the protocol says to EXECUTE.
    """
    if hops >= max_hops or state.is_final or not effects.sends or not effects.committed_here:
        return None  # not ours to continue: another delivery committed this node and continues
    job = effects.sends[0]
    if job.delay_until is not None or job.run_id != state.run_id or job.blueprint_id != bp.id:
        return None  # a delayed job must not run before its time: SQS holds it
    if bp.node_by_id[job.node_id].uses in builtins.PROTOCOL_BUILTINS:
        return None  # the engine carries out built-ins when it plans their job
    if protocol.plan_job(state, bp, job.node_id).action is not JobAction.EXECUTE:
        return None
    del effects.sends[0]
    return Execute(job, state, bp)


def next_local(
    engine: Engine, effects: Effects, state: RunState, bp: Blueprint, hops: int,
    max_hops: int = MAX_CHAIN_LENGTH,
) -> Execute | None:
    """`take_continuation`, claimed in `engine` (Engine.claim_continuation); None to send.

    If a copy of the job already executes here, it is put back
    into `effects.sends`: sent, it will find the node committed and replay.
    """
    following = take_continuation(effects, state, bp, hops, max_hops)
    if following is not None and not engine.claim_continuation(following):
        effects.sends.append(following.job)
        return None
    return following


def chain_resends(
    state: RunState, bp: Blueprint, node_id: str, max_hops: int = MAX_CHAIN_LENGTH
) -> list[str]:
    """After a crash mid-chain: nodes the chain from `node_id` fired that nobody ran.

    Call it for a redelivered message whose own node is committed (the engine's replay
    re-sends what that node fired). Follows the first fired node through committed nodes,
    as `take_continuation` chose them, collecting their other fired nodes still waiting.
    """
    if state.is_final:
        return []
    resend: list[str] = []
    for depth in range(max_hops):
        plan = protocol.plan_job(state, bp, node_id)
        if plan.action is not JobAction.REPLAY or not plan.fired:
            break
        if depth > 0:
            resend += [t for t in plan.fired if _waiting(state, t)]
        node_id = plan.fired[0]
    return list(dict.fromkeys(resend))


def _waiting(state: RunState, node_id: str) -> bool:
    return node_id not in state.meta.results and state.meta.outstanding.get(node_id, 0) > 0
