"""Local continuation: run a node's successor here instead of round-tripping it through SQS.

After node A (delivered by message mA) commits and fires successors, the worker runs the
first of them that can run now (B) itself, on the state the commit just wrote, and sends
the others as usual. mA stays undeleted, its lease extended, until the chain it started
ends (or reaches MAX_CHAIN_LENGTH nodes); then its last effects go out and mA is deleted.

mA is what keeps the chain durable. If the worker dies mid-chain, mA is redelivered; its
job finds A committed and replays it (re-sending A's uncommitted successors), and because
a chain always continues with the FIRST fired node, `chain_resends` can follow that path
through the committed nodes and name every node they fired that nobody has run yet. The
redelivered message's worker re-sends those. Nothing is lost, and every node still
commits at most once (a duplicate job finds its node committed and replays).

These two functions are the whole policy, shared by the single-process `SqsAdapter` and
the multiprocess receivers, so both continue and recover the same way.
"""

from __future__ import annotations

from typing import Final

from . import protocol
from .blueprint import Blueprint
from .engine import Effects, Execute
from .protocol import JobAction, RunState

#: Nodes run locally for one received message before the next one goes through SQS: a
#: bound on how long one message is held, and on how far a recovery walk has to go.
MAX_CHAIN_LENGTH: Final = 100


def take_continuation(
    effects: Effects, state: RunState, bp: Blueprint, hops: int, max_hops: int = MAX_CHAIN_LENGTH
) -> Execute | None:
    """Remove from `effects.sends` the job to run locally next, and return it (or None).

    `state` is the run as the commit that produced `effects` wrote it; `hops` counts the
    nodes this message has run so far. The job is the first sent one that has no
    `notBefore` delay and that the protocol says to EXECUTE against `state`.
    """
    if hops >= max_hops or state.is_final:
        return None
    for index, job in enumerate(effects.sends):
        if job.delay_until is not None:
            continue  # must not run before its time: SQS holds it
        if job.run_id != state.run_id or job.blueprint_id != bp.id:
            continue
        if protocol.plan_job(state, bp, job.node_id).action is JobAction.EXECUTE:
            del effects.sends[index]
            return Execute(job, state, bp)
    return None


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
