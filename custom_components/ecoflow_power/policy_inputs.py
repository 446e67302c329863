"""PowerState -> PolicyTelemetry: what the engines are fed from each station's state."""

from __future__ import annotations

from .ecoflow.state import PowerState
from .policy.telemetry import PolicyTelemetry


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
        for value in (state.discharge_limit_pct, state.backup_reserve_pct)
        if value is not None
    ]
    return max(known) if known else None


def telemetry_reading(state: PowerState) -> PolicyTelemetry | None:
    """The engine's reading of a state, or None when it carries no fresh evidence.

    Age is judged by PowerState.fresh_at: a reply that says "offline" or a
    cached snapshot without news moves updated_at, not fresh_at.
    """
    if state.fresh_at is None:
        return None
    return PolicyTelemetry(
        grid=state.grid,
        soc_min=state.soc_min,
        remaining_discharge_min=state.remaining_discharge_min,
        at=state.fresh_at,
        discharge_w=discharge_w(state),
        load_w=load_w(state),
        capacity_wh=state.capacity_wh,
        cutoff_pct=cutoff_pct(state),
    )
