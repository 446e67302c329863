"""What the engine asks the Home Assistant glue to do. The engine itself does no I/O."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any

from .audit import AuditRecord
from .protocol import CommandAction


class PolicyEvent(StrEnum):
    """Event types the glue fires on the HA bus (prefixed with the domain there)."""

    GRID_LOST = "grid_lost"
    GRID_RESTORED = "grid_restored"
    BATTERY_CRITICAL = "battery_critical"
    SHUTDOWN_SENT = "shutdown_sent"
    SHUTDOWN_ABORTED = "shutdown_aborted"


@dataclass(frozen=True, slots=True)
class PublishCommand:
    """Publish `payload` as JSON on command_topic(prefix, agent_id), QoS 1, not retained.

    A resend carries the very same payload (same id, same signature), so an
    agent that got the first copy answers `duplicate` instead of acting twice.
    """

    agent_id: str
    action: CommandAction
    payload: dict[str, Any]
    resend: bool = False


@dataclass(frozen=True, slots=True)
class EmitEvent:
    event_type: PolicyEvent
    data: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class RepairChange:
    """Raise (active=True) or clear a Home Assistant repair issue for this station.

    `placeholders` fill the repair's translated text (times are epoch seconds
    as strings; the glue renders them in the user's time zone).
    """

    issue_id: str
    active: bool
    placeholders: dict[str, str] = field(default_factory=dict, compare=False)


REPAIR_TELEMETRY_STALE = "telemetry_stale"
# Station silent and offline (or the cloud unreachable) with the grid last seen
# present: an outage is assumed. Placeholders: fires_at (epoch s, "" if unknown).
REPAIR_POLICY_BLIND = "policy_blind"
# Agents, but no grid verdict for minutes and nothing that would act on it.
REPAIR_POLICY_UNPROTECTED = "policy_unprotected"
# The station's own discharge limit / backup reserve is at or above a
# threshold. Placeholders: cutoff, threshold, effective (percent).
REPAIR_STATION_CUTOFF = "station_cutoff"

type Effect = PublishCommand | EmitEvent | AuditRecord | RepairChange
