"""Hold-back: whether an earlier shutdown keeps a new automatic one from going out.

The rule that replaced the cooldown lockout (docs/protocol.md, rule 7): never
a second shutdown while one is pending on the agent, retries within one outage
spaced by the cooldown, and nothing that was aborted, rehearsed or released
ever delays a shutdown the condition makes due.
"""

from __future__ import annotations

import math

from .audit import AuditKind
from .context import EngineContext
from .effects import Effect, PublishCommand
from .resend import resend_blocked
from .tracking import AgentRuntime


def blocked_until(ctx: EngineContext, rt: AgentRuntime, now: float) -> float | None:
    """Earliest time a new automatic shutdown may go out (None: not blocked).

    `math.inf`: held back until an event releases the previous shutdown
    (the agent comes back online, the grid stays back, new secret).

    Only a shutdown of the current mode that is still the agent's business
    holds a new one back: one the engine aborted (grid back, disarmed), a
    dry-run while live, or a released one never does. While it is pending
    on the agent (before its commit point) nothing new goes out; after
    that, within one outage, the cooldown spaces retries (0: no timed
    retries). A manual abort holds like a refusal: the user said no.
    """
    s = rt.shutdown
    if s is None or s.released or s.mode is not ctx.default_mode():
        return None
    if s.aborted and not s.abort_manual:
        return None  # grid back or disarmed: never a reason to wait
    cooldown = ctx.settings.cooldown_sec
    if cooldown > 0:
        return max(float(s.commit_at), s.sent_at + cooldown)
    if s.outcome is None and not s.past_commit(now):
        return float(s.commit_at)
    return math.inf


def release_after_restore(ctx: EngineContext, now: float) -> None:
    """The grid stayed back: the outage is over, a new one gets its own shutdown.

    Shutdowns still before their commit point (a manual one) keep holding.
    """
    for rt in ctx.runtime.values():
        s = rt.shutdown
        if s is not None and (s.outcome is not None or s.past_commit(now)):
            s.released = True


def agent_returned(
    ctx: EngineContext, rt: AgentRuntime, since: float, now: float, effects: list[Effect]
) -> None:
    """The agent (re)connected at `since`: a shutdown it never confirmed is re-issued.

    Before the command expires the very same payload goes out again (the
    agent dedups by id); after it, or once the agent came back after the
    commit point (the host was restarted), the shutdown no longer holds a
    new one back, and the decision sends a fresh one if still due.
    """
    s = rt.shutdown
    if s is None or s.released or not s.published:
        return
    if since > s.commit_at or (s.outcome is not None and not s.aborted):
        s.released = True
        ctx.audit_add(
            effects,
            now,
            AuditKind.AGENT_ONLINE,
            "agent back after its shutdown: a new one goes out if still due",
            agent_id=rt.agent_id,
            command_id=s.id,
        )
        return
    if s.acknowledged or not s.is_live() or s.grid_restored:
        return
    if now < s.expires_at and not resend_blocked(ctx, s):
        s.last_sent_at = now
        s.closed = False
        effects.append(PublishCommand(rt.agent_id, s.action, s.payload, resend=True))
        ctx.audit_add(
            effects,
            now,
            AuditKind.RESEND,
            "agent online without acknowledging the shutdown: re-sent",
            agent_id=rt.agent_id,
            command_id=s.id,
        )
    elif now >= s.expires_at:
        s.released = True
        ctx.audit_add(
            effects,
            now,
            AuditKind.AGENT_ONLINE,
            "agent online, shutdown never acknowledged and expired: re-issued if due",
            agent_id=rt.agent_id,
            command_id=s.id,
        )
