"""Read-only views of the engine, for Home Assistant sensors and diagnostics."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from custom_components.ecoflow_power.ecoflow.state import GridStatus

from .protocol import AckStatus, CommandAction


class PolicyState(StrEnum):
    """Options of the station's HA enum sensor, most urgent first."""

    DISARMED = "disarmed"
    COMMITTED = "committed"  # a shutdown passed its commit point, acknowledged
    UNACKNOWLEDGED = "unacknowledged"  # a live shutdown no ack confirmed
    SHUTDOWN_SENT = "shutdown_sent"  # a shutdown is out, still abortable
    BLIND = "blind"  # silence with the grid last seen present, station offline: assumed outage
    CRITICAL_PENDING = "critical_pending"  # debounce (or stale) timer running
    UNPROTECTED = "unprotected"  # agents, but no grid verdict for minutes
    ON_BATTERY = "on_battery"
    NORMAL = "normal"


@dataclass(frozen=True, slots=True)
class AgentView:
    agent_id: str
    soc_threshold: float
    delay_sec: int
    pending_fire_at: float | None
    last_command_id: str | None
    last_command_action: CommandAction | None
    last_command_at: float | None
    last_ack_status: AckStatus | None
    last_ack_at: float | None
    last_ack_detail: str
    acknowledged: bool  # the last command got an ack (any status)
    committed: bool  # the last shutdown got an `executing` ack
    commit_at: float | None = None  # a live shutdown's commit point, while still ahead
    # Level: this agent's shutdown is due or out; cleared once the grid is back
    # for restore_confirm_sec.
    fsd: bool = False
    # Epoch s: when the agent must start its own shutdown if nothing newer
    # arrives (None: grid present / unknown).
    shutdown_by: float | None = None
    unacknowledged: bool = False  # a live shutdown no ack confirmed


@dataclass(frozen=True, slots=True)
class PolicyStatus:
    device_id: str
    state: PolicyState
    armed: bool
    dry_run: bool
    grid: GridStatus | None  # last known (connected/lost); None = never known
    soc_min: float | None
    remaining_discharge_min: int | None
    telemetry_stale: bool
    pending_fire_at: float | None
    agents: dict[str, AgentView]
    # The earliest commit point of a shutdown already sent: when a host goes down.
    next_commit_at: float | None = None
    # While the energy estimate runs (station silent on battery, or blind).
    estimate_soc: float | None = None
    estimate_at: float | None = None  # when the estimate reaches the firing point
    explanation: str = ""  # one sentence: what the engine believes and why
