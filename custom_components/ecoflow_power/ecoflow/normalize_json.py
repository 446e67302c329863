"""The JSON families (Delta 2, River 2, Delta Pro): their field layouts, normalized.

The Delta 2 and River 2 speak one layout, the Delta Pro another (other
prefixes, solar in 0.1 W); the reading of either is the same.
"""

from __future__ import annotations

from dataclasses import dataclass
import re

from . import grid
from .battery import set_packs, station_limits
from .normalize_shared import (
    charge_state_from_watts,
    discharge_evidence,
    energy_totals,
    firmware_text,
    remaining_minutes,
)
from .readings import Normalized, RawFields, Reading, rounded
from .state import ChargeState


@dataclass(frozen=True, slots=True)
class JsonLayout:
    screen_soc: tuple[str, ...]
    main_pack: tuple[str, ...]
    slave_group: re.Pattern[str]  # group(1) = pack number (empty for an unnumbered slave)
    connected: str | None  # list of per-pack connection states, main first
    discharge_limit: str
    dsg_remain: tuple[str, ...]
    chg_remain: tuple[str, ...]
    solar: tuple[tuple[str, float], ...]  # key, factor to W


DELTA2_LAYOUT = JsonLayout(
    screen_soc=("bms_emsStatus.f32LcdShowSoc", "bms_emsStatus.lcdShowSoc"),
    main_pack=("bms_bmsStatus.f32ShowSoc", "bms_bmsStatus.soc", "pd.soc"),
    slave_group=re.compile(r"^bms_slave(?:_bmsSlaveStatus_(\d+))?\.(f32ShowSoc|soc)$"),
    connected="bms_emsStatus.bmsIsConnt",
    discharge_limit="bms_emsStatus.minDsgSoc",
    dsg_remain=("bms_emsStatus.dsgRemainTime",),
    chg_remain=("bms_emsStatus.chgRemainTime",),
    solar=(("mppt.inWatts", 1.0), ("mppt.pv2InWatts", 1.0)),
)
DELTA_PRO_LAYOUT = JsonLayout(
    screen_soc=("ems.f32LcdShowSoc", "ems.lcdShowSoc"),
    main_pack=("bmsMaster.f32ShowSoc", "bmsMaster.soc", "pd.soc"),
    slave_group=re.compile(r"^bmsSlave(\d+)\.(f32ShowSoc|soc)$"),
    connected="ems.bmsIsConnt",
    discharge_limit="ems.minDsgSoc",
    dsg_remain=("ems.dsgRemainTime",),
    chg_remain=("ems.chgRemainTime",),
    # Delta Pro reports solar in 0.1 W (js02: 2340 with 233 W total input).
    solar=(("mppt.inWatts", 0.1),),
)
_JSON_ENERGY: dict[str, tuple[str, ...]] = {
    # Delta 2 spells these ...AC/...DC, the Delta Pro ...Ac/...Dc. Wh.
    "ac_in": ("pd.chgPowerAC", "pd.chgPowerAc"),
    "ac_out": ("pd.dsgPowerAC", "pd.dsgPowerAc"),
    "dc_in": ("pd.chgPowerDC", "pd.chgPowerDc"),
    "dc_out": ("pd.dsgPowerDC", "pd.dsgPowerDc"),
    "solar_in": ("pd.chgSunPower",),
}


