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
import math
from typing import Any
import uuid

from custom_components.ecoflow_power.ecoflow.state import GridStatus

from .audit import DEFAULT_AUDIT_SIZE, AuditKind, AuditRecord, AuditTrail, DecisionMode
from .commands import Commands
from .context import EngineContext
from .decision import Decision
from .effects import Effect, PolicyEvent
from .persistence import STATE_VERSION, PolicyStateError, check_header, dump, load_into
from .protocol import Ack, sanitize_text
from .settings import AgentBinding, PolicySettings
from .status import PolicyState, PolicyStatus
from .supply import FeedRule, SupplyBoard
from .telemetry import PolicyTelemetry
from .tracking import AgentRuntime
from .views import agent_view, station_state

__all__ = ["STATE_VERSION", "PolicyEngine", "PolicyStateError"]


# A backward step smaller than this is jitter, not a clock change.
CLOCK_STEP_TOLERANCE_SEC = 2.0


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
        self._board: SupplyBoard | None = None

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
        effects: list[Effect] = []
        now = self._now(effects)
        # What was due before this reading happened first (e.g. the grid had
        # been back long enough before this new loss).
        self._settle(now, effects)
        if self._decision.observe(telemetry, now, effects):
            for agent_id, rt in self._ctx.acting().items():
                if self._supply_restored(agent_id):
                    self._commands.abort_on_restore(rt, now, effects)
        effects.extend(self._evaluate(now))
        return effects

    def update_mains(self, present: bool | None) -> list[Effect]:
        """The mains sentinel's verdict (None: unknown or not configured)."""
        effects: list[Effect] = []
        now = self._now(effects)
        self._ctx.obs.mains = present
        self._ctx.obs.mains_at = now
        effects.extend(self._evaluate(now))
        return effects

    def update_link(self, *, cloud_connected: bool, station_online: bool | None) -> list[Effect]:
        """Whether Home Assistant reaches the cloud, and the cloud's view of the station."""
        effects: list[Effect] = []
        now = self._now(effects)
        self._ctx.obs.cloud_connected = cloud_connected
        self._ctx.obs.station_online = station_online
        effects.extend(self._evaluate(now))
        return effects

    def tick(self) -> list[Effect]:
        """Run whatever is due (timers, staleness, resends); call at next_deadline()."""
        effects: list[Effect] = []
        now = self._now(effects)
        effects.extend(self._evaluate(now))
        return effects

    def handle_ack(self, agent_id: str, ack: Ack) -> list[Effect]:
        """Apply a verified ack (see protocol.parse_ack) received on agent_id's ack topic."""
        effects: list[Effect] = []
        now = self._now(effects)
        self._commands.handle_ack(agent_id, ack, now, effects)
        effects.extend(self._evaluate(now))
        return effects

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
        now = self._now(effects)
        rt = self._ctx.runtime.get(agent_id)
        if rt is not None:
            was_online = rt.online
            rt.online = online
            rt.online_at = now
            connected_at = now if since is None else min(since, now)
            if online and (was_online is not True or since is not None):
                self._commands.agent_online(rt, connected_at, now, effects)
        effects.extend(self._evaluate(now))
        return effects

    def set_armed(self, armed: bool) -> list[Effect]:
        """Disarmed: decisions are still made and recorded, but no shutdown is published."""
        ctx = self._ctx
        effects: list[Effect] = []
        now = self._now(effects)
        if armed != ctx.armed:
            ctx.armed = armed
            kind = AuditKind.ARMED if armed else AuditKind.DISARMED
            ctx.audit_add(effects, now, kind, "armed" if armed else "disarmed")
            if not armed:
                # What a person reaching for the switch wants: stop what can
                # still be stopped. Past the commit point nothing can.
                self._commands.abort_pending(now, "disarmed", effects)
                for rt in ctx.runtime.values():
                    rt.fsd = False
            if armed:
                # Re-arming during an outage must act on a condition that is
                # already due, not wait for a new episode.
                for rt in ctx.runtime.values():
                    rt.suppressed = False
        effects.extend(self._evaluate(now))
        return effects

    def reconfigure(self, settings: PolicySettings, agents: Iterable[AgentBinding]) -> list[Effect]:
        """New options: keeps timers and commands of agents that remain."""
        effects: list[Effect] = []
        now = self._now(effects)
        self._ctx.settings = settings
        self._set_agents(agents)
        self._commands.close_unverifiable()
        effects.extend(self._evaluate(now))
        return effects

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
        ids = self._resolve(agent_ids)
        if delay_sec is not None and delay_sec < 0:
            raise ValueError("delay_sec must be >= 0")
        use_dry_run = ctx.settings.dry_run if dry_run is None else dry_run
        mode = DecisionMode.DRY_RUN if use_dry_run else DecisionMode.LIVE
        effects: list[Effect] = []
        now = self._now(effects)
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
        ids = self._resolve(agent_ids)
        effects: list[Effect] = []
        now = self._now(effects)
        for agent_id in ids:
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
        ids = self._resolve(agent_ids)
        effects: list[Effect] = []
        now = self._now(effects)
        for agent_id in ids:
            self._commands.send_ping(self._ctx.runtime[agent_id], now, effects)
        effects.extend(self._evaluate(now))
        return effects

    # -- several stations feeding one host (policy/supply.py) ---------------------

    def attach_board(self, board: SupplyBoard | None) -> None:
        """Called by SupplyBoard.attach: where to read the other feeding stations."""
        self._board = board

    def condition_due_at(self, agent_id: str, now: float | None = None) -> float | None:
        """When this station's own condition makes the agent's shutdown due (no hold-back)."""
        rt = self._ctx.runtime.get(agent_id)
        if rt is None:
            return None
        return self._decision.due_at(rt, self._ctx.clock() if now is None else now)

    @property
    def grid_present(self) -> bool:
        return self._ctx.obs.grid is GridStatus.CONNECTED

    def _combined_due(self, rt: AgentRuntime, now: float) -> float | None:
        own = self._decision.due_at(rt, now)
        binding = self._ctx.bindings[rt.agent_id]
        board = self._board
        if not binding.feeds or board is None:
            return own
        dues = [own]
        for station in binding.feeds:
            # A station not on the board cannot be shown to keep the host up.
            dues.append(
                board.condition_due_at(station, rt.agent_id, now) if board.known(station) else own
            )
        if binding.feed_rule == FeedRule.ANY:
            known = [d for d in dues if d is not None]
            return min(known) if known else None
        if any(d is None for d in dues):
            return None
        return max(d for d in dues if d is not None)

    def _supply_restored(self, agent_id: str) -> bool:
        """The host has power again (this station's grid just came back)."""
        binding = self._ctx.bindings[agent_id]
        board = self._board
        if not binding.feeds or board is None or binding.feed_rule == FeedRule.ALL:
            return True
        return all(board.grid_present(station) for station in binding.feeds)

    def _peer_restores(self, now: float, effects: list[Effect]) -> None:
        """A feeding station's grid came back: abort what that makes pointless."""
        board = self._board
        if board is None:
            return
        for agent_id, rt in self._ctx.acting().items():
            binding = self._ctx.bindings[agent_id]
            if not binding.feeds:
                continue
            present = [board.grid_present(station) for station in binding.feeds]
            if binding.feed_rule == FeedRule.ALL:
                restored = any(present)
            else:
                restored = all(present) and self.grid_present
            if restored:
                where = " on a feeding station" if binding.feed_rule == FeedRule.ALL else ""
                self._commands.abort_on_restore(rt, now, effects, where)

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
            agent_id: agent_view(ctx, agent_id, now, self._fire_at) for agent_id in ctx.acting()
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
        """When this agent's next automatic shutdown goes out.

        None if its condition does not hold, or if a shutdown already out holds
        a new one back until some event (see Commands.blocked_until).
        """
        if self._ctx.bindings[rt.agent_id].observe_only:
            return None
        due = self._combined_due(rt, now)
        if due is None:
            return None
        blocked = self._commands.blocked_until(rt, now)
        if blocked is None:
            return due
        if blocked == math.inf:
            return None
        return max(due, blocked)

    def _now(self, effects: list[Effect]) -> float:
        """The clock, after absorbing a backward step of it.

        Readings are taken in the order they arrive. When Home Assistant's
        clock steps back, every stored time moves back with it, so timers keep
        what they had left and newer readings are not mistaken for old ones.
        """
        ctx = self._ctx
        now = ctx.clock()
        last = ctx.last_now
        if last is not None and now < last - CLOCK_STEP_TOLERANCE_SEC:
            shift = last - now
            ctx.obs.rebase(shift)
            for rt in ctx.runtime.values():
                rt.rebase(shift)
            ctx.audit_add(effects, now, AuditKind.CLOCK_STEP, f"clock stepped back {shift:.0f} s")
            ctx.last_now = now
        else:
            ctx.last_now = now if last is None else max(now, last)
        return now

    def _evaluate(self, now: float) -> list[Effect]:
        ctx = self._ctx
        effects: list[Effect] = []
        self._settle(now, effects)
        self._peer_restores(now, effects)
        for agent_id, rt in ctx.acting().items():
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

    def _settle(self, now: float, effects: list[Effect]) -> None:
        self._decision.check_stale(now, effects)
        if self._decision.check_restore(now, effects):
            self._commands.release_after_restore()

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
        acting = ctx.acting()
        if agent_ids is None:
            return list(acting)
        ids = list(dict.fromkeys(agent_ids))
        unknown = [agent_id for agent_id in ids if agent_id not in acting]
        if unknown:
            raise ValueError(f"unknown agents for {ctx.device_id}: {', '.join(unknown)}")
        return ids
