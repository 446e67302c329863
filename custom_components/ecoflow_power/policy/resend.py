"""Resends: a command with no ack goes out again, same payload, until its ttl."""

from __future__ import annotations

from .audit import AuditKind
from .context import EngineContext
from .effects import Effect, PublishCommand
from .protocol import CommandAction
from .tracking import AgentRuntime, SentCommand


def resend_blocked(ctx: EngineContext, cmd: SentCommand) -> bool:
    # Disarmed holds back automatic shutdowns, resends included; aborts
    # and pings are never held back (they cannot cause an action).
    return cmd.action is CommandAction.SHUTDOWN and not cmd.manual and not ctx.armed


def resend_due(ctx: EngineContext, now: float, effects: list[Effect]) -> None:
    interval = ctx.settings.resend_interval_sec
    for rt in ctx.runtime.values():
        for cmd in rt.tracked():
            if not cmd.awaiting_ack():
                continue
            if cmd.action is CommandAction.ABORT and _abort_pointless(rt, cmd, now):
                cmd.closed = True
                continue
            if now >= cmd.expires_at:
                cmd.closed = True
                ctx.audit_add(
                    effects,
                    now,
                    AuditKind.UNACKNOWLEDGED,
                    f"{cmd.action} not acknowledged within ttl {cmd.ttl_sec} s",
                    agent_id=rt.agent_id,
                    command_id=cmd.id,
                )
                continue
            if resend_blocked(ctx, cmd) or now < cmd.last_sent_at + interval:
                continue
            cmd.last_sent_at = now
            effects.append(PublishCommand(rt.agent_id, cmd.action, cmd.payload, resend=True))
            ctx.audit_add(
                effects,
                now,
                AuditKind.RESEND,
                f"{cmd.action} not acknowledged yet",
                agent_id=rt.agent_id,
                command_id=cmd.id,
            )


def resend_deadlines(ctx: EngineContext, now: float) -> list[float]:
    """Resends, expiries and commit points (the state sensor changes there)."""
    interval = ctx.settings.resend_interval_sec
    out: list[float] = []
    for rt in ctx.runtime.values():
        for cmd in rt.tracked():
            if cmd.awaiting_ack():
                out.append(cmd.expires_at)
                resend_at = cmd.next_resend_at(interval)
                if resend_at is not None and not resend_blocked(ctx, cmd):
                    out.append(resend_at)
        shutdown = rt.shutdown
        if shutdown is not None and shutdown.is_live() and now < shutdown.commit_at:
            out.append(shutdown.commit_at)  # the state sensor changes there
    return out


def _abort_pointless(rt: AgentRuntime, abort: SentCommand, now: float) -> bool:
    target = rt.shutdown
    if target is None or abort.ref is None or target.id != abort.ref:
        return False
    return target.past_commit(now) or target.outcome is not None
