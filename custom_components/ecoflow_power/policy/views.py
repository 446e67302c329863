"""Read-only views of the engine: the state sensor and the per-agent view."""

from __future__ import annotations

from collections.abc import Callable

from custom_components.ecoflow_power.ecoflow.state import GridStatus

from .context import EngineContext
from .status import AgentView, PolicyState
from .tracking import AgentRuntime, SentCommand

type FireAt = Callable[[AgentRuntime, float], float | None]


def current_shutdown(ctx: EngineContext, rt: AgentRuntime, now: float) -> SentCommand | None:
    """The agent's shutdown if it still shapes the station state.

    It stops counting when the grid is restored, when the agent ends it, or
    after the cooldown window (at least delay + ttl) since it was sent.
    """
    s = rt.shutdown
    if s is None or not s.is_live() or s.grid_restored or s.released:
        return None
    window = max(ctx.settings.cooldown_sec, s.delay_sec + s.ttl_sec)
    return s if now < s.sent_at + window else None


def unconfirmed(s: SentCommand, now: float) -> bool:
    """A live published shutdown that no ack confirmed, past its commit point or ttl.

    Not the same as committed: the host may never have heard of it.
    """
    return (
        s.published
        and s.is_live()
        and not s.acknowledged
        and not s.committed
        and (now >= s.commit_at or now >= s.expires_at)
    )


def station_state(ctx: EngineContext, now: float, fire_at: FireAt) -> PolicyState:
    if not ctx.armed:
        return PolicyState.DISARMED
    acting = ctx.acting().values()
    current = [s for rt in acting if (s := current_shutdown(ctx, rt, now))]
    past = [s for s in current if s.past_commit(now)]
    if any(not unconfirmed(s, now) for s in past):
        return PolicyState.COMMITTED
    if past:
        return PolicyState.UNACKNOWLEDGED
    if current:
        return PolicyState.SHUTDOWN_SENT
    if any(fire_at(rt, now) is not None for rt in acting):
        return PolicyState.CRITICAL_PENDING
    if ctx.obs.grid is GridStatus.LOST:
        return PolicyState.ON_BATTERY
    return PolicyState.NORMAL


def agent_view(ctx: EngineContext, agent_id: str, now: float, fire_at: FireAt) -> AgentView:
    rt = ctx.runtime[agent_id]
    binding = ctx.bindings[agent_id]
    last = rt.latest_command()
    shutdown = rt.shutdown
    commit_at = (
        shutdown.commit_at
        if shutdown is not None and shutdown.is_live() and now < shutdown.commit_at
        else None
    )
    fire = fire_at(rt, now) if ctx.armed else None
    return AgentView(
        agent_id=agent_id,
        soc_threshold=binding.threshold(ctx.settings),
        delay_sec=binding.delay(ctx.settings),
        pending_fire_at=fire,
        last_command_id=None if last is None else last.id,
        last_command_action=None if last is None else last.action,
        last_command_at=None if last is None else last.sent_at,
        last_ack_status=rt.last_ack_status,
        last_ack_at=rt.last_ack_at,
        last_ack_detail=rt.last_ack_detail,
        acknowledged=False if last is None else last.acknowledged,
        committed=shutdown is not None and shutdown.committed,
        commit_at=commit_at,
        fsd=rt.fsd,
        shutdown_by=shutdown_by(ctx, rt, now, fire),
        unacknowledged=shutdown is not None and unconfirmed(shutdown, now),
    )


def shutdown_by(
    ctx: EngineContext, rt: AgentRuntime, now: float, fire: float | None
) -> float | None:
    """When the agent must start its shutdown if nothing newer reaches it.

    The commit point of its live shutdown; else, on battery, the commit point
    the pending automatic shutdown would get. None while the grid is present
    or unknown and nothing is out.
    """
    s = rt.shutdown
    if s is not None and s.is_live() and s.published and not s.released and not s.grid_restored:
        return float(s.commit_at)
    if ctx.obs.grid is not GridStatus.LOST or not ctx.armed or ctx.settings.dry_run:
        return None
    if fire is None:
        return None
    return fire + ctx.bindings[rt.agent_id].delay(ctx.settings)
