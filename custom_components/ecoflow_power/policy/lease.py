"""Protocol 2: the power lease the integration keeps on each agent's `power` topic.

A lease is level state, like NUT's FSD flag: it says what the grid is doing,
when the agent must start its own shutdown if no newer lease arrives
(`shutdown_by`) and whether its shutdown is due now (`fsd`). It is retained,
so an agent that (re)connects or starts reads it at once, and it is signed and
carries its issue time and expiry, so an old one is never acted on at start
(no boot loop). docs/protocol.md section 9 is the specification; this module
builds and verifies the message and holds the timing rules of the integration
side. No Home Assistant imports.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
import json
from typing import Any, Final

from custom_components.ecoflow_power.ecoflow.state import GridStatus

from .protocol import is_valid_agent_id, power_topic, sanitize_text, sign_message, verify_message
from .status import AgentView, PolicyState, PolicyStatus

LEASE_VERSION: Final = 2
LEASE_TYPE: Final = "lease"
# While on battery (or fsd set) the lease is republished at least this often...
LEASE_REFRESH_SEC: Final = 30
# ... and a lease is valid this long after it was issued (three refreshes), or
# until shutdown_by + this, whichever is later: an agent restarted during the
# outage still resumes the countdown, and a host that boots after the deadline
# has long passed ignores it.
LEASE_VALID_SEC: Final = 90
MAX_LEASE_BYTES: Final = 8192
# A deadline moved earlier by this much is published at once (see LeaseState.supersedes).
LEASE_EARLIER_SEC: Final = 5
MAX_OFFSET_ROUND_TRIP_SEC: Final = 5.0


class LeaseGrid(StrEnum):
    PRESENT = "present"
    ON_BATTERY = "on_battery"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class Lease:
    """A verified lease (what an agent, or a test, reads back)."""

    agent: str
    device: str
    grid: LeaseGrid
    soc_min: float | None
    shutdown_by: int | None
    fsd: bool
    issued_at: int
    expires_at: int


@dataclass(frozen=True, slots=True)
class LeaseState:
    """What a lease says, without its times: a change of it is published at once."""

    grid: LeaseGrid
    soc_min: float | None
    shutdown_by: int | None
    fsd: bool

    def supersedes(self, published: LeaseState) -> bool:
        """Worth a lease at once, not only at the next refresh.

        The grid, fsd, a deadline appearing or going, or a deadline moved
        earlier by LEASE_EARLIER_SEC or more. A later deadline or a new soc_min
        waits for the refresh: an agent holding the older, earlier deadline
        errs on the safe side, and the estimate moves a little with every
        reading.
        """
        if (self.grid, self.fsd) != (published.grid, published.fsd):
            return True
        if (self.shutdown_by is None) != (published.shutdown_by is None):
            return True
        return (
            self.shutdown_by is not None
            and published.shutdown_by is not None
            and self.shutdown_by <= published.shutdown_by - LEASE_EARLIER_SEC
        )

    @property
    def needs_refresh(self) -> bool:
        """On battery, a deadline or fsd: republished every LEASE_REFRESH_SEC."""
        return self.grid is LeaseGrid.ON_BATTERY or self.fsd or self.shutdown_by is not None


# The engine's verdicts under which "grid present" would be a claim it cannot make.
_DOUBTFUL = {PolicyState.BLIND, PolicyState.UNPROTECTED}


def lease_state(status: PolicyStatus, view: AgentView) -> LeaseState:
    """The lease for one agent from its station's engine status.

    "present" cancels an agent's own countdown, so it is said only on a fresh
    CONNECTED verdict; stale telemetry, blind or unprotected is "unknown".
    """
    if status.grid is GridStatus.LOST:
        grid = LeaseGrid.ON_BATTERY
    elif (
        status.grid is GridStatus.CONNECTED
        and not status.telemetry_stale
        and status.state not in _DOUBTFUL
    ):
        grid = LeaseGrid.PRESENT
    else:
        grid = LeaseGrid.UNKNOWN
    soc = None if status.soc_min is None else round(min(100.0, max(0.0, status.soc_min)), 1)
    by = None if view.shutdown_by is None else int(view.shutdown_by)
    return LeaseState(grid=grid, soc_min=soc, shutdown_by=by, fsd=view.fsd)


def lease_topic(prefix: str, agent_id: str) -> str:
    """`{prefix}/{agent_id}/power`: published retained, QoS 1."""
    return power_topic(prefix, agent_id)


def lease_expiry(issued_at: int, shutdown_by: int | None) -> int:
    """When a lease issued at `issued_at` stops being acted on at an agent's start."""
    base = issued_at if shutdown_by is None else max(issued_at, shutdown_by)
    return base + LEASE_VALID_SEC


