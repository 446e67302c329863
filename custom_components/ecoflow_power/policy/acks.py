"""Acks: what an agent's answer changes in the tracking of the command it answers."""

from __future__ import annotations

from .audit import AuditKind
from .context import EngineContext
from .effects import Effect
from .protocol import Ack, AckStatus, CommandAction
from .tracking import TERMINAL_STATUSES, AgentRuntime, SentCommand


def apply_ack(
    ctx: EngineContext, agent_id: str, ack: Ack, now: float, effects: list[Effect]
) -> None:
    """Apply a verified ack to the command it answers (or record that it answers none)."""
    rt = ctx.runtime.get(agent_id)
    cmd = None if rt is None or ack.agent != agent_id else rt.find(ack.id)
    if rt is None or cmd is None:
        why = "unknown agent" if rt is None else "agent mismatch or unknown command id"
        ctx.audit_add(
            effects,
            now,
            AuditKind.ACK_IGNORED,
            f"{ack.status} from {ack.agent}: {why}",
            agent_id=agent_id,
            command_id=ack.id,
        )
        return
    # A `duplicate` answers a resend the agent already has: it must not hide
    # the real state (e.g. `executing`) that the first copy produced.
    if not (ack.status is AckStatus.DUPLICATE and cmd.acknowledged):
        rt.last_ack_status = ack.status
        rt.last_ack_at = now
        rt.last_ack_detail = ack.detail
    cmd.acknowledged = True
    cmd.closed = True  # any ack stops the resends: the agent has it
    if ack.status is AckStatus.SCHEDULED:
        cmd.execute_at = ack.execute_at
    elif ack.status is AckStatus.EXECUTING:
        cmd.committed = True
    elif ack.status in TERMINAL_STATUSES:
        _apply_terminal_ack(rt, cmd, ack)
    detail = f": {ack.detail}" if ack.detail else ""
    ctx.audit_add(
        effects,
        now,
        AuditKind.ACK,
        f"{cmd.action} acked {ack.status}{detail}",
        agent_id=agent_id,
        command_id=cmd.id,
    )


def _apply_terminal_ack(rt: AgentRuntime, cmd: SentCommand, ack: Ack) -> None:
    cmd.outcome = ack.status
    if cmd.action is not CommandAction.ABORT:
        return
    target = rt.shutdown
    ref = ack.ref or cmd.ref
    if target is None or ref is None or target.id != ref:
        return
    if ack.status is AckStatus.ABORTED:
        target.outcome = AckStatus.ABORTED
    elif ack.detail.startswith("too_late"):
        target.committed = True  # the abort lost the race: the host goes down
