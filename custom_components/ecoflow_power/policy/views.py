"""Read-only views of the engine: the state sensor, the per-agent view, the status."""

from __future__ import annotations

from collections.abc import Callable

from custom_components.ecoflow_power.ecoflow.state import GridStatus

from .context import EngineContext
from .failsafe import FailSafe
from .status import AgentView, PolicyState, PolicyStatus
from .tracking import AgentRuntime, SentCommand

type FireAt = Callable[[AgentRuntime, float], float | None]


def current_shutdown(ctx: EngineContext, rt: AgentRuntime, now: float) -> SentCommand | None:
    """The agent's shutdown if it still shapes the station state.

    It stops counting when the grid is restored, when the agent ends it, when
    it is released, or after the cooldown window (at least delay + ttl) since
    it was sent.
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


def station_state(
    ctx: EngineContext, failsafe: FailSafe, now: float, fire_at: FireAt
) -> PolicyState:
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
    if failsafe.blind(now):
        return PolicyState.BLIND
    if any(fire_at(rt, now) is not None for rt in acting):
        return PolicyState.CRITICAL_PENDING
    if failsafe.unprotected(now):
        return PolicyState.UNPROTECTED
    if ctx.obs.grid is GridStatus.LOST:
        return PolicyState.ON_BATTERY
    return PolicyState.NORMAL


def shutdown_by(
    ctx: EngineContext, failsafe: FailSafe, rt: AgentRuntime, fire: float | None
) -> float | None:
    """When the agent must start its shutdown if nothing newer reaches it.

    The commit point of its live shutdown; else, during an outage (seen or
    assumed), the commit point the next automatic shutdown would get: the
    pending one, or the fail-safe's if the station fell silent now (energy
    estimate, or the stale window). None while the grid is present.
    """
    s = rt.shutdown
    live = s is not None and s.is_live() and s.published and not s.released
    if live and s is not None and not s.grid_restored:
        return float(s.commit_at)
    if not ctx.armed or ctx.settings.dry_run or not failsafe.outage_assumed():
        return None
    delay = ctx.bindings[rt.agent_id].delay(ctx.settings)
    times = [t for t in (fire, failsafe.projected(rt)) if t is not None]
    return min(times) + delay if times else None


def agent_view(
    ctx: EngineContext, failsafe: FailSafe, agent_id: str, now: float, fire_at: FireAt
) -> AgentView:
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
        soc_threshold=ctx.threshold(agent_id),
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
        shutdown_by=shutdown_by(ctx, failsafe, rt, fire),
        unacknowledged=shutdown is not None and unconfirmed(shutdown, now),
    )


def build_status(
    ctx: EngineContext, failsafe: FailSafe, now: float, fire_at: FireAt
) -> PolicyStatus:
    agents = {
        agent_id: agent_view(ctx, failsafe, agent_id, now, fire_at) for agent_id in ctx.acting()
    }
    pending = [v.pending_fire_at for v in agents.values() if v.pending_fire_at is not None]
    state = station_state(ctx, failsafe, now, fire_at)
    estimate_soc = estimate_at = None
    if failsafe.silent(now) and failsafe.outage_assumed():
        est = failsafe.estimate()
        if est is not None:
            estimate_soc = round(est.soc_at(now), 1)
            fires = [t for rt in ctx.acting().values() if (t := failsafe.projected(rt)) is not None]
            estimate_at = min(fires, default=None)
    return PolicyStatus(
        device_id=ctx.device_id,
        state=state,
        armed=ctx.armed,
        dry_run=ctx.settings.dry_run,
        grid=ctx.obs.grid,
        soc_min=ctx.obs.soc_min,
        remaining_discharge_min=ctx.obs.remaining,
        telemetry_stale=ctx.obs.stale,
        pending_fire_at=min(pending, default=None),
        agents=agents,
        next_commit_at=min(
            (view.commit_at for view in agents.values() if view.commit_at is not None),
            default=None,
        ),
        estimate_soc=estimate_soc,
        estimate_at=estimate_at,
        explanation=explain(ctx, failsafe, state, now, estimate_soc),
    )


def explain(
    ctx: EngineContext,
    failsafe: FailSafe,
    state: PolicyState,
    now: float,
    estimate_soc: float | None,
) -> str:
    """One plain sentence on what the engine believes and why."""
    obs = ctx.obs
    silent_for = 0 if obs.fresh_at is None else max(0, int(now - obs.fresh_at))
    est = "" if estimate_soc is None else f"; battery estimated at {estimate_soc:g} %"
    if state is PolicyState.BLIND:
        why = "the cloud is unreachable" if not obs.cloud_connected else "the station is offline"
        return f"No telemetry for {silent_for} s and {why}: outage assumed{est}"
    if failsafe.silent(now) and obs.grid is GridStatus.LOST:
        return f"On battery, no telemetry for {silent_for} s{est}"
    if state is PolicyState.UNPROTECTED:
        return "No grid verdict for minutes: an outage would go unnoticed"
    if obs.grid_by_sentinel:
        return "Mains sentinel reports the grid lost; the station is silent"
    return ""
