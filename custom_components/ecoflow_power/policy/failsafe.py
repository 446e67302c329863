"""Silence: the stale fail-safe, blind mode and the energy estimate behind both.

When the station stops reporting, the engine can no longer watch the battery.
- Grid last seen LOST (by the station, or by the mains sentinel): an outage
  under way. Every agent's shutdown is due when the energy estimate says its
  threshold is near (early by the longest agent delay + estimate_margin_sec),
  never before the stale window ends; nothing known about the drain: at the
  end of the stale window, as before the estimate existed.
- Grid last seen CONNECTED, station reported offline by the cloud or the
  cloud unreachable, `blind_mode` on, and the sentinel not saying mains is
  present: *blind*. An outage is assumed to have begun at the last reading,
  with the same estimate. Silence with the station online and the cloud
  reachable is frozen telemetry: a repair, not an outage.
- After a restart nothing fires before the first fresh reading or one stale
  window (`resume_hold`).
"""

from __future__ import annotations

from typing import Final

from custom_components.ecoflow_power.ecoflow.state import GridStatus

from .audit import AuditKind
from .context import EngineContext
from .effects import REPAIR_TELEMETRY_STALE, Effect, PolicyEvent, RepairChange
from .estimate import EnergySnapshot, Estimate, estimate
from .tracking import AgentRuntime

# No grid verdict for this long (beyond the stale window) with agents: unprotected.
UNPROTECTED_AFTER_SEC: Final = 300


class FailSafe:
    def __init__(self, ctx: EngineContext) -> None:
        self._ctx = ctx

    # -- silence -------------------------------------------------------------------

    def stale_at(self) -> float | None:
        obs = self._ctx.obs
        if obs.grid is None or obs.fresh_at is None:
            return None  # grid never known: no fail-safe, no repair
        return obs.fresh_at + self._ctx.settings.stale_after_sec

    def silent(self, now: float) -> bool:
        stale_at = self.stale_at()
        return stale_at is not None and now >= stale_at

    def blind_possible(self) -> bool:
        """Would silence now be taken as an outage although the grid was last seen present?"""
        ctx, obs = self._ctx, self._ctx.obs
        return (
            ctx.settings.blind_mode
            and obs.grid is GridStatus.CONNECTED
            and (obs.station_online is False or not obs.cloud_connected)
            and obs.mains is not True
        )

    def blind(self, now: float) -> bool:
        return self.blind_possible() and self.silent(now)

    def outage_assumed(self) -> bool:
        """The engine treats the station as on battery (seen, or blind)."""
        return self._ctx.obs.grid is GridStatus.LOST or self.blind_possible()

    # -- the estimate ------------------------------------------------------------------

    def estimate(self) -> Estimate | None:
        obs = self._ctx.obs
        if obs.soc_min is None or obs.soc_at is None:
            return None
        loads = [w for w in (obs.discharge_w, obs.load_w) if w is not None]
        on_battery = obs.grid is GridStatus.LOST and not obs.grid_by_sentinel
        return estimate(
            EnergySnapshot(
                soc=obs.soc_min,
                at=obs.soc_at,
                load_w=max(loads) if loads else None,
                capacity_wh=obs.capacity_wh,
                # On the grid the runtime figure is not a discharge time.
                remaining_min=obs.remaining if on_battery else None,
                floor_pct=obs.cutoff_pct or 0.0,
            )
        )

    def lead_sec(self) -> float:
        """How early to fire before the estimate reaches a threshold."""
        ctx = self._ctx
        delays = [b.delay(ctx.settings) for b in ctx.bindings.values() if not b.observe_only]
        return max(delays, default=0) + ctx.settings.estimate_margin_sec

    def projected(self, rt: AgentRuntime) -> float | None:
        """When the fail-safe would fire for this agent if the station fell silent now.

        None unless an outage is under way or assumed.
        """
        stale_at = self.stale_at()
        if stale_at is None or not self.outage_assumed():
            return None
        est = self.estimate()
        if est is None:
            return stale_at
        fire = est.reaches(self._ctx.threshold(rt.agent_id)) - self.lead_sec()
        return max(stale_at, fire)

    def due_at(self, rt: AgentRuntime, now: float) -> float | None:
        """The fail-safe's due time for this agent, once the station is silent."""
        return self.projected(rt) if self.silent(now) else None

    # -- checks run on every evaluation ------------------------------------------------

    def check_stale(self, now: float, effects: list[Effect]) -> None:
        ctx, obs = self._ctx, self._ctx.obs
        stale_at = self.stale_at()
        if obs.stale or stale_at is None or now < stale_at:
            return
        obs.stale = True
        effects.append(RepairChange(REPAIR_TELEMETRY_STALE, active=True))
        grid = "none" if obs.grid is None else str(obs.grid)
        ctx.audit_add(
            effects,
            now,
            AuditKind.TELEMETRY_STALE,
            f"no usable telemetry for {ctx.settings.stale_after_sec} s; grid last seen {grid}",
        )
        if self.outage_assumed():
            fires = [t for rt in ctx.acting().values() if (t := self.projected(rt)) is not None]
            effects.append(
                ctx.event(
                    PolicyEvent.BATTERY_CRITICAL,
                    agent_id=None,
                    reason="telemetry stale with grid lost"
                    if obs.grid is GridStatus.LOST
                    else "telemetry stale, station offline: outage assumed (blind)",
                    soc_min=obs.soc_min,
                    remaining_min=obs.remaining,
                    fire_at=min(fires, default=now),
                )
            )

    def unprotected(self, now: float) -> bool:
        """Agents, but no grid verdict for minutes, and nothing that would act on silence."""
        ctx, obs = self._ctx, self._ctx.obs
        if not ctx.acting() or obs.mains is not None:
            return False
        if obs.grid is None:
            return obs.started_at is not None and now >= obs.started_at + UNPROTECTED_AFTER_SEC
        stale_at = self.stale_at()
        if stale_at is None or self.outage_assumed():
            return False
        return now >= stale_at + UNPROTECTED_AFTER_SEC

    def deadlines(self) -> list[float]:
        out: list[float] = []
        obs = self._ctx.obs
        stale_at = self.stale_at()
        if stale_at is not None and not obs.stale:
            out.append(stale_at)
        if not obs.unprotected and self._ctx.acting() and obs.mains is None:
            if obs.grid is None and obs.started_at is not None:
                out.append(obs.started_at + UNPROTECTED_AFTER_SEC)
            elif stale_at is not None and not self.outage_assumed():
                out.append(stale_at + UNPROTECTED_AFTER_SEC)
        return out

    def reason(self, now: float) -> str:
        obs = self._ctx.obs
        silent = int(now - obs.fresh_at) if obs.fresh_at is not None else 0
        est = self.estimate()
        soc = "" if est is None else f" (soc_min estimated at {est.soc_at(now):.0f})"
        if obs.grid is GridStatus.LOST:
            by = " (mains sentinel)" if obs.grid_by_sentinel else ""
            return f"telemetry stale for {silent} s{soc} with grid last seen lost{by}"
        return f"blind: station offline and silent for {silent} s{soc}, outage assumed"
