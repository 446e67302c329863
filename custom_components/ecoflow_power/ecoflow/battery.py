"""The battery side of normalization: weakest pack, usable capacity, cut-offs."""

from __future__ import annotations

from collections.abc import Mapping
import math
from typing import Any

from .models import ModelInfo
from .readings import Normalized, RawFields, Reading, rounded


def set_packs(
    out: Normalized,
    raw: RawFields,
    packs: Mapping[int, list[Reading]],
    screen: Reading | None,
    connected: Any = None,
) -> None:
    """soc_modules per pack, soc_min = weakest pack (the conservative figure).

    soc_min leaves out what no longer describes a pack in use: an extra pack
    the station reports as not connected (`connected[i] == 0`), a pack that
    has not reported for `pack_silent_after` while another did, and any
    reading older than `soc_max_age` (see `normalize`).
    """
    chosen: dict[int, Reading] = {}
    for index, readings in packs.items():
        if not readings:
            continue
        newest = max(reading.seen_at for reading in readings)
        # Same moment, two figures for one pack (98.78 vs 98.61 in pb03): take the lower.
        chosen[index] = min(
            (r for r in readings if r.seen_at == newest), key=lambda r: float(r.value)
        )
    out.soc_readings.extend(r for readings in packs.values() for r in readings)
    bounded = math.isfinite(raw.now) and math.isfinite(raw.soc_max_age)
    oldest_allowed = raw.now - raw.soc_max_age if bounded else -math.inf
    if chosen:
        ordered = [chosen[index] for index in sorted(chosen)]
        out.values["soc_modules"] = tuple(rounded(r.value) for r in ordered)
        out.seen["soc_modules"] = max(r.seen_at for r in ordered)
        newest_pack = max(r.seen_at for r in ordered)
        eligible = [
            reading
            for index, reading in sorted(chosen.items())
            if not (
                index > 0
                and isinstance(connected, list | tuple)
                and index < len(connected)
                and connected[index] == 0
            )
            and reading.seen_at >= newest_pack - raw.pack_silent_after
            and reading.seen_at >= oldest_allowed
        ]
        if eligible:
            weakest = min(eligible, key=lambda r: float(r.value))
            out.put("soc_min", weakest, rounded(weakest.value))
            out.soc_basis = [r.seen_at for r in eligible]
            return
    if screen is not None and screen.seen_at >= oldest_allowed:
        # No (current) per-pack figure, e.g. a CMS heartbeat alone: the screen
        # figure is all there is.
        out.put("soc_min", screen, rounded(screen.value))
        out.soc_basis = [screen.seen_at]


def _percent(reading: Reading | None) -> Reading | None:
    if reading is None or not 0 <= reading.value <= 100:
        return None
    return reading


def station_limits(
    out: Normalized, raw: RawFields, discharge_key: str, reserve_key: str, reserve_on_key: str
) -> None:
    """The station's own cut-offs: discharge limit, and the backup reserve when it is on.

    Discharge limit: CMS `min_dsg_soc` (protobuf), `minDsgSoc` (JSON), the
    app's "discharge limit". Backup reserve: `energy_backup_start_soc` with
    `energy_backup_en` (protobuf), `pd.bpPowerSoc` with `pd.watchIsConfig`
    (JSON; the app's "backup reserve" switch, as tolwi/hassio-ecoflow-cloud
    maps it). A reserve that is switched off is no cut-off; one whose switch
    was never reported is taken as on (the cautious reading).
    """
    limit = _percent(raw.number(discharge_key))
    out.put("discharge_limit_pct", limit, None if limit is None else float(limit.value))
    reserve = _percent(raw.number(reserve_key))
    switch = raw.number(reserve_on_key)
    if reserve is not None and (switch is None or switch.value != 0):
        out.put("backup_reserve_pct", reserve, float(reserve.value))


# BMS full and design capacity (mAh), main pack: the JSON families report them.
_HEALTH_KEYS = (
    ("bms_bmsStatus.fullCap", "bms_bmsStatus.designCap"),
    ("bmsMaster.fullCap", "bmsMaster.designCap"),
)


def capacity(out: Normalized, raw: RawFields, model: ModelInfo) -> None:
    """Usable energy of the unit: the rated figure, derated by the pack's health.

    The BMS's full capacity against its design capacity is the share of the
    rated energy the aged pack still holds (js03: 17978 of 20000 mAh). Extra
    batteries are not added: the policy plans with the weakest pack, and the
    unit's own battery is the smaller, cautious figure.
    """
    if model.capacity_wh is None:
        return
    for full_key, design_key in _HEALTH_KEYS:
        if full_key not in raw.fields:
            continue
        full, design = raw.number(full_key), raw.number(design_key)
        if full is not None and design is not None and full.value > 0 and design.value > 0:
            health = min(1.0, full.value / design.value)
            out.put("capacity_wh", full, float(round(model.capacity_wh * health)))
            return
    out.values["capacity_wh"] = model.capacity_wh
