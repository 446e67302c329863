"""The normalized, model-independent picture of one power station.

Everything downstream (policy engine, Home Assistant entities) reads only
`PowerState`; the raw protocol fields stay inside the decoders.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from types import MappingProxyType
from typing import Any


class GridStatus(StrEnum):
    CONNECTED = "connected"
    LOST = "lost"
    UNKNOWN = "unknown"


class ChargeState(StrEnum):
    IDLE = "idle"
    CHARGING = "charging"
    DISCHARGING = "discharging"


class MessageSource(StrEnum):
    OPEN_QUOTA = "open_quota"  # /open/{account}/{sn}/quota
    PROPERTY = "property"  # /app/device/property/{sn}
    GET_REPLY = "get_reply"  # /app/{id}/{sn}/thing/property/get_reply
    STATUS = "status"  # /open/{account}/{sn}/status (online/offline)
    HTTP_QUOTA = "http_quota"  # quota/all dict over HTTPS


_EMPTY: Mapping[str, float] = MappingProxyType({})


def frozen_mapping(values: Mapping[str, float] | None) -> Mapping[str, float]:
    """A read-only copy, so a PowerState cannot change after it is built."""
    if not values:
        return _EMPTY
    return MappingProxyType(dict(values))


@dataclass(frozen=True, slots=True)
class PowerState:
    sn: str
    model: str
    soc: float | None = None
    soc_min: float | None = None
    soc_min_source: str | None = None
    soc_modules: tuple[float, ...] = ()
    grid: GridStatus = GridStatus.UNKNOWN
    grid_evidence: tuple[str, ...] = ()
    ac_in_w: float | None = None
    ac_in_v: float | None = None
    watts_in: float | None = None
    watts_out: float | None = None
    battery_w: float | None = None  # positive = charging, negative = discharging
    solar_w: float | None = None
    remaining_discharge_min: int | None = None
    remaining_charge_min: int | None = None
    charge_state: ChargeState | None = None
    energy_kwh: Mapping[str, float] = field(default=_EMPTY)
    firmware: str | None = None
    online: bool | None = None
    updated_at: float | None = None  # newest accepted message, fresh or not
    seen_at: Mapping[str, float] = field(default=_EMPTY)
    # Usable energy of the unit (models.py ModelInfo.capacity_wh, derated by
    # the pack health the station reports), Wh.
    capacity_wh: float | None = None
    # The station's own cut-offs, %: below them it stops supplying.
    discharge_limit_pct: float | None = None
    backup_reserve_pct: float | None = None  # None while the reserve is off
    # Newest *fresh* evidence: not an offline reply, not a cached snapshot
    # without news (see tracker.py). The time the policy should judge age by.
    fresh_at: float | None = None

    def __post_init__(self) -> None:
        # Callers may hand in plain dicts; freeze them so equal states stay equal.
        if not isinstance(self.energy_kwh, MappingProxyType):
            object.__setattr__(self, "energy_kwh", frozen_mapping(self.energy_kwh))
        if not isinstance(self.seen_at, MappingProxyType):
            object.__setattr__(self, "seen_at", frozen_mapping(self.seen_at))

    def to_dict(self) -> dict[str, Any]:
        """Plain JSON-ready dict (enums as strings, mappings as dicts)."""
        out = {name: getattr(self, name) for name in _FIELDS}
        out["soc_modules"] = list(self.soc_modules)
        out["grid_evidence"] = list(self.grid_evidence)
        out["grid"] = str(self.grid)
        out["charge_state"] = None if self.charge_state is None else str(self.charge_state)
        out["energy_kwh"] = dict(self.energy_kwh)
        out["seen_at"] = dict(self.seen_at)
        return out


_FIELDS: tuple[str, ...] = tuple(PowerState.__dataclass_fields__)