def json_station(raw: RawFields, out: Normalized, layout: JsonLayout) -> None:
    screen = raw.freshest(*layout.screen_soc)
    out.put("soc", screen, None if screen is None else rounded(screen.value))
    for key in layout.screen_soc:
        if (reading := raw.number(key)) is not None:
            out.soc_readings.append(reading)

    connected = raw.fields.get(layout.connected) if layout.connected else None
    packs: dict[int, list[Reading]] = {}
    packs[0] = [r for key in layout.main_pack if (r := raw.number(key)) is not None]
    for key, match in raw.keyed(layout.slave_group.pattern, layout.slave_group.match):
        index = int(match.group(1) or 1)
        # bmsIsConnt[i] == 0: slot i has no pack; its last values may linger.
        if isinstance(connected, list | tuple) and index < len(connected) and connected[index] == 0:
            continue
        if (reading := raw.number(key)) is not None:
            packs.setdefault(index, []).append(reading)
    set_packs(out, raw, packs, screen)

    ac_in_w = raw.number("inv.inputWatts")
    out.put("ac_in_w", ac_in_w, None if ac_in_w is None else rounded(ac_in_w.value))
    ac_in_v = raw.scaled(raw.number("inv.acInVol"), 0.001)  # mV
    out.put("ac_in_v", ac_in_v, None if ac_in_v is None else rounded(ac_in_v.value, 1))
    watts_in = raw.number("pd.wattsInSum")
    watts_out = raw.number("pd.wattsOutSum")
    out.put("watts_in", watts_in, None if watts_in is None else rounded(watts_in.value))
    out.put("watts_out", watts_out, None if watts_out is None else rounded(watts_out.value))
    solar_parts = [
        Reading(r.value * factor, r.source, r.seen_at)
        for key, factor in layout.solar
        if (r := raw.number(key)) is not None
    ]
    if solar_parts:
        total = sum(r.value for r in solar_parts)
        newest = max(solar_parts, key=lambda r: r.seen_at)
        out.put("solar_w", newest, rounded(total))

    # Battery power as the energy balance: per-pack BMS watts read 0 while the
    # Delta 2 in js01 clearly discharges 344 W (pd.remainTime -132).
    if watts_in is not None and watts_out is not None:
        balance = Reading(
            watts_in.value - watts_out.value,
            "pd.wattsInSum-pd.wattsOutSum",
            max(watts_in.seen_at, watts_out.seen_at),
        )
        out.put("battery_w", balance, rounded(balance.value))
        out.put("charge_state", balance, charge_state_from_watts(balance.value))

    # pd.remainTime is signed: + minutes to full, - minutes to empty.
    remain = raw.number("pd.remainTime")
    dsg_candidates = [r for key in layout.dsg_remain if (r := raw.number(key)) is not None]
    chg_candidates = [r for key in layout.chg_remain if (r := raw.number(key)) is not None]
    if remain is not None and remain.value < 0:
        dsg_candidates.append(Reading(-remain.value, remain.source, remain.seen_at))
    if remain is not None and remain.value > 0:
        chg_candidates.insert(0, remain)
    valid_dsg = [
        (minutes, r) for r in dsg_candidates if (minutes := remaining_minutes(r.value)) is not None
    ]
    if valid_dsg:
        # Two estimates (132 and 139 in js01): plan with the shorter one.
        minutes, reading = min(valid_dsg, key=lambda item: item[0])
        out.put("remaining_discharge_min", reading, minutes)
    elif dsg_candidates:
        out.put("remaining_discharge_min", dsg_candidates[0], None)
    valid_chg = [
        (minutes, r) for r in chg_candidates if (minutes := remaining_minutes(r.value)) is not None
    ]
    charging = out.values.get("charge_state") is ChargeState.CHARGING
    if valid_chg and charging:
        minutes, reading = valid_chg[0]
        out.put("remaining_charge_min", reading, minutes)
    elif chg_candidates:
        # Not charging: "minutes to full" is meaningless (js03 says 319 while idle).
        out.put("remaining_charge_min", chg_candidates[0], None)

    energy_totals(out, raw, _JSON_ENERGY, 0.001)
    firmware = raw.number("pd.sysVer")
    if firmware is not None and (text := firmware_text(firmware.value)):
        out.put("firmware", firmware, text)

    if (volts := raw.number("inv.acInVol")) is not None:
        out.grid_signals.append(
            grid.voltage_signal(
                "ac_in_vol", volts.value / 1000.0, volts.seen_at, zero_is_reliable=True
            )
        )
    if (freq := raw.number("inv.acInFreq")) is not None:
        out.grid_signals.append(grid.frequency_signal("ac_in_freq", freq.value, freq.seen_at))
    if ac_in_w is not None:
        out.grid_signals.append(grid.ac_watts_signal("ac_in_w", ac_in_w.value, ac_in_w.seen_at))
    discharge_evidence(out)
    station_limits(out, raw, layout.discharge_limit, "pd.bpPowerSoc", "pd.watchIsConfig")


def json_generic(raw: RawFields, out: Normalized) -> None:
    # Unknown JSON device: try the Delta 2 names first, the Delta Pro names if absent.
    if raw.has_prefix(("ems.", "bmsMaster.")):
        json_station(raw, out, DELTA_PRO_LAYOUT)
    else:
        json_station(raw, out, DELTA2_LAYOUT)
