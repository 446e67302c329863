"""The shutdown policy of one power station.

Pure state machine: telemetry, acks, ticks and service calls go in; effects
(commands to publish, events, audit records, repair changes) come out. Time
comes only from the injected clock, so every timing rule is testable without
sleeping. docs/protocol.md ("Policy engine") describes the behaviour.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from typing import Any, Final
import uuid

from custom_components.ecoflow_power.ecoflow.state import GridStatus

from .audit import DEFAULT_AUDIT_SIZE, AuditKind, AuditRecord, AuditTrail, DecisionMode
from .condition import Verdict, describe, evaluate
from .effects import (
    REPAIR_TELEMETRY_STALE,
    Effect,
    EmitEvent,
    PolicyEvent,
    PublishCommand,
    RepairChange,
)
from .protocol import (
    Ack,
    AckStatus,
    CommandAction,
    build_command,
    sanitize_text,
    verify_message,
)
from .settings import AgentBinding, PolicySettings
from .status import AgentView, PolicyState, PolicyStatus
from .telemetry import PolicyTelemetry
from .tracking import TERMINAL_STATUSES, AgentRuntime, SentCommand

STATE_VERSION: Final = 1


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
        self._device_id = device_id
        self._settings = settings
        self._clock = clock
        self._id_factory = id_factory
        self._armed = armed
        self._bindings: dict[str, AgentBinding] = {}
        self._runtime: dict[str, AgentRuntime] = {}
        self._set_agents(agents)
        self._grid: GridStatus | None = None  # last known CONNECTED/LOST
        self._soc_min: float | None = None
        self._remaining: int | None = None
        self._last_at: float | None = None  # newest telemetry `at` seen (ordering)
        self._fresh_at: float | None = None  # newest usable evidence (staleness)
        self._stale = False
        self._audit = AuditTrail(audit_size)

    # ------------------------------------------------------------------
    # Read-only properties
    # ------------------------------------------------------------------

    @property
    def device_id(self) -> str:
        return self._device_id

    @property
    def settings(self) -> PolicySettings:
        return self._settings

    @property
    def armed(self) -> bool:
        return self._armed

    @property
    def agents(self) -> Mapping[str, AgentBinding]:
        return dict(self._bindings)

    @property
    def audit_trail(self) -> tuple[AuditRecord, ...]:
        return self._audit.records

    # ------------------------------------------------------------------
    # Inputs
    # ------------------------------------------------------------------

    def update(self, telemetry: PolicyTelemetry) -> list[Effect]:
        """Feed one telemetry reading; returns what to do now."""
        now = self._clock()
        effects: list[Effect] = []
        if self._last_at is not None and telemetry.at < self._last_at:
            # An older reading overtaken by a newer one says nothing new.
            return self._evaluate(now)
        # Capped at our clock: one reading stamped in the future must not make
        # every later (correctly stamped) reading look out of order.
        self._last_at = min(telemetry.at, now)
        if telemetry.soc_min is not None:
            self._soc_min = telemetry.soc_min
        if telemetry.remaining_discharge_min is not None:
            self._remaining = telemetry.remaining_discharge_min
        if telemetry.grid is GridStatus.UNKNOWN:
            # Neither breaks nor starts the condition, and does not count as
            # fresh: a station reporting "unknown" for stale_after_sec after
            # a loss trips the fail-safe just like a silent one.
            return self._evaluate(now)

        self._track_grid(telemetry.grid, now, effects)
        self._track_freshness(telemetry, now, effects)
        if telemetry.grid is GridStatus.CONNECTED:
            self._on_grid_connected(now, effects)
        else:
            self._on_grid_lost(telemetry, now, effects)
        effects.extend(self._evaluate(now))
        return effects

    def tick(self) -> list[Effect]:
        """Run whatever is due (timers, staleness, resends); call at next_deadline()."""
        return self._evaluate(self._clock())

    def handle_ack(self, agent_id: str, ack: Ack) -> list[Effect]:
        """Apply a verified ack (see protocol.parse_ack) received on agent_id's ack topic."""
        now = self._clock()
        effects: list[Effect] = []
        rt = self._runtime.get(agent_id)
        cmd = None if rt is None or ack.agent != agent_id else rt.find(ack.id)
        if rt is None or cmd is None:
            why = "unknown agent" if rt is None else "agent mismatch or unknown command id"
            self._audit_add(
                effects,
                now,
                AuditKind.ACK_IGNORED,
                f"{ack.status} from {ack.agent}: {why}",
                agent_id=agent_id,
                command_id=ack.id,
            )
            effects.extend(self._evaluate(now))
            return effects

        # A `duplicate` answers a resend the agent already has: it must not hide
        # the real state (e.g. `executing`) that the first copy produced.
        if not (ack.status is AckStatus.DUPLICATE and cmd.acknowledged):
            rt.last_ack_status = ack.status
            rt.last_ack_at = now
            rt.last_ack_detail = ack.detail
        cmd.acknowledged = True
        cmd.closed = True  # any ack stops the resends: the agent has it
        if ack.status is AckStatus.SCHEDULED:
            cmd.execute_at = ack.execute_at
        elif ack.status is AckStatus.EXECUTING:
            cmd.committed = True
        elif ack.status in TERMINAL_STATUSES:
            self._apply_terminal_ack(rt, cmd, ack)
        detail = f": {ack.detail}" if ack.detail else ""
        self._audit_add(
            effects,
            now,
            AuditKind.ACK,
            f"{cmd.action} acked {ack.status}{detail}",
            agent_id=agent_id,
            command_id=cmd.id,
        )
        effects.extend(self._evaluate(now))
        return effects

    def set_armed(self, armed: bool) -> list[Effect]:
        """Disarmed: decisions are still made and recorded, but no shutdown is published."""
        now = self._clock()
        effects: list[Effect] = []
        if armed != self._armed:
            self._armed = armed
            kind = AuditKind.ARMED if armed else AuditKind.DISARMED
            self._audit_add(effects, now, kind, "armed" if armed else "disarmed")
            if armed:
                # Re-arming during an outage must act on a condition that is
                # already due, not wait for a new episode.
                for rt in self._runtime.values():
                    rt.suppressed = False
        effects.extend(self._evaluate(now))
        return effects

    def reconfigure(self, settings: PolicySettings, agents: Iterable[AgentBinding]) -> list[Effect]:
        """New options: keeps timers and commands of agents that remain."""
        self._settings = settings
        self._set_agents(agents)
        self._close_unverifiable()
        return self._evaluate(self._clock())

    # ------------------------------------------------------------------
    # Manual commands (HA services)
    # ------------------------------------------------------------------

    def manual_shutdown(
        self,
        agent_ids: Iterable[str] | None = None,
        delay_sec: int | None = None,
        reason: str = "manual shutdown",
        dry_run: bool | None = None,
    ) -> list[Effect]:
        """Shut agents down now. Bypasses the cooldown and the armed switch (recorded).

        `dry_run=None` follows the settings. The shutdown restarts the agent's
        cooldown, so the automatic policy does not send a second one right after.
        """
        now = self._clock()
        ids = self._resolve(agent_ids)
        if delay_sec is not None and delay_sec < 0:
            raise ValueError("delay_sec must be >= 0")
        use_dry_run = self._settings.dry_run if dry_run is None else dry_run
        mode = DecisionMode.DRY_RUN if use_dry_run else DecisionMode.LIVE
        effects: list[Effect] = []
        for agent_id in ids:
            rt = self._runtime[agent_id]
            notes = []
            if self._in_cooldown(rt, now):
                notes.append("cooldown bypassed")
            if not self._armed:
                notes.append("armed switch bypassed")
            text = sanitize_text(reason) or "manual shutdown"
            audit_reason = f"{text} ({', '.join(notes)})" if notes else text
            delay = (
                self._bindings[agent_id].delay(self._settings) if delay_sec is None else delay_sec
            )
            self._send_shutdown(
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
        now = self._clock()
        effects: list[Effect] = []
        for agent_id in self._resolve(agent_ids):
            rt = self._runtime[agent_id]
            target = rt.shutdown if rt.shutdown is not None and rt.shutdown.is_live() else None
            if target is not None and target.past_commit(now):
                self._audit_add(
                    effects,
                    now,
                    AuditKind.ABORT_TOO_LATE,
                    f"manual abort refused: commit point {target.commit_at} passed",
                    agent_id=agent_id,
                    command_id=target.id,
                )
                continue
            self._send_abort(rt, target, now, "manual abort", effects, manual=True)
        effects.extend(self._evaluate(now))
        return effects

    def ping(self, agent_ids: Iterable[str] | None = None) -> list[Effect]:
        """Ask agents for a `pong`. Published even in dry-run or disarmed: it acts on nothing."""
        now = self._clock()
        effects: list[Effect] = []
        for agent_id in self._resolve(agent_ids):
            rt = self._runtime[agent_id]
            if rt.ping is not None:
                rt.ping.closed = True
            rt.ping = self._issue(
                rt,
                CommandAction.PING,
                now,
                delay_sec=0,
                ttl_sec=self._settings.ttl_sec,
                reason="ping",
                mode=DecisionMode.LIVE,
            )
            effects.append(PublishCommand(agent_id, CommandAction.PING, rt.ping.payload))
            self._audit_add(
                effects, now, AuditKind.PING, "ping", agent_id=agent_id, command_id=rt.ping.id
            )
        effects.extend(self._evaluate(now))
        return effects

    # ------------------------------------------------------------------
    # Views
    # ------------------------------------------------------------------

    def next_deadline(self) -> float | None:
        """When tick() has something to do next (None: only new input can change things)."""
        now = self._clock()
        candidates: list[float] = []
        stale_at = self._stale_at()
        if stale_at is not None and not self._stale:
            candidates.append(stale_at)
        for rt in self._runtime.values():
            fire_at = self._fire_at(rt, now)
            if fire_at is not None and (self._armed or not rt.suppressed):
                candidates.append(fire_at)
            for cmd in rt.tracked():
                if cmd.awaiting_ack():
                    candidates.append(cmd.expires_at)
                    resend_at = cmd.next_resend_at(self._settings.resend_interval_sec)
                    if resend_at is not None and not self._resend_blocked(cmd):
                        candidates.append(resend_at)
            shutdown = rt.shutdown
            if shutdown is not None and shutdown.is_live() and now < shutdown.commit_at:
                candidates.append(shutdown.commit_at)  # the state sensor changes there
        return min(candidates) if candidates else None

    def pending_fire_at(self) -> float | None:
        """When the earliest pending automatic shutdown fires; None if none or disarmed."""
        if not self._armed:
            return None
        now = self._clock()
        times = [t for rt in self._runtime.values() if (t := self._fire_at(rt, now)) is not None]
        return min(times) if times else None

    def status(self) -> PolicyStatus:
        now = self._clock()
        agents = {agent_id: self._agent_view(agent_id, now) for agent_id in self._runtime}
        return PolicyStatus(
            device_id=self._device_id,
            state=self._state(now),
            armed=self._armed,
            dry_run=self._settings.dry_run,
            grid=self._grid,
            soc_min=self._soc_min,
            remaining_discharge_min=self._remaining,
            telemetry_stale=self._stale,
            pending_fire_at=self.pending_fire_at(),
            agents=agents,
            next_commit_at=min(
                (view.commit_at for view in agents.values() if view.commit_at is not None),
                default=None,
            ),
        )

    @property
    def state(self) -> PolicyState:
        return self._state(self._clock())

    # ------------------------------------------------------------------
    # Persistence
    # ------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        """JSON-serialisable snapshot for HA's Store; see from_dict."""
        return {
            "version": STATE_VERSION,
            "device_id": self._device_id,
            "armed": self._armed,
            "grid": None if self._grid is None else str(self._grid),
            "soc_min": self._soc_min,
            "remaining_min": self._remaining,
            "last_at": self._last_at,
            "fresh_at": self._fresh_at,
            "stale": self._stale,
            "agents": {agent_id: rt.to_dict() for agent_id, rt in self._runtime.items()},
            "audit": self._audit.to_list(),
        }

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
        state of agents no longer configured is dropped.
        """
        if data.get("version") != STATE_VERSION:
            raise ValueError(f"unsupported policy state version {data.get('version')!r}")
        engine = cls(
            str(data["device_id"]),
            settings,
            agents,
            clock=clock,
            id_factory=id_factory,
            armed=bool(data.get("armed", True)),
        )
        grid = data.get("grid")
        engine._grid = None if grid is None else GridStatus(grid)
        engine._soc_min = data.get("soc_min")
        engine._remaining = data.get("remaining_min")
        engine._last_at = data.get("last_at")
        engine._fresh_at = data.get("fresh_at")
        engine._stale = bool(data.get("stale", False))
        for agent_id, raw in dict(data.get("agents", {})).items():
            if agent_id in engine._runtime:
                engine._runtime[agent_id] = AgentRuntime.from_dict(agent_id, raw)
        engine._audit = AuditTrail.from_list(data.get("audit", []))
        engine._close_unverifiable()
        if engine._fresh_at is not None and not engine._stale:
            # Our own downtime is not evidence that the station went silent:
            # restart the stale window instead of shutting everything down
            # because Home Assistant took two minutes to restart.
            engine._fresh_at = max(engine._fresh_at, clock())
        return engine

    # ------------------------------------------------------------------
    # Telemetry handling
    # ------------------------------------------------------------------

    def _track_grid(self, grid: GridStatus, now: float, effects: list[Effect]) -> None:
        previous, self._grid = self._grid, grid
        if grid == previous:
            return
        if grid is GridStatus.LOST:
            self._audit_add(effects, now, AuditKind.GRID_LOST, "grid lost")
            effects.append(self._event(PolicyEvent.GRID_LOST, soc_min=self._soc_min))
        elif previous is GridStatus.LOST:
            self._audit_add(effects, now, AuditKind.GRID_RESTORED, "grid restored")
            effects.append(self._event(PolicyEvent.GRID_RESTORED, soc_min=self._soc_min))

    def _track_freshness(
        self, telemetry: PolicyTelemetry, now: float, effects: list[Effect]
    ) -> None:
        # "Usable" = enough to decide: a connected grid, or a lost grid with a
        # battery figure. A lost grid without one starts the stale clock but
        # does not keep it from running out.
        usable = telemetry.grid is GridStatus.CONNECTED or telemetry.has_battery_figure
        if not usable and self._fresh_at is not None:
            return
        evidence_at = min(telemetry.at, now)
        self._fresh_at = evidence_at if self._fresh_at is None else max(self._fresh_at, evidence_at)
        stale_at = self._stale_at()
        if self._stale and stale_at is not None and now < stale_at:
            self._stale = False
            effects.append(RepairChange(REPAIR_TELEMETRY_STALE, active=False))
            self._audit_add(effects, now, AuditKind.TELEMETRY_RESTORED, "telemetry restored")

    def _on_grid_connected(self, now: float, effects: list[Effect]) -> None:
        for agent_id, rt in self._runtime.items():
            rt.suppressed = False
            if rt.critical_since is not None:
                rt.critical_since = None
                self._audit_add(
                    effects,
                    now,
                    AuditKind.TIMER_CANCELLED,
                    "grid connected",
                    agent_id=agent_id,
                )
            shutdown = rt.shutdown
            # Manual shutdowns are the user's explicit wish: only manual_abort
            # cancels them. Automatic ones are handled once per restoration.
            if shutdown is None or shutdown.manual or shutdown.grid_restored:
                continue
            shutdown.grid_restored = True
            if not shutdown.is_live():
                continue
            if shutdown.past_commit(now):
                shutdown.closed = True  # a late copy would shut a powered host down
                self._audit_add(
                    effects,
                    now,
                    AuditKind.ABORT_TOO_LATE,
                    f"grid restored after commit point {shutdown.commit_at}: no abort",
                    agent_id=agent_id,
                    command_id=shutdown.id,
                )
                continue
            self._send_abort(
                rt,
                shutdown,
                now,
                f"grid restored before commit point {shutdown.commit_at}",
                effects,
                manual=False,
            )

    def _on_grid_lost(self, telemetry: PolicyTelemetry, now: float, effects: list[Effect]) -> None:
        for agent_id, rt in self._runtime.items():
            threshold = self._bindings[agent_id].threshold(self._settings)
            verdict = evaluate(telemetry, threshold, self._settings)
            if verdict is Verdict.CRITICAL and rt.critical_since is None:
                rt.critical_since = now
                rt.critical_reason = describe(telemetry, threshold, self._settings)
                fire_at = self._fire_at(rt, now)
                self._audit_add(
                    effects, now, AuditKind.TIMER_STARTED, rt.critical_reason, agent_id=agent_id
                )
                effects.append(
                    self._event(
                        PolicyEvent.BATTERY_CRITICAL,
                        agent_id=agent_id,
                        reason=rt.critical_reason,
                        soc_min=telemetry.soc_min,
                        threshold=threshold,
                        remaining_min=telemetry.remaining_discharge_min,
                        fire_at=fire_at,
                    )
                )
            elif verdict is Verdict.CLEAR and rt.critical_since is not None:
                rt.critical_since = None
                rt.suppressed = False
                self._audit_add(
                    effects,
                    now,
                    AuditKind.TIMER_CANCELLED,
                    f"soc_min {telemetry.soc_min:g} > {threshold:g}"
                    f" + hysteresis {self._settings.hysteresis_pct:g}",
                    agent_id=agent_id,
                )

    # ------------------------------------------------------------------
    # Time-driven work
    # ------------------------------------------------------------------

    def _evaluate(self, now: float) -> list[Effect]:
        effects: list[Effect] = []
        self._check_stale(now, effects)
        for agent_id, rt in self._runtime.items():
            fire_at = self._fire_at(rt, now)
            if fire_at is None:
                rt.suppressed = False  # episode over: a later one is recorded again
                continue
            if now < fire_at:
                continue
            if self._armed:
                self._fire(rt, now, effects)
            elif not rt.suppressed:
                rt.suppressed = True
                self._record_suppressed(agent_id, now, effects)
        self._resend_due(now, effects)
        return effects

    def _check_stale(self, now: float, effects: list[Effect]) -> None:
        stale_at = self._stale_at()
        if self._stale or stale_at is None or now < stale_at:
            return
        self._stale = True
        effects.append(RepairChange(REPAIR_TELEMETRY_STALE, active=True))
        grid = "none" if self._grid is None else str(self._grid)
        self._audit_add(
            effects,
            now,
            AuditKind.TELEMETRY_STALE,
            f"no usable telemetry for {self._settings.stale_after_sec} s; grid last seen {grid}",
        )
        if self._grid is GridStatus.LOST:
            effects.append(
                self._event(
                    PolicyEvent.BATTERY_CRITICAL,
                    agent_id=None,
                    reason="telemetry stale with grid lost",
                    soc_min=self._soc_min,
                    remaining_min=self._remaining,
                    fire_at=now,
                )
            )

    def _stale_at(self) -> float | None:
        if self._grid is None or self._fresh_at is None:
            return None  # grid never known: no fail-safe, no repair
        return self._fresh_at + self._settings.stale_after_sec

    def _fire_at(self, rt: AgentRuntime, now: float) -> float | None:
        """When this agent's automatic shutdown is due; None if its condition does not hold."""
        due: float | None = None
        if rt.critical_since is not None:
            due = rt.critical_since + self._settings.debounce_sec
        stale_at = self._stale_at()
        if self._grid is GridStatus.LOST and stale_at is not None and now >= stale_at:
            # Fail-safe: silence after a loss is critical for every agent; the
            # stale window itself served as the debounce.
            due = stale_at if due is None else min(due, stale_at)
        if due is not None and rt.last_shutdown_at is not None:
            due = max(due, rt.last_shutdown_at + self._settings.cooldown_sec)
        return due

    def _in_cooldown(self, rt: AgentRuntime, now: float) -> bool:
        last = rt.last_shutdown_at
        return last is not None and now < last + self._settings.cooldown_sec

    def _fire(self, rt: AgentRuntime, now: float, effects: list[Effect]) -> None:
        binding = self._bindings[rt.agent_id]
        mode = DecisionMode.DRY_RUN if self._settings.dry_run else DecisionMode.LIVE
        self._send_shutdown(
            rt,
            now,
            reason=self._fire_reason(rt, now),
            delay_sec=binding.delay(self._settings),
            mode=mode,
            effects=effects,
        )

    def _fire_reason(self, rt: AgentRuntime, now: float) -> str:
        since = rt.critical_since
        if since is not None and now >= since + self._settings.debounce_sec:
            # Describe the values at firing time: a re-fire after the cooldown
            # must not repeat the battery level of the first one.
            if self._grid is GridStatus.LOST and self._fresh_at is not None:
                reading = PolicyTelemetry(
                    grid=self._grid,
                    soc_min=self._soc_min,
                    remaining_discharge_min=self._remaining,
                    at=self._fresh_at,
                )
                threshold = self._bindings[rt.agent_id].threshold(self._settings)
                if evaluate(reading, threshold, self._settings) is Verdict.CRITICAL:
                    return describe(reading, threshold, self._settings)
            return rt.critical_reason
        silent = int(now - self._fresh_at) if self._fresh_at is not None else 0
        return f"telemetry stale for {silent} s with grid last seen lost"

    def _record_suppressed(self, agent_id: str, now: float, effects: list[Effect]) -> None:
        rt = self._runtime[agent_id]
        reason = self._fire_reason(rt, now)
        self._audit_add(
            effects,
            now,
            AuditKind.SHUTDOWN,
            f"{reason} (disarmed: not sent)",
            agent_id=agent_id,
            mode=DecisionMode.DISARMED,
        )
        effects.append(
            self._event(
                PolicyEvent.SHUTDOWN_SENT,
                agent_id=agent_id,
                command_id=None,
                reason=reason,
                mode=str(DecisionMode.DISARMED),
                published=False,
                manual=False,
            )
        )

    def _resend_blocked(self, cmd: SentCommand) -> bool:
        # Disarmed holds back automatic shutdowns, resends included; aborts
        # and pings are never held back (they cannot cause an action).
        return cmd.action is CommandAction.SHUTDOWN and not cmd.manual and not self._armed

    def _resend_due(self, now: float, effects: list[Effect]) -> None:
        interval = self._settings.resend_interval_sec
        for rt in self._runtime.values():
            for cmd in rt.tracked():
                if not cmd.awaiting_ack():
                    continue
                if cmd.action is CommandAction.ABORT and self._abort_pointless(rt, cmd, now):
                    cmd.closed = True
                    continue
                if now >= cmd.expires_at:
                    cmd.closed = True
                    self._audit_add(
                        effects,
                        now,
                        AuditKind.UNACKNOWLEDGED,
                        f"{cmd.action} not acknowledged within ttl {cmd.ttl_sec} s",
                        agent_id=rt.agent_id,
                        command_id=cmd.id,
                    )
                    continue
                if self._resend_blocked(cmd) or now < cmd.last_sent_at + interval:
                    continue
                cmd.last_sent_at = now
                effects.append(PublishCommand(rt.agent_id, cmd.action, cmd.payload, resend=True))
                self._audit_add(
                    effects,
                    now,
                    AuditKind.RESEND,
                    f"{cmd.action} not acknowledged yet",
                    agent_id=rt.agent_id,
                    command_id=cmd.id,
                )

    @staticmethod
    def _abort_pointless(rt: AgentRuntime, abort: SentCommand, now: float) -> bool:
        target = rt.shutdown
        if target is None or abort.ref is None or target.id != abort.ref:
            return False
        return target.past_commit(now) or target.outcome is not None

    # ------------------------------------------------------------------
    # Issuing commands
    # ------------------------------------------------------------------

    def _issue(
        self,
        rt: AgentRuntime,
        action: CommandAction,
        now: float,
        *,
        delay_sec: int,
        ttl_sec: int,
        reason: str,
        mode: DecisionMode,
        manual: bool = False,
        ref: str | None = None,
    ) -> SentCommand:
        issued_at = int(now)
        command_id = self._id_factory()
        payload = build_command(
            action=action,
            agent_secret=self._bindings[rt.agent_id].secret,
            device=self._device_id,
            reason=reason,
            delay_sec=delay_sec,
            ttl_sec=ttl_sec,
            issued_at=issued_at,
            command_id=command_id,
        )
        return SentCommand(
            id=command_id,
            action=action,
            payload=payload,
            issued_at=issued_at,
            delay_sec=delay_sec,
            ttl_sec=ttl_sec,
            sent_at=now,
            last_sent_at=now,
            mode=mode,
            manual=manual,
            ref=ref,
        )

    def _send_shutdown(
        self,
        rt: AgentRuntime,
        now: float,
        *,
        reason: str,
        delay_sec: int,
        mode: DecisionMode,
        effects: list[Effect],
        manual: bool = False,
        audit_reason: str | None = None,
    ) -> None:
        if rt.shutdown is not None:
            rt.shutdown.closed = True  # superseded: only the newest one is resent
        cmd = self._issue(
            rt,
            CommandAction.SHUTDOWN,
            now,
            delay_sec=delay_sec,
            ttl_sec=self._settings.ttl_sec,
            reason=reason,
            mode=mode,
            manual=manual,
        )
        rt.shutdown = cmd
        rt.last_shutdown_at = now
        if cmd.published:
            effects.append(PublishCommand(rt.agent_id, CommandAction.SHUTDOWN, cmd.payload))
        kind = AuditKind.MANUAL_SHUTDOWN if manual else AuditKind.SHUTDOWN
        self._audit_add(
            effects,
            now,
            kind,
            audit_reason or reason,
            agent_id=rt.agent_id,
            command_id=cmd.id,
            mode=mode,
        )
        effects.append(
            self._event(
                PolicyEvent.SHUTDOWN_SENT,
                agent_id=rt.agent_id,
                command_id=cmd.id,
                reason=cmd.payload["reason"],
                delay_sec=delay_sec,
                execute_at=cmd.commit_at,
                mode=str(mode),
                published=cmd.published,
                manual=manual,
            )
        )

    def _send_abort(
        self,
        rt: AgentRuntime,
        target: SentCommand | None,
        now: float,
        reason: str,
        effects: list[Effect],
        *,
        manual: bool,
    ) -> None:
        ttl = self._settings.ttl_sec
        if target is not None:
            # Expire with the commit point: an abort that arrives after it is
            # useless, and resends must never go out after it.
            ttl = max(1, min(ttl, target.commit_at - int(now)))
            mode = target.mode
        else:
            mode = DecisionMode.DRY_RUN if self._settings.dry_run else DecisionMode.LIVE
        if rt.abort is not None:
            rt.abort.closed = True
        abort = self._issue(
            rt,
            CommandAction.ABORT,
            now,
            delay_sec=0,
            ttl_sec=ttl,
            reason=reason,
            mode=mode,
            manual=manual,
            ref=None if target is None else target.id,
        )
        rt.abort = abort
        if target is not None:
            target.abort_id = abort.id
            target.closed = True
        if abort.published:
            effects.append(PublishCommand(rt.agent_id, CommandAction.ABORT, abort.payload))
        kind = AuditKind.MANUAL_ABORT if manual else AuditKind.ABORT
        self._audit_add(
            effects, now, kind, reason, agent_id=rt.agent_id, command_id=abort.id, mode=mode
        )
        effects.append(
            self._event(
                PolicyEvent.SHUTDOWN_ABORTED,
                agent_id=rt.agent_id,
                command_id=abort.id,
                ref=abort.ref,
                reason=abort.payload["reason"],
                mode=str(mode),
                published=abort.published,
                manual=manual,
            )
        )

    def _apply_terminal_ack(self, rt: AgentRuntime, cmd: SentCommand, ack: Ack) -> None:
        if cmd.action is not CommandAction.ABORT:
            cmd.outcome = ack.status
            return
        cmd.outcome = ack.status
        target = rt.shutdown
        ref = ack.ref or cmd.ref
        if target is None or ref is None or target.id != ref:
            return
        if ack.status is AckStatus.ABORTED:
            target.outcome = AckStatus.ABORTED
        elif ack.detail.startswith("too_late"):
            target.committed = True  # the abort lost the race: the host goes down

    # ------------------------------------------------------------------
    # Helpers
    # ------------------------------------------------------------------

    def _set_agents(self, agents: Iterable[AgentBinding]) -> None:
        bindings: dict[str, AgentBinding] = {}
        for binding in agents:
            if binding.agent_id in bindings:
                raise ValueError(f"agent {binding.agent_id!r} listed twice")
            bindings[binding.agent_id] = binding
        self._bindings = bindings
        self._runtime = {
            agent_id: self._runtime.get(agent_id) or AgentRuntime(agent_id) for agent_id in bindings
        }

    def _close_unverifiable(self) -> None:
        """Stop resending commands signed with a secret the agent no longer holds.

        After a secret rotation the stored payload would only earn a
        `bad_signature`; the policy issues a fresh command when one is due.
        """
        for agent_id, rt in self._runtime.items():
            secret = self._bindings[agent_id].secret
            for cmd in rt.tracked():
                if cmd.awaiting_ack() and not verify_message(cmd.payload, secret):
                    cmd.closed = True

    def _resolve(self, agent_ids: Iterable[str] | None) -> list[str]:
        if agent_ids is None:
            return list(self._bindings)
        ids = list(dict.fromkeys(agent_ids))
        unknown = [agent_id for agent_id in ids if agent_id not in self._bindings]
        if unknown:
            raise ValueError(f"unknown agents for {self._device_id}: {', '.join(unknown)}")
        return ids

    def _state(self, now: float) -> PolicyState:
        if not self._armed:
            return PolicyState.DISARMED
        current = [s for rt in self._runtime.values() if (s := self._current_shutdown(rt, now))]
        if any(s.past_commit(now) for s in current):
            return PolicyState.COMMITTED
        if current:
            return PolicyState.SHUTDOWN_SENT
        if any(self._fire_at(rt, now) is not None for rt in self._runtime.values()):
            return PolicyState.CRITICAL_PENDING
        if self._grid is GridStatus.LOST:
            return PolicyState.ON_BATTERY
        return PolicyState.NORMAL

    def _current_shutdown(self, rt: AgentRuntime, now: float) -> SentCommand | None:
        """The agent's shutdown if it still shapes the station state.

        It stops counting when the grid is restored, when the agent ends it, or
        after the cooldown window (at least delay + ttl) since it was sent.
        """
        s = rt.shutdown
        if s is None or not s.is_live() or s.grid_restored:
            return None
        window = max(self._settings.cooldown_sec, s.delay_sec + s.ttl_sec)
        return s if now < s.sent_at + window else None

    def _agent_view(self, agent_id: str, now: float) -> AgentView:
        rt = self._runtime[agent_id]
        binding = self._bindings[agent_id]
        last = rt.latest_command()
        shutdown = rt.shutdown
        commit_at = (
            shutdown.commit_at
            if shutdown is not None and shutdown.is_live() and now < shutdown.commit_at
            else None
        )
        return AgentView(
            agent_id=agent_id,
            soc_threshold=binding.threshold(self._settings),
            delay_sec=binding.delay(self._settings),
            pending_fire_at=self._fire_at(rt, now) if self._armed else None,
            last_command_id=None if last is None else last.id,
            last_command_action=None if last is None else last.action,
            last_command_at=None if last is None else last.sent_at,
            last_ack_status=rt.last_ack_status,
            last_ack_at=rt.last_ack_at,
            last_ack_detail=rt.last_ack_detail,
            acknowledged=False if last is None else last.acknowledged,
            committed=rt.shutdown is not None and rt.shutdown.committed,
            commit_at=commit_at,
        )

    def _event(self, event_type: PolicyEvent, **data: Any) -> EmitEvent:
        return EmitEvent(event_type, {"device_id": self._device_id, **data})

    def _audit_add(
        self,
        effects: list[Effect],
        now: float,
        kind: AuditKind,
        reason: str,
        *,
        agent_id: str | None = None,
        command_id: str | None = None,
        mode: DecisionMode | None = None,
    ) -> None:
        binding = self._bindings.get(agent_id) if agent_id is not None else None
        record = AuditRecord(
            at=now,
            device_id=self._device_id,
            kind=kind,
            reason=reason,
            agent_id=agent_id,
            grid=None if self._grid is None else str(self._grid),
            soc_min=self._soc_min,
            threshold=None if binding is None else binding.threshold(self._settings),
            remaining_min=self._remaining,
            command_id=command_id,
            mode=mode,
        )
        self._audit.append(record)
        effects.append(record)
