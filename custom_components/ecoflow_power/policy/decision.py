"""The decision and its timers: when an agent's automatic shutdown is due.

Readings update the station's observations and each agent's debounce timer;
staleness turns silence after a loss into a fail-safe. Nothing here issues a
command: the engine asks `due_at` and lets the command tracker act.
"""

from __future__ import annotations

from custom_components.ecoflow_power.ecoflow.state import GridStatus

from .audit import AuditKind
from .condition import Verdict, describe, evaluate, smooth
from .context import EngineContext
from .effects import REPAIR_TELEMETRY_STALE, Effect, PolicyEvent, RepairChange
from .telemetry import PolicyTelemetry
from .tracking import AgentRuntime


class Decision:
    """Turns readings and time into per-agent due times."""

    def __init__(self, ctx: EngineContext) -> None:
        self._ctx = ctx

    # -- readings ------------------------------------------------------------

    def observe(self, telemetry: PolicyTelemetry, now: float, effects: list[Effect]) -> bool:
        """Apply one reading. Returns True when it is a CONNECTED reading (grid present)."""
        obs = self._ctx.obs
        if obs.last_at is not None and telemetry.at < obs.last_at:
            # An older reading overtaken by a newer one says nothing new.
            return False
        # Capped at our clock: one reading stamped in the future must not make
        # every later (correctly stamped) reading look out of order.
        obs.last_at = min(telemetry.at, now)
        if telemetry.soc_min is not None:
            obs.soc_min = telemetry.soc_min
        if telemetry.remaining_discharge_min is not None:
            obs.remaining = telemetry.remaining_discharge_min
        for name in ("discharge_w", "capacity_wh", "cutoff_pct"):
            value = getattr(telemetry, name)
            if value is not None:
                setattr(obs, name, value)
        if telemetry.grid is GridStatus.UNKNOWN:
            # Neither breaks nor starts the condition, and does not count as
            # fresh: a station reporting "unknown" for stale_after_sec after
            # a loss trips the fail-safe just like a silent one.
            return False
        self._track_grid(telemetry.grid, now, effects)
        self._track_freshness(telemetry, now, effects)
        if telemetry.grid is GridStatus.CONNECTED:
            self._on_grid_connected(now, effects)
            return True
        self._on_grid_lost(telemetry, now, effects)
        return False

    def _track_grid(self, grid: GridStatus, now: float, effects: list[Effect]) -> None:
        ctx = self._ctx
        previous, ctx.obs.grid = ctx.obs.grid, grid
        if grid == previous:
            return
        if grid is GridStatus.LOST:
            ctx.audit_add(effects, now, AuditKind.GRID_LOST, "grid lost")
            effects.append(ctx.event(PolicyEvent.GRID_LOST, soc_min=ctx.obs.soc_min))
        elif previous is GridStatus.LOST:
            ctx.audit_add(effects, now, AuditKind.GRID_RESTORED, "grid restored")
            effects.append(ctx.event(PolicyEvent.GRID_RESTORED, soc_min=ctx.obs.soc_min))

    def _track_freshness(
        self, telemetry: PolicyTelemetry, now: float, effects: list[Effect]
    ) -> None:
        ctx, obs = self._ctx, self._ctx.obs
        # "Usable" = enough to decide: a connected grid, or a lost grid with a
        # battery figure. A lost grid without one starts the stale clock but
        # does not keep it from running out.
        usable = telemetry.grid is GridStatus.CONNECTED or telemetry.has_battery_figure
        if not usable and obs.fresh_at is not None:
            return
        evidence_at = min(telemetry.at, now)
        obs.fresh_at = evidence_at if obs.fresh_at is None else max(obs.fresh_at, evidence_at)
        stale_at = self.stale_at()
        if obs.stale and stale_at is not None and now < stale_at:
            obs.stale = False
            effects.append(RepairChange(REPAIR_TELEMETRY_STALE, active=False))
            ctx.audit_add(effects, now, AuditKind.TELEMETRY_RESTORED, "telemetry restored")

    def _on_grid_connected(self, now: float, effects: list[Effect]) -> None:
        """Grid present: running timers pause; they are cleared once it stays present."""
        ctx, obs = self._ctx, self._ctx.obs
        if obs.present_since is None:
            obs.present_since = now
        obs.runtime_smoothed = obs.runtime_smoothed_at = None  # a charge time now
        for agent_id, rt in ctx.runtime.items():
            rt.suppressed = False
            if rt.critical_since is None:
                continue
            rt.held_sec = rt.timer_elapsed(now)
            rt.critical_since = None
            ctx.audit_add(
                effects,
                now,
                AuditKind.TIMER_PAUSED,
                f"grid connected after {rt.held_sec:g} s critical on battery",
                agent_id=agent_id,
            )

    def _on_grid_lost(self, telemetry: PolicyTelemetry, now: float, effects: list[Effect]) -> None:
        ctx, obs = self._ctx, self._ctx.obs
        obs.present_since = None
        obs.restored = False
        runtime = telemetry.remaining_discharge_min
        if runtime is not None:
            at = obs.runtime_smoothed_at
            obs.runtime_smoothed = smooth(
                obs.runtime_smoothed,
                runtime,
                0.0 if at is None else now - at,
                ctx.settings.runtime_smoothing_sec,
            )
            obs.runtime_smoothed_at = now
        for agent_id, rt in ctx.runtime.items():
            threshold = ctx.threshold(agent_id)
            verdict = evaluate(
                telemetry, threshold, ctx.settings, smoothed_runtime=obs.runtime_smoothed
            )
            if verdict is Verdict.CLEAR:
                if rt.timer_exists:
                    rt.cancel_timer()
                    rt.suppressed = False
                    ctx.audit_add(
                        effects,
                        now,
                        AuditKind.TIMER_CANCELLED,
                        self._clear_reason(telemetry, threshold),
                        agent_id=agent_id,
                    )
                continue
            if rt.critical_since is not None:
                continue  # running: keeps running
            if rt.held_sec is not None:
                # Lost again before the grid stayed back: the timer goes on
                # from where it was (a flapping grid still ends in a shutdown).
                rt.critical_since = now
                ctx.audit_add(
                    effects,
                    now,
                    AuditKind.TIMER_RESUMED,
                    f"grid lost again; {rt.held_sec:g} s of {ctx.settings.debounce_sec} s"
                    " already counted",
                    agent_id=agent_id,
                )
                continue
            if verdict is not Verdict.CRITICAL:
                continue
            rt.critical_since = now
            rt.critical_reason = describe(telemetry, threshold, ctx.settings)
            ctx.audit_add(
                effects, now, AuditKind.TIMER_STARTED, rt.critical_reason, agent_id=agent_id
            )
            effects.append(
                ctx.event(
                    PolicyEvent.BATTERY_CRITICAL,
                    agent_id=agent_id,
                    reason=rt.critical_reason,
                    soc_min=telemetry.soc_min,
                    threshold=threshold,
                    remaining_min=telemetry.remaining_discharge_min,
                    fire_at=now + ctx.settings.debounce_sec,
                )
            )

    def _clear_reason(self, telemetry: PolicyTelemetry, threshold: float) -> str:
        settings = self._ctx.settings
        text = (
            f"soc_min {telemetry.soc_min:g} > {threshold:g}"
            f" + hysteresis {settings.hysteresis_pct:g}"
        )
        if settings.runtime_threshold_min is not None:
            text += (
                f", remaining {telemetry.remaining_discharge_min} min >"
                f" {settings.runtime_threshold_min} + {settings.runtime_hysteresis_min}"
            )
        return text

    def restore_confirm_at(self) -> float | None:
        """When the grid will have been present long enough to end the outage."""
        obs = self._ctx.obs
        if obs.present_since is None or obs.restored:
            return None
        return obs.present_since + self._ctx.settings.restore_confirm_sec

    def check_restore(self, now: float, effects: list[Effect]) -> bool:
        """Grid present for restore_confirm_sec: the outage is over. True if it just ended.

        Timers are cleared, fsd drops, and (engine) earlier shutdowns stop
        holding a new one back: the next outage starts from scratch.
        """
        ctx = self._ctx
        confirm_at = self.restore_confirm_at()
        if confirm_at is None or now < confirm_at:
            return False
        ctx.obs.restored = True
        for agent_id, rt in ctx.runtime.items():
            if rt.timer_exists:
                rt.cancel_timer()
                ctx.audit_add(
                    effects,
                    now,
                    AuditKind.TIMER_CANCELLED,
                    f"grid connected for {ctx.settings.restore_confirm_sec} s",
                    agent_id=agent_id,
                )
            rt.fsd = False
        return True

    # -- time ------------------------------------------------------------------

    def stale_at(self) -> float | None:
        obs = self._ctx.obs
        if obs.grid is None or obs.fresh_at is None:
            return None  # grid never known: no fail-safe, no repair
        return obs.fresh_at + self._ctx.settings.stale_after_sec

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
        if obs.grid is GridStatus.LOST:
            effects.append(
                ctx.event(
                    PolicyEvent.BATTERY_CRITICAL,
                    agent_id=None,
                    reason="telemetry stale with grid lost",
                    soc_min=obs.soc_min,
                    remaining_min=obs.remaining,
                    fire_at=now,
                )
            )

    def deadlines(self) -> list[float]:
        out: list[float] = []
        stale_at = self.stale_at()
        if stale_at is not None and not self._ctx.obs.stale:
            out.append(stale_at)
        confirm_at = self.restore_confirm_at()
        if confirm_at is not None:
            out.append(confirm_at)
        return out

    def due_at(self, rt: AgentRuntime, now: float) -> float | None:
        """When this agent's condition makes a shutdown due; None if it does not hold."""
        due: float | None = None
        if rt.critical_since is not None:
            left = self._ctx.settings.debounce_sec - (rt.held_sec or 0.0)
            due = rt.critical_since + max(0.0, left)
        stale_at = self.stale_at()
        if self._ctx.obs.grid is GridStatus.LOST and stale_at is not None and now >= stale_at:
            # Fail-safe: silence after a loss is critical for every agent; the
            # stale window itself served as the debounce.
            due = stale_at if due is None else min(due, stale_at)
        return due

    def reason(self, rt: AgentRuntime, now: float) -> str:
        """Why the agent's shutdown is due, with the values at firing time."""
        ctx, obs = self._ctx, self._ctx.obs
        if rt.critical_since is not None and rt.timer_elapsed(now) >= ctx.settings.debounce_sec:
            # Describe the values at firing time: a re-fire after the cooldown
            # must not repeat the battery level of the first one.
            if obs.grid is GridStatus.LOST and obs.fresh_at is not None:
                reading = PolicyTelemetry(
                    grid=obs.grid,
                    soc_min=obs.soc_min,
                    remaining_discharge_min=obs.remaining,
                    at=obs.fresh_at,
                )
                threshold = ctx.threshold(rt.agent_id)
                if evaluate(reading, threshold, ctx.settings) is Verdict.CRITICAL:
                    return describe(reading, threshold, ctx.settings)
            return rt.critical_reason
        silent = int(now - obs.fresh_at) if obs.fresh_at is not None else 0
        return f"telemetry stale for {silent} s with grid last seen lost"
