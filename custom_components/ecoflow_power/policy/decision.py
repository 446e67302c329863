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
from .failsafe import FailSafe
from .telemetry import PolicyTelemetry
from .tracking import AgentRuntime


class Decision:
    """Turns readings and time into per-agent due times."""

    def __init__(self, ctx: EngineContext) -> None:
        self._ctx = ctx
        self.failsafe = FailSafe(ctx)

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
        if telemetry.grid is GridStatus.UNKNOWN:
            # Neither breaks nor starts the condition, and does not count as
            # fresh: a station reporting "unknown" for stale_after_sec after
            # a loss trips the fail-safe just like a silent one. Its figures
            # are kept, though (the estimate starts from the newest SoC).
            self._keep_figures(telemetry, now)
            return False
        self._keep_figures(telemetry, now)
        obs.grid_by_sentinel = False  # the station speaks for itself again
        self._track_grid(telemetry.grid, now, effects)
        self._track_freshness(telemetry, now, effects)
        if telemetry.grid is GridStatus.CONNECTED:
            self._on_grid_connected(now, effects)
            return True
        self._on_grid_lost(telemetry, now, effects)
        return False

    def _keep_figures(self, telemetry: PolicyTelemetry, now: float) -> None:
        obs = self._ctx.obs
        if telemetry.soc_min is not None:
            obs.soc_min = telemetry.soc_min
            obs.soc_at = min(telemetry.at, now)
        if telemetry.remaining_discharge_min is not None:
            obs.remaining = telemetry.remaining_discharge_min
        for name in ("discharge_w", "load_w", "capacity_wh", "cutoff_pct"):
            value = getattr(telemetry, name)
            if value is not None:
                setattr(obs, name, value)

    # -- the mains sentinel ----------------------------------------------------

    def sentinel(self, present: bool | None, now: float, effects: list[Effect]) -> bool:
        """Apply a change of the sentinel. Returns True when it restored the grid.

        Strong, local evidence, acted on at once: mains lost makes the grid
        LOST now (timers start from the last known battery figures, and the
        fail-safe runs on the station's silence). A station reading newer than
        the change overrides it (the station measures its own input). Mains
        back only undoes a loss the sentinel itself declared.
        """
        obs = self._ctx.obs
        previous, obs.mains = obs.mains, present
        obs.mains_at = now
        if present == previous:
            return False
        if present is False and obs.grid is not GridStatus.LOST:
            self._track_grid(GridStatus.LOST, now, effects, by="mains sentinel")
            obs.grid_by_sentinel = True
            reading = PolicyTelemetry(GridStatus.LOST, obs.soc_min, None, now)
            self._on_grid_lost(reading, now, effects)
            return False
        if present is True and obs.grid is GridStatus.LOST and obs.grid_by_sentinel:
            self._track_grid(GridStatus.CONNECTED, now, effects, by="mains sentinel")
            obs.grid_by_sentinel = False
            self._on_grid_connected(now, effects)
            return True
        return False

    def _track_grid(
        self, grid: GridStatus, now: float, effects: list[Effect], by: str = ""
    ) -> None:
        ctx = self._ctx
        previous, ctx.obs.grid = ctx.obs.grid, grid
        if grid == previous:
            return
        suffix = f" ({by})" if by else ""
        if grid is GridStatus.LOST:
            ctx.audit_add(effects, now, AuditKind.GRID_LOST, f"grid lost{suffix}")
            effects.append(ctx.event(PolicyEvent.GRID_LOST, soc_min=ctx.obs.soc_min))
        elif previous is GridStatus.LOST:
            ctx.audit_add(effects, now, AuditKind.GRID_RESTORED, f"grid restored{suffix}")
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
        obs.resume_hold = None  # fresh evidence after a restart: decisions resume
        stale_at = self.failsafe.stale_at()
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

    def check_stale(self, now: float, effects: list[Effect]) -> None:
        self.failsafe.check_stale(now, effects)

    def deadlines(self) -> list[float]:
        out = self.failsafe.deadlines()
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
        # Fail-safe: silence during an outage is critical for every agent; the
        # stale window (or the energy estimate) served as the debounce.
        failsafe = self.failsafe.due_at(rt, now)
        if failsafe is not None:
            due = failsafe if due is None else min(due, failsafe)
        hold = self._ctx.obs.resume_hold
        if due is not None and hold is not None:
            due = max(due, hold)  # just restarted: a fresh reading or one stale window first
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
        return self.failsafe.reason(now)
