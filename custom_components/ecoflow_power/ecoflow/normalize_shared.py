"""What every family's normalizer shares: minutes left, firmware, charge state, energy.

EcoFlow families name the same quantity differently; these read the parts
that mean the same once found (sentinels, packed versions, signs).
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from . import grid
from .readings import Normalized, RawFields
from .state import ChargeState

# 5939 (98 h 59 min) and 5999 (99 h 59 min) mean "not applicable"; the display
# tops out at 99:59, so anything above is not an estimate either (js02 reports
# 140157 and 143999).
REMAIN_SENTINELS = frozenset({5939, 5999})
MAX_REMAIN_MIN = 5999
IDLE_WATTS = 10.0


def remaining_minutes(value: float | None) -> int | None:
    """Minutes, or None for sentinels, negatives and implausible values."""
    if value is None:
        return None
    minutes = int(value)
    if minutes in REMAIN_SENTINELS or minutes < 0 or minutes > MAX_REMAIN_MIN:
        return None
    return minutes


def firmware_text(value: Any) -> str | None:
    """EcoFlow packs versions as four bytes, major first: 16908599 -> 1.2.1.55."""
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        return None
    return ".".join(str((value >> shift) & 0xFF) for shift in (24, 16, 8, 0))


def charge_state_from_code(code: Any) -> ChargeState | None:
    # chg_dsg_state: 0 idle, 1 discharging, 2 charging.
    return {0: ChargeState.IDLE, 1: ChargeState.DISCHARGING, 2: ChargeState.CHARGING}.get(code)


def charge_state_from_watts(battery_w: float | None) -> ChargeState | None:
    if battery_w is None:
        return None
    if battery_w >= IDLE_WATTS:
        return ChargeState.CHARGING
    if battery_w <= -IDLE_WATTS:
        return ChargeState.DISCHARGING
    return ChargeState.IDLE


def energy_totals(
    out: Normalized, raw: RawFields, table: Mapping[str, tuple[str, ...]], scale: float
) -> None:
    energy: dict[str, float] = {}
    newest = 0.0
    for name, keys in table.items():
        total = None
        for key in keys:
            reading = raw.number(key)
            if reading is not None and reading.value >= 0:
                total = (total or 0.0) + reading.value * scale
                newest = max(newest, reading.seen_at)
        if total is not None:
            energy[name] = round(total, 3)
    if energy:
        out.values["energy_kwh"] = energy
        out.seen["energy_kwh"] = newest


def discharge_evidence(out: Normalized) -> None:
    battery_w = out.values.get("battery_w")
    state = out.values.get("charge_state")
    if battery_w is None and state is None:
        return
    discharging = state is ChargeState.DISCHARGING or (
        battery_w is not None and battery_w <= -grid.DISCHARGE_WATTS
    )
    seen = max(out.seen.get("battery_w", 0.0), out.seen.get("charge_state", 0.0))
    out.grid_signals.append(grid.discharge_signal(battery_w, discharging, seen))
