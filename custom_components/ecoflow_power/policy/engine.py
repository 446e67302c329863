"""The shutdown policy of one power station: a thin facade over its parts.

Pure state machine: telemetry, acks, agent status, the mains sentinel, the
cloud link, ticks and service calls go in; effects (commands to publish,
events, audit records, repair changes) come out. Time comes only from the
injected clock, so every timing rule is testable without sleeping.
docs/protocol.md ("Policy engine") describes the behaviour.

Where each rule lives:
- condition.py: one reading against one threshold (critical / hold / clear);
- decision.py: the timers (debounce, flapping, restore confirmation), the sentinel;
- failsafe.py + estimate.py: silence (stale fail-safe, blind mode, energy estimate);
- commands.py: sending, hold-back of a second shutdown, resends, aborts, acks;
- supply.py: hosts fed by several stations;
- views.py: the state sensor and per-agent views; alerts.py: its repairs;
- persistence.py: to_dict / from_dict and PolicyStateError.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any
import uuid

from custom_components.ecoflow_power.ecoflow.state import GridStatus

from .alerts import check_alerts
from .audit import DEFAULT_AUDIT_SIZE, AuditKind, AuditRecord, AuditTrail, DecisionMode
from .commands import Commands
from .context import EngineContext
from .decision import Decision
from .effects import Effect
from .persistence import STATE_VERSION, PolicyStateError, check_header, dump, load_into
from .protocol import Ack
from .schedule import Schedule
from .settings import AgentBinding, PolicySettings
from .status import PolicyState, PolicyStatus
from .supply import SupplyBoard
from .telemetry import PolicyTelemetry
from .tracking import AgentRuntime
from .views import build_status, station_state

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
        self._failsafe = self._decision.failsafe
        self._commands = Commands(self._ctx)
        self._schedule = Schedule(self._ctx, self._decision, self._commands)
        self._blind_before = False  # blind when the current input arrived
        self._ctx.obs.started_at = clock()

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
        return station_state(self._ctx, self._failsafe, self._ctx.clock(), self._fire_at)

    @property
    def grid_present(self) -> bool:
        return self._ctx.obs.grid is GridStatus.CONNECTED

    # -- inputs ------------------------------------------------------------------

    def update(self, telemetry: PolicyTelemetry) -> list[Effect]:
        """Feed one telemetry reading; returns what to do now."""
        effects: list[Effect] = []
        now = self._begin(effects)
        if self._decision.observe(telemetry, now, effects):
            self._abort_where_powered(now, effects)
        return self._end(now, effects)

    def update_mains(self, present: bool | None) -> list[Effect]:
        """The mains sentinel's verdict (True present, False lost, None unknown/not set).

        Call it on every change of the sentinel entity (and once at start).
        """
        effects: list[Effect] = []
        now = self._begin(effects)
        if self._decision.sentinel(present, now, effects):
            self._abort_where_powered(now, effects, " (mains sentinel)")
        return self._end(now, effects)

    def update_link(self, *, cloud_connected: bool, station_online: bool | None) -> list[Effect]:
        """Whether Home Assistant reaches the cloud, and the cloud's view of the station.

        Call it whenever either changes (station_online None: not known).
        """
        effects: list[Effect] = []
        now = self._begin(effects)
        self._ctx.obs.cloud_connected = cloud_connected
        self._ctx.obs.station_online = station_online
        return self._end(now, effects)

    def tick(self) -> list[Effect]:
        """Run whatever is due (timers, staleness, resends); call at next_deadline()."""
        effects: list[Effect] = []
        return self._end(self._begin(effects), effects)

    def handle_ack(self, agent_id: str, ack: Ack) -> list[Effect]:
        """Apply a verified ack (see protocol.parse_ack) received on agent_id's ack topic."""
        effects: list[Effect] = []
        now = self._begin(effects)
        self._commands.handle_ack(agent_id, ack, now, effects)
        return self._end(now, effects)

    def agent_online(
        self, agent_id: str, online: bool, *, since: float | None = None
    ) -> list[Effect]:
        """The agent's own verified status (`online`/`offline`); `since` = its connect time.

        Call it for every verified status message. An agent that comes online
        without having acknowledged its shutdown gets it again; one that comes
        back after the commit point (host restarted during the outage) gets a
        fresh shutdown if its condition still holds.
        """
        effects: list[Effect] = []
        now = self._begin(effects)
        rt = self._ctx.runtime.get(agent_id)
        if rt is not None:
            was_online = rt.online
            rt.online = online
            rt.online_at = now
            connected_at = now if since is None else min(since, now)
            if online and (was_online is not True or since is not None):
                self._commands.agent_online(rt, connected_at, now, effects)
        return self._end(now, effects)

    def set_armed(self, armed: bool) -> list[Effect]:
        """Disarmed: decisions are still made and recorded, but no shutdown is published.

        Disarming aborts every shutdown still before its commit point.
        """
        ctx = self._ctx
        effects: list[Effect] = []
        now = self._begin(effects)
        if armed != ctx.armed:
            ctx.armed = armed
            kind = AuditKind.ARMED if armed else AuditKind.DISARMED
            ctx.audit_add(effects, now, kind, "armed" if armed else "disarmed")
            if not armed:
                # What a person reaching for the switch wants: stop what can
                # still be stopped. Past the commit point nothing can.
                self._commands.abort_pending(now, "disarmed", effects)
            for rt in ctx.runtime.values():
                # Re-arming during an outage acts on a condition already due.
                rt.suppressed = False
                if not armed:
                    rt.fsd = False
        return self._end(now, effects)

    def reconfigure(self, settings: PolicySettings, agents: Iterable[AgentBinding]) -> list[Effect]:
        """New options: keeps timers and commands of agents that remain."""
        effects: list[Effect] = []
        now = self._begin(effects)
        self._ctx.settings = settings
        self._set_agents(agents)
        self._commands.close_unverifiable()
        return self._end(now, effects)

    # -- manual commands (HA services) -----------------------------------------

    def manual_shutdown(
        self,
        agent_ids: Iterable[str] | None = None,
        delay_sec: int | None = None,
        reason: str = "manual shutdown",
        dry_run: bool | None = None,
    ) -> list[Effect]:
        """Shut agents down now. Bypasses a hold-back and the armed switch (recorded).

        `dry_run=None` follows the settings. A dry-run while the policy is live
        is a rehearsal: kept apart from the live tracking.
        """
        ctx = self._ctx
        ids = self._resolve(agent_ids)
        if delay_sec is not None and delay_sec < 0:
            raise ValueError("delay_sec must be >= 0")
        use_dry_run = ctx.settings.dry_run if dry_run is None else dry_run
        mode = DecisionMode.DRY_RUN if use_dry_run else DecisionMode.LIVE
        effects: list[Effect] = []
        now = self._begin(effects)
        for agent_id in ids:
            self._commands.manual_shutdown(
                ctx.runtime[agent_id],
                now,
                delay_sec=delay_sec,
                reason=reason,
                mode=mode,
                effects=effects,
            )
        return self._end(now, effects)

    def manual_abort(self, agent_ids: Iterable[str] | None = None) -> list[Effect]:
        """Cancel pending shutdowns. Never sent once a shutdown passed its commit point.

        With no known pending shutdown an abort is still sent (harmless: the
        agent answers `rejected`, "nothing pending"), in case it holds one
        this engine does not know about. A pending debounce timer is not
        touched: to stop the automatic policy, disarm it.
        """
        ids = self._resolve(agent_ids)
        effects: list[Effect] = []
        now = self._begin(effects)
        for agent_id in ids:
            self._commands.manual_abort(self._ctx.runtime[agent_id], now, effects)
        return self._end(now, effects)

    def ping(self, agent_ids: Iterable[str] | None = None) -> list[Effect]:
        """Ask agents for a `pong`. Published even in dry-run or disarmed: it acts on nothing."""
        ids = self._resolve(agent_ids)
        effects: list[Effect] = []
        now = self._begin(effects)
        for agent_id in ids:
            self._commands.send_ping(self._ctx.runtime[agent_id], now, effects)
        return self._end(now, effects)

    # -- several stations feeding one host (policy/supply.py) ---------------------

    def attach_board(self, board: SupplyBoard | None) -> None:
        """Called by SupplyBoard.attach: where to read the other feeding stations."""
        self._schedule.board = board

    def condition_due_at(self, agent_id: str, now: float | None = None) -> float | None:
        """When this station's own condition makes the agent's shutdown due (no hold-back)."""
        rt = self._ctx.runtime.get(agent_id)
        if rt is None:
            return None
        return self._decision.due_at(rt, self._ctx.clock() if now is None else now)

    # -- views -------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When tick() has something to do next (None: only new input can change things)."""
        ctx = self._ctx
        now = ctx.clock()
        candidates = self._decision.deadlines() + self._commands.deadlines(now)
        for rt in ctx.acting().values():
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
        times = [t for rt in ctx.acting().values() if (t := self._fire_at(rt, now)) is not None]
        return min(times) if times else None

    def status(self) -> PolicyStatus:
        return build_status(self._ctx, self._failsafe, self._ctx.clock(), self._fire_at)

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
        Nothing fires before the first fresh reading or one stale window.
        """
        device_id = check_header(data)
        engine = cls(device_id, settings, agents, clock=clock, id_factory=id_factory)
        load_into(engine._ctx, data)
        engine._commands.close_unverifiable()
        obs = engine._ctx.obs
        now = clock()
        obs.started_at = now
        if obs.fresh_at is not None and not obs.stale:
            # Our own downtime is not evidence that the station went silent:
            # restart the stale window instead of shutting everything down
            # because Home Assistant took two minutes to restart.
            obs.fresh_at = max(obs.fresh_at, now)
        if obs.grid is not None:
            # Nothing fires on stored evidence alone: a fresh reading first, or
            # one stale window (then the fail-safe acts on the silence).
            obs.resume_hold = now + settings.stale_after_sec
        return engine

    # -- the loop ------------------------------------------------------------------

    def _begin(self, effects: list[Effect]) -> float:
        """Every input starts here: the clock, then what was already due."""
        now = self._ctx.now(effects)
        self._settle(now, effects)
        self._blind_before = self._failsafe.blind(now)
        return now

    def _end(self, now: float, effects: list[Effect]) -> list[Effect]:
        self._evaluate(now, effects)
        return effects

    def _settle(self, now: float, effects: list[Effect]) -> None:
        self._decision.check_stale(now, effects)
        if self._decision.check_restore(now, effects):
            self._commands.release_after_restore(now)

    def _evaluate(self, now: float, effects: list[Effect]) -> None:
        ctx = self._ctx
        self._settle(now, effects)
        self._abort_where_powered(now, effects, " on a feeding station", peers_only=True)
        if self._blind_before and not self._failsafe.blind(now) and self.grid_present:
            # The outage was only assumed, and the assumption is withdrawn (mains
            # sentinel present, station back online): as if the grid came back.
            self._abort_where_powered(now, effects, " (blind assumption withdrawn)")
        # Infrastructure agents last: their shutdowns go out after the others'.
        order = sorted(ctx.acting().values(), key=lambda r: ctx.bindings[r.agent_id].infrastructure)
        for rt in order:
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
                self._commands.record_suppressed(rt, self._decision.reason(rt, now), now, effects)
        self._commands.resend_due(now, effects)
        check_alerts(ctx, self._failsafe, now, effects)

    def _fire_at(self, rt: AgentRuntime, now: float) -> float | None:
        return self._schedule.fire_at(rt, now)

    def _fire(self, rt: AgentRuntime, now: float, effects: list[Effect]) -> None:
        ctx = self._ctx
        if ctx.default_mode() is DecisionMode.LIVE:
            rt.fsd = True
        self._commands.send_shutdown(
            rt,
            now,
            reason=self._decision.reason(rt, now),
            delay_sec=ctx.bindings[rt.agent_id].delay(ctx.settings),
            mode=ctx.default_mode(),
            effects=effects,
        )

    def _abort_where_powered(
        self, now: float, effects: list[Effect], where: str = "", *, peers_only: bool = False
    ) -> None:
        self._schedule.abort_where_powered(
            now, effects, self.grid_present, where, peers_only=peers_only
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
        acting = ctx.acting()
        if agent_ids is None:
            return list(acting)
        ids = list(dict.fromkeys(agent_ids))
        unknown = [agent_id for agent_id in ids if agent_id not in acting]
        if unknown:
            raise ValueError(f"unknown agents for {ctx.device_id}: {', '.join(unknown)}")
        return ids
