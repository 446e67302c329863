"""PowerState -> PolicyTelemetry: what the engines are fed from each station's state.

The newer fields (discharge power, capacity, the station's own cut-offs, fresh
evidence time) are read with defaults, so this works with any PowerState and
PolicyTelemetry that have them or not.
"""

from __future__ import annotations

from dataclasses import fields
from typing import Any

from .ecoflow.state import PowerState
from .policy.telemetry import PolicyTelemetry

_TELEMETRY_FIELDS = frozenset(f.name for f in fields(PolicyTelemetry))
_STATE_FIELDS = frozenset(PowerState.__dataclass_fields__)


def discharge_w(state: PowerState) -> float | None:
    """Watts leaving the battery (>= 0); None when nothing says."""
    if state.battery_w is not None:
        return max(0.0, -state.battery_w)
    if state.watts_out is not None and state.watts_in is not None:
        return max(0.0, state.watts_out - state.watts_in)
    return None


def load_w(state: PowerState) -> float | None:
    """Watts the station's outputs deliver (>= 0): what the battery carries once mains fails.

    Blind mode estimates from a reading taken on grid, where nothing leaves
    the battery yet.
    """
    return None if state.watts_out is None else max(0.0, state.watts_out)


def cutoff_pct(state: PowerState) -> float | None:
    """The station's own discharge limit or backup reserve, whichever cuts AC first."""
    known = [
        value
        for name in ("discharge_limit_pct", "backup_reserve_pct")
        if (value := getattr(state, name, None)) is not None
    ]
    return max(known) if known else None


def evidence_at(state: PowerState) -> float | None:
    """When the state was last backed by fresh evidence.

    With PowerState.fresh_at (a reply that says "offline" or a cached snapshot
    is not fresh), that; otherwise the time of the newest accepted message.
    """
    if "fresh_at" in _STATE_FIELDS:
        return getattr(state, "fresh_at", None)
    return state.updated_at


def telemetry_reading(state: PowerState) -> PolicyTelemetry | None:
    """The engine's reading of a state, or None when it carries no fresh evidence."""
    at = evidence_at(state)
    if at is None:
        return None
    values: dict[str, Any] = {
        "grid": state.grid,
        "soc_min": state.soc_min,
        "remaining_discharge_min": state.remaining_discharge_min,
        "at": at,
        "discharge_w": discharge_w(state),
        "load_w": load_w(state),
        "capacity_wh": getattr(state, "capacity_wh", None),
        "cutoff_pct": cutoff_pct(state),
    }
    return PolicyTelemetry(**{k: v for k, v in values.items() if k in _TELEMETRY_FIELDS})
