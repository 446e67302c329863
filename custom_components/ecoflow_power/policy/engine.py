"""The shutdown policy of one power station: a thin facade over its parts.

Pure state machine: telemetry, acks, ticks and service calls go in; effects
(commands to publish, events, audit records, repair changes) come out. Time
comes only from the injected clock, so every timing rule is testable without
sleeping. docs/protocol.md ("Policy engine") describes the behaviour.

Where each rule lives:
- decision.py: the condition over time (debounce, staleness fail-safe);
- commands.py: command tracking (cooldown, resends, aborts, acks);
- views.py: the state sensor and per-agent views;
- persistence.py: to_dict / from_dict and PolicyStateError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
import uuid

from .audit import DEFAULT_AUDIT_SIZE, AuditKind, AuditRecord, AuditTrail, DecisionMode
from .commands import Commands
from .context import EngineContext
from .decision import Decision
from .effects import Effect, PolicyEvent
from .persistence import STATE_VERSION, PolicyStateError, check_header, dump, load_into
from .protocol import Ack, sanitize_text
from .settings import AgentBinding, PolicySettings
from .status import PolicyState, PolicyStatus
from .telemetry import PolicyTelemetry
from .tracking import AgentRuntime
from .views import agent_view, station_state

__all__ = ["STATE_VERSION", "PolicyEngine", "PolicyStateError"]


def _uuid4() -> str:
    return str(uuid.uuid4())


class PolicyEngine:
    """Shutdown policy for one station and the agents it powers."""

    def __init__(
        self,
        device_id: str,
        settings: PolicySettings,
        agents: Iterable[AgentBinding],
        *,
        clock: Callable[[], float],
        id_factory: Callable[[], str] = _uuid4,
        armed: bool = True,
        audit_size: int = DEFAULT_AUDIT_SIZE,
    ) -> None:
        self._ctx = EngineContext(
            device_id=device_id,
            settings=settings,
            clock=clock,
            id_factory=id_factory,
            armed=armed,
            audit=AuditTrail(audit_size),
        )
        self._set_agents(agents)
        self._decision = Decision(self._ctx)
        self._commands = Commands(self._ctx)

    # -- read-only properties --------------------------------------------------

    @property
    def device_id(self) -> str:
        return self._ctx.device_id

    @property
    def settings(self) -> PolicySettings:
        return self._ctx.settings

    @property
    def armed(self) -> bool:
        return self._ctx.armed

    @property
    def agents(self) -> Mapping[str, AgentBinding]:
        return dict(self._ctx.bindings)

    @property
    def audit_trail(self) -> tuple[AuditRecord, ...]:
        return self._ctx.audit.records

    @property
    def state(self) -> PolicyState:
        return station_state(self._ctx, self._ctx.clock(), self._fire_at)

    # -- inputs ------------------------------------------------------------------

    def update(self, telemetry: PolicyTelemetry) -> list[Effect]:
        """Feed one telemetry reading; returns what to do now."""
        now = self._ctx.clock()
        effects: list[Effect] = []
        if self._decision.observe(telemetry, now, effects):
            self._commands.abort_on_restore(now, effects)
        effects.extend(self._evaluate(now))
        return effects

    def update_mains(self, present: bool | None) -> list[Effect]:
        """The mains sentinel's verdict (None: unknown or not configured)."""
        now = self._ctx.clock()
        self._ctx.obs.mains = present
        self._ctx.obs.mains_at = now
        return self._evaluate(now)

    def update_link(self, *, cloud_connected: bool, station_online: bool | None) -> list[Effect]:
        """Whether Home Assistant reaches the cloud, and the cloud's view of the station."""
        now = self._ctx.clock()
        self._ctx.obs.cloud_connected = cloud_connected
        self._ctx.obs.station_online = station_online
        return self._evaluate(now)

    def tick(self) -> list[Effect]:
        """Run whatever is due (timers, staleness, resends); call at next_deadline()."""
        return self._evaluate(self._ctx.clock())

    def handle_ack(self, agent_id: str, ack: Ack) -> list[Effect]:
        """Apply a verified ack (see protocol.parse_ack) received on agent_id's ack topic."""
        now = self._ctx.clock()
        effects: list[Effect] = []
        self._commands.handle_ack(agent_id, ack, now, effects)
        effects.extend(self._evaluate(now))
        return effects

    def agent_online(self, agent_id: str, online: bool) -> list[Effect]:
        """The agent's own status (retained `online`/`offline`), as the glue verified it."""
        now = self._ctx.clock()
        rt = self._ctx.runtime.get(agent_id)
        if rt is not None:
            rt.online = online
            rt.online_at = now
        return self._evaluate(now)

    def set_armed(self, armed: bool) -> list[Effect]:
        """Disarmed: decisions are still made and recorded, but no shutdown is published."""
        ctx = self._ctx
        now = ctx.clock()
        effects: list[Effect] = []
        if armed != ctx.armed:
            ctx.armed = armed
            kind = AuditKind.ARMED if armed else AuditKind.DISARMED
            ctx.audit_add(effects, now, kind, "armed" if armed else "disarmed")
            if armed:
                # Re-arming during an outage must act on a condition that is
                # already due, not wait for a new episode.
                for rt in ctx.runtime.values():
                    rt.suppressed = False
        effects.extend(self._evaluate(now))
        return effects

    def reconfigure(self, settings: PolicySettings, agents: Iterable[AgentBinding]) -> list[Effect]:
        """New options: keeps timers and commands of agents that remain."""
        self._ctx.settings = settings
        self._set_agents(agents)
        self._commands.close_unverifiable()
        return self._evaluate(self._ctx.clock())

    # -- manual commands (HA services) -----------------------------------------

    def manual_shutdown(
        self,
        agent_ids: Iterable[str] | None = None,
        delay_sec: int | None = None,
        reason: str = "manual shutdown",
        dry_run: bool | None = None,
    ) -> list[Effect]:
        """Shut agents down now. Bypasses the cooldown and the armed switch (recorded).

        `dry_run=None` follows the settings.
        """
        ctx = self._ctx
        now = ctx.clock()
        ids = self._resolve(agent_ids)
        if delay_sec is not None and delay_sec < 0:
            raise ValueError("delay_sec must be >= 0")
        use_dry_run = ctx.settings.dry_run if dry_run is None else dry_run
        mode = DecisionMode.DRY_RUN if use_dry_run else DecisionMode.LIVE
        effects: list[Effect] = []
        for agent_id in ids:
            rt = ctx.runtime[agent_id]
            notes = []
            if self._commands.in_cooldown(rt, now):
                notes.append("cooldown bypassed")
            if not ctx.armed:
                notes.append("armed switch bypassed")
            text = sanitize_text(reason) or "manual shutdown"
            audit_reason = f"{text} ({', '.join(notes)})" if notes else text
            delay = ctx.bindings[agent_id].delay(ctx.settings) if delay_sec is None else delay_sec
            self._commands.send_shutdown(
                rt,
                now,
                reason=text,
                delay_sec=delay,
                mode=mode,
                effects=effects,
                manual=True,
                audit_reason=audit_reason,
            )
        effects.extend(self._evaluate(now))
        return effects

    def manual_abort(self, agent_ids: Iterable[str] | None = None) -> list[Effect]:
        """Cancel pending shutdowns. Never sent once a shutdown passed its commit point.

        With no known pending shutdown an abort is still sent (harmless: the
        agent answers `rejected`, "nothing pending"), in case it holds one
        this engine does not know about. A pending debounce timer is not
        touched: to stop the automatic policy, disarm it.
        """
        ctx = self._ctx
        now = ctx.clock()
        effects: list[Effect] = []
        for agent_id in self._resolve(agent_ids):
            rt = ctx.runtime[agent_id]
            target = rt.shutdown if rt.shutdown is not None and rt.shutdown.is_live() else None
            if target is not None and target.past_commit(now):
                ctx.audit_add(
                    effects,
                    now,
                    AuditKind.ABORT_TOO_LATE,
                    f"manual abort refused: commit point {target.commit_at} passed",
                    agent_id=agent_id,
                    command_id=target.id,
                )
                continue
            self._commands.send_abort(rt, target, now, "manual abort", effects, manual=True)
        effects.extend(self._evaluate(now))
        return effects

    def ping(self, agent_ids: Iterable[str] | None = None) -> list[Effect]:
        """Ask agents for a `pong`. Published even in dry-run or disarmed: it acts on nothing."""
        now = self._ctx.clock()
        effects: list[Effect] = []
        for agent_id in self._resolve(agent_ids):
            self._commands.send_ping(self._ctx.runtime[agent_id], now, effects)
        effects.extend(self._evaluate(now))
        return effects

    # -- views -------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When tick() has something to do next (None: only new input can change things)."""
        ctx = self._ctx
        now = ctx.clock()
        candidates = self._decision.deadlines() + self._commands.deadlines(now)
        for rt in ctx.runtime.values():
            fire_at = self._fire_at(rt, now)
            if fire_at is not None and (ctx.armed or not rt.suppressed):
                candidates.append(fire_at)
        return min(candidates) if candidates else None

    def pending_fire_at(self) -> float | None:
        """When the earliest pending automatic shutdown fires; None if none or disarmed."""
        ctx = self._ctx
        if not ctx.armed:
            return None
        now = ctx.clock()
        times = [t for rt in ctx.runtime.values() if (t := self._fire_at(rt, now)) is not None]
        return min(times) if times else None

    def status(self) -> PolicyStatus:
        ctx = self._ctx
        now = ctx.clock()
        agents = {
            agent_id: agent_view(ctx, agent_id, now, self._fire_at) for agent_id in ctx.runtime
        }
        return PolicyStatus(
            device_id=ctx.device_id,
            state=station_state(ctx, now, self._fire_at),
            armed=ctx.armed,
            dry_run=ctx.settings.dry_run,
            grid=ctx.obs.grid,
            soc_min=ctx.obs.soc_min,
            remaining_discharge_min=ctx.obs.remaining,
            telemetry_stale=ctx.obs.stale,
            pending_fire_at=self.pending_fire_at(),
            agents=agents,
            next_commit_at=min(
                (view.commit_at for view in agents.values() if view.commit_at is not None),
                default=None,
            ),
        )

    # -- persistence ---------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable snapshot for HA's Store; see from_dict."""
        return dump(self._ctx)

    @classmethod
    def from_dict(
        cls,
        data: Mapping[str, Any],
        settings: PolicySettings,
        agents: Iterable[AgentBinding],
        clock: Callable[[], float],
        id_factory: Callable[[], str] = _uuid4,
    ) -> PolicyEngine:
        """Restore after a restart: pending timers and unacknowledged commands resume.

        Settings and agents come from the current config, not the snapshot;
        state of agents no longer configured is dropped. Raises PolicyStateError
        (a ValueError) for anything unreadable; the caller starts a fresh engine.
        """
        device_id = check_header(data)
        engine = cls(device_id, settings, agents, clock=clock, id_factory=id_factory)
        load_into(engine._ctx, data)
        engine._commands.close_unverifiable()
        obs = engine._ctx.obs
        if obs.fresh_at is not None and not obs.stale:
            # Our own downtime is not evidence that the station went silent:
            # restart the stale window instead of shutting everything down
            # because Home Assistant took two minutes to restart.
            obs.fresh_at = max(obs.fresh_at, clock())
        return engine

    # -- the loop ------------------------------------------------------------------

    def _fire_at(self, rt: AgentRuntime, now: float) -> float | None:
        """When this agent's automatic shutdown goes out; None if its condition does not hold."""
        due = self._decision.due_at(rt, now)
        if due is None:
            return None
        blocked = self._commands.blocked_until(rt)
        return due if blocked is None else max(due, blocked)

    def _evaluate(self, now: float) -> list[Effect]:
        ctx = self._ctx
        effects: list[Effect] = []
        self._decision.check_stale(now, effects)
        for agent_id, rt in ctx.runtime.items():
            fire_at = self._fire_at(rt, now)
            if fire_at is None:
                rt.suppressed = False  # episode over: a later one is recorded again
                continue
            if now < fire_at:
                continue
            if ctx.armed:
                self._fire(rt, now, effects)
            elif not rt.suppressed:
                rt.suppressed = True
                self._record_suppressed(agent_id, now, effects)
        self._commands.resend_due(now, effects)
        return effects

    def _fire(self, rt: AgentRuntime, now: float, effects: list[Effect]) -> None:
        ctx = self._ctx
        self._commands.send_shutdown(
            rt,
            now,
            reason=self._decision.reason(rt, now),
            delay_sec=ctx.bindings[rt.agent_id].delay(ctx.settings),
            mode=ctx.default_mode(),
            effects=effects,
        )

    def _record_suppressed(self, agent_id: str, now: float, effects: list[Effect]) -> None:
        ctx = self._ctx
        reason = self._decision.reason(ctx.runtime[agent_id], now)
        ctx.audit_add(
            effects,
            now,
            AuditKind.SHUTDOWN,
            f"{reason} (disarmed: not sent)",
            agent_id=agent_id,
            mode=DecisionMode.DISARMED,
        )
        effects.append(
            ctx.event(
                PolicyEvent.SHUTDOWN_SENT,
                agent_id=agent_id,
                command_id=None,
                reason=reason,
                mode=str(DecisionMode.DISARMED),
                published=False,
                manual=False,
            )
        )

    # -- helpers ---------------------------------------------------------------------

    def _set_agents(self, agents: Iterable[AgentBinding]) -> None:
        ctx = self._ctx
        bindings: dict[str, AgentBinding] = {}
        for binding in agents:
            if binding.agent_id in bindings:
                raise ValueError(f"agent {binding.agent_id!r} listed twice")
            bindings[binding.agent_id] = binding
        ctx.bindings = bindings
        ctx.runtime = {
            agent_id: ctx.runtime.get(agent_id) or AgentRuntime(agent_id) for agent_id in bindings
        }

    def _resolve(self, agent_ids: Iterable[str] | None) -> list[str]:
        ctx = self._ctx
        if agent_ids is None:
            return list(ctx.bindings)
        ids = list(dict.fromkeys(agent_ids))
        unknown = [agent_id for agent_id in ids if agent_id not in ctx.bindings]
        if unknown:
            raise ValueError(f"unknown agents for {ctx.device_id}: {', '.join(unknown)}")
        return ids