def _uint(name: str, value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ValueError(f"{name} must be a non-negative integer")
    return value


def _soc_text(soc_min: float) -> str:
    # Floats are outside the signed subset: one decimal as text, e.g. "19.5".
    if not 0 <= soc_min <= 100:
        raise ValueError("soc_min must be within 0..100")
    return f"{soc_min:.1f}"


def build_lease(
    *,
    agent_id: str,
    agent_secret: str,
    device: str,
    grid: LeaseGrid | str,
    soc_min: float | None,
    shutdown_by: int | None,
    fsd: bool,
    issued_at: int,
    expires_at: int,
) -> dict[str, Any]:
    """A signed lease, ready for json.dumps onto `lease_topic` (retained)."""
    if not is_valid_agent_id(agent_id):
        raise ValueError(f"invalid agent id {agent_id!r}")
    issued_at = _uint("issued_at", issued_at)
    if _uint("expires_at", expires_at) < issued_at:
        raise ValueError("expires_at must not be before issued_at")
    message: dict[str, Any] = {
        "v": LEASE_VERSION,
        "type": LEASE_TYPE,
        "agent": agent_id,
        "device": sanitize_text(device),
        "grid": str(LeaseGrid(grid)),
        "fsd": bool(fsd),
        "issued_at": issued_at,
        "expires_at": expires_at,
    }
    if soc_min is not None:
        message["soc_min"] = _soc_text(soc_min)
    if shutdown_by is not None:
        message["shutdown_by"] = _uint("shutdown_by", shutdown_by)
    message["sig"] = sign_message(message, agent_secret)
    return message


def _opt_uint(obj: dict[str, Any], key: str) -> int | None:
    value = obj.get(key)
    if value is None:
        return None
    return _uint(key, value)


def parse_lease(payload: bytes | str, secret: str, agent_id: str) -> Lease | None:
    """The lease in `payload` for `agent_id`, or None if malformed, foreign or unsigned."""
    if len(payload) > MAX_LEASE_BYTES:
        return None
    try:
        obj = json.loads(payload)
    except ValueError:
        return None
    if not isinstance(obj, dict) or obj.get("v") != LEASE_VERSION:
        return None
    if obj.get("type") != LEASE_TYPE or obj.get("agent") != agent_id:
        return None
    if not verify_message(obj, secret):
        return None
    try:
        grid = LeaseGrid(str(obj.get("grid")))
        issued_at = _uint("issued_at", obj.get("issued_at"))
        expires_at = _uint("expires_at", obj.get("expires_at"))
        shutdown_by = _opt_uint(obj, "shutdown_by")
        soc = obj.get("soc_min")
        soc_min = None if soc is None else float(soc)
    except TypeError, ValueError:
        return None
    device, fsd = obj.get("device"), obj.get("fsd")
    if not isinstance(device, str) or not isinstance(fsd, bool) or expires_at < issued_at:
        return None
    return Lease(
        agent=agent_id,
        device=device,
        grid=grid,
        soc_min=soc_min,
        shutdown_by=shutdown_by,
        fsd=fsd,
        issued_at=issued_at,
        expires_at=expires_at,
    )


def clock_offset_sec(ack_at: int, sent_at: float, received_at: float) -> float | None:
    """The agent's clock minus ours, from a prompt answer (a pong, a `received`).

    `ack_at` is the agent's clock (whole seconds, so +0.5 on average) when it
    answered, `sent_at`/`received_at` ours when the command went out and the
    ack came in. The answer is taken as given half-way; a round trip over 5 s
    (a resend, a queued command) says nothing about the clocks and gives None.
    Resolution: about one second.
    """
    round_trip = received_at - sent_at
    if round_trip < 0 or round_trip > MAX_OFFSET_ROUND_TRIP_SEC:
        return None
    return round(ack_at + 0.5 - (sent_at + received_at) / 2, 1)
