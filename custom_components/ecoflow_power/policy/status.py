"""Read-only views of the engine, for Home Assistant sensors and diagnostics."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from custom_components.ecoflow_power.ecoflow.state import GridStatus

from .protocol import AckStatus, CommandAction


class PolicyState(StrEnum):
    """Options of the station's HA enum sensor, most urgent first."""

    DISARMED = "disarmed"
    COMMITTED = "committed"  # a shutdown passed its commit point
    SHUTDOWN_SENT = "shutdown_sent"  # a shutdown is out, still abortable
    CRITICAL_PENDING = "critical_pending"  # debounce (or stale) timer running
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
