"""The NUT clients of one station as one consumer of its policy.

The engine treats them as a `local` agent (`nut-<upsname>`): it issues signed
commands like for any host agent, and this module answers them in place of an
agent process: `scheduled` at once with the commit point, `executing` when the
commit point comes, `aborted` / `rejected (too_late)` for an abort, `pong`.
`executing` is what makes the engine latch `fsd` for the clients.

`ups_inputs` turns the station's PowerState and the engine's PolicyStatus into
what the clients see. Pure: the caller passes `now`.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from custom_components.ecoflow_power.ecoflow.state import ChargeState, GridStatus, PowerState
from custom_components.ecoflow_power.policy.protocol import Ack, AckStatus, CommandAction
from custom_components.ecoflow_power.policy.settings import AgentBinding
from custom_components.ecoflow_power.policy.status import AgentView, PolicyState, PolicyStatus

from .config import NutConfig
from .variables import UpsInputs

NUT_AGENT_PREFIX = "nut-"


def nut_agent_id(upsname: str) -> str:
    return f"{NUT_AGENT_PREFIX}{upsname}"


# A local consumer's commands never leave Home Assistant, so their signature is not
# checked by anyone; AgentBinding still wants a non-empty secret.
_LOCAL_SECRET = "local-nut-consumer"


def nut_bindings(options: Mapping[str, Any], sn: str) -> list[AgentBinding]:
    """The NUT consumer of station `sn` as a binding of its engine (none when disabled)."""
    config = NutConfig.from_options(options)
    station = config.stations.get(sn)
    if not config.enabled or station is None:
        return []
    return [
        AgentBinding(
            agent_id=nut_agent_id(station.name),
            secret=_LOCAL_SECRET,
            soc_threshold=station.soc_threshold,
            delay_sec=station.delay_sec,
            local=True,
        )
    ]


@dataclass(slots=True)
class _Job:
    command_id: str
    execute_at: int
    executing: bool = False


class LocalConsumer:
    """Answers the engine's commands for one NUT consumer (no I/O, no clock of its own)."""

    def __init__(self, agent_id: str) -> None:
        self.agent_id = agent_id
        self._job: _Job | None = None
        self._last_executed: _Job | None = None
        self._seen: set[str] = set()

    @property
    def pending_execute_at(self) -> int | None:
        job = self._job
        return None if job is None or job.executing else job.execute_at

    def _ack(self, command_id: str, status: AckStatus, now: float, **extra: Any) -> Ack:
        return Ack(id=command_id, agent=self.agent_id, status=status, at=int(now), **extra)

    def receive(self, payload: Mapping[str, Any], now: float) -> list[Ack]:
        """Acks for one command payload (as PublishCommand carries it)."""
        command_id = str(payload.get("id", ""))
        action = payload.get("action")
        if not command_id:
            return []
        if command_id in self._seen:
            return [self._ack(command_id, AckStatus.DUPLICATE, now)]
        self._seen.add(command_id)
        if action == CommandAction.PING:
            return [self._ack(command_id, AckStatus.PONG, now)]
        issued_at = int(payload.get("issued_at", 0))
        if now > issued_at + int(payload.get("ttl_sec", 0)):
            return [self._ack(command_id, AckStatus.EXPIRED, now)]
        if action == CommandAction.ABORT:
            return [self._abort(command_id, now)]
        if action != CommandAction.SHUTDOWN:
            return [self._ack(command_id, AckStatus.REJECTED, now, detail="unknown action")]
        execute_at = issued_at + int(payload.get("delay_sec", 0))
        self._job = _Job(command_id, execute_at)
        acks = [self._ack(command_id, AckStatus.SCHEDULED, now, execute_at=execute_at)]
        return acks + self.due(now)

    def _abort(self, command_id: str, now: float) -> Ack:
        job = self._job
        if job is None:
            last = self._last_executed
            if last is not None:
                return self._ack(
                    command_id,
                    AckStatus.REJECTED,
                    now,
                    detail=f"too_late: commit point passed at {last.execute_at}",
                    ref=last.command_id,
                )
            return self._ack(command_id, AckStatus.REJECTED, now, detail="nothing_pending")
        if job.executing or now >= job.execute_at:
            return self._ack(
                command_id,
                AckStatus.REJECTED,
                now,
                detail=f"too_late: commit point passed at {job.execute_at}",
                ref=job.command_id,
            )
        self._job = None
        return self._ack(command_id, AckStatus.ABORTED, now, ref=job.command_id)

    def due(self, now: float) -> list[Ack]:
        """`executing` once the commit point of the pending shutdown has come."""
        job = self._job
        if job is None or job.executing or now < job.execute_at:
            return []
        job.executing = True
        self._last_executed = job
        self._job = None
        return [self._ack(job.command_id, AckStatus.EXECUTING, now, execute_at=job.execute_at)]

    def adopt(self, view: AgentView | None) -> None:
        """After a restart: take over a live shutdown the engine still knows about.

        Its commit point may have passed while Home Assistant was down: then
        `due` confirms it at once, as an agent would have gone ahead on time.
        """
        # `fsd` marks a live automatic shutdown of this outage (never a dry run).
        if view is None or self._job is not None or view.committed or not view.fsd:
            return
        if view.last_command_action is not CommandAction.SHUTDOWN or view.last_command_id is None:
            return
        if view.commit_at is not None:
            execute_at = int(view.commit_at)
        elif view.last_ack_status is AckStatus.SCHEDULED and view.last_command_at:
            execute_at = int(view.last_command_at) + view.delay_sec
        else:
            return
        self._seen.add(view.last_command_id)
        self._job = _Job(view.last_command_id, execute_at)


def view_fsd(view: AgentView | None) -> bool:
    """FSD for the NUT clients: their shutdown passed its commit point, in this outage.

    `committed` (set by the `executing` ack) says the commit point passed;
    the engine's `fsd` says the shutdown belongs to the outage still going on:
    it is raised when the shutdown is issued, stays latched until the grid has
    been back for the restore confirmation time, and is clear in the next
    outage until a new shutdown is due. Host agents count down from `fsd`;
    NUT clients have no countdown of their own, so they need both. A client
    that reconnects during the outage sees FSD; one that boots once the power
    is confirmed back, or in a later outage before its own commit point, does not.
    """
    return view is not None and view.committed and view.fsd


@dataclass(frozen=True, slots=True)
class StationFacts:
    """Static facts and per-consumer settings of one station's UPS."""

    model: str
    serial: str
    driver_version: str
    charge_low_pct: float
    runtime_low_sec: int
    charge_restart_pct: float | None = None


def ups_inputs(
    facts: StationFacts,
    state: PowerState | None,
    status: PolicyStatus | None,
    agent_id: str,
    *,
    now: float,
    stale_after_sec: float,
) -> UpsInputs:
    """What the NUT clients of `agent_id` see, from telemetry and the policy."""
    view = status.agents.get(agent_id) if status else None
    policy_grid = status.grid if status else None
    grid = state.grid if state is not None else GridStatus.UNKNOWN
    if grid is GridStatus.UNKNOWN and policy_grid is not None:
        grid = policy_grid
    fsd = view_fsd(view)
    fresh_at = None if state is None else (getattr(state, "fresh_at", None) or state.updated_at)
    stale = fresh_at is None or now - fresh_at > stale_after_sec
    estimate = status.estimate_soc if status else None
    policy_state = status.state if status else None
    countdown = view is not None and (
        view.pending_fire_at is not None or view.commit_at is not None
    )
    outage_states = {
        PolicyState.ON_BATTERY,
        PolicyState.CRITICAL_PENDING,
        PolicyState.SHUTDOWN_SENT,
        PolicyState.COMMITTED,
        PolicyState.BLIND,  # grid last seen present, then silence with the station offline
    }
    on_battery = (
        grid is GridStatus.LOST
        or fsd
        or (grid is not GridStatus.CONNECTED and (countdown or policy_state in outage_states))
    )
    known = fsd or estimate is not None or (state is not None and not stale)
    charge: float | None = None
    runtime: float | None = None
    charging: bool | None = None
    if state is not None:
        charge = state.soc_min if state.soc_min is not None else state.soc
        if state.remaining_discharge_min is not None:
            runtime = state.remaining_discharge_min * 60
        if state.charge_state is ChargeState.CHARGING:
            charging = True
        elif state.charge_state is ChargeState.DISCHARGING:
            charging = False
        elif state.battery_w is not None and state.battery_w != 0:
            charging = state.battery_w > 0
    if stale and estimate is not None:
        charge = estimate
        charging = False if on_battery else None
        capacity = getattr(state, "capacity_wh", None) if state else None
        watts = state.watts_out if state else None
        runtime = estimate / 100 * capacity / watts * 3600 if capacity and watts else None
    return UpsInputs(
        model=facts.model,
        serial=facts.serial,
        firmware=state.firmware if state else None,
        driver_version=facts.driver_version,
        known=known,
        on_battery=on_battery,
        charging=charging,
        fsd=fsd,
        charge_pct=charge,
        charge_low_pct=facts.charge_low_pct,
        runtime_sec=runtime,
        runtime_low_sec=facts.runtime_low_sec,
        input_voltage=None if state is None or stale else state.ac_in_v,
        output_w=None if state is None or stale else state.watts_out,
        charge_restart_pct=facts.charge_restart_pct,
    )
