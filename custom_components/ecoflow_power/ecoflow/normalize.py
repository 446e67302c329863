"""Merged raw fields of one device -> model-independent values.

Each family names the same quantity differently (and in different units);
this module is the one place that knows the mapping. It picks, for every
quantity, the freshest source, and reports where each value came from so the
tracker can filter glitches and the grid logic can explain itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
import math
import re
from typing import Any

from . import grid
from .battery import capacity, set_packs, station_limits
from .models import DeviceFamily, Encoding, ModelInfo
from .readings import Normalized, RawFields, Reading, rounded
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


def _charge_state_from_code(code: Any) -> ChargeState | None:
    # chg_dsg_state: 0 idle, 1 discharging, 2 charging.
    return {0: ChargeState.IDLE, 1: ChargeState.DISCHARGING, 2: ChargeState.CHARGING}.get(code)


def _charge_state_from_watts(battery_w: float | None) -> ChargeState | None:
    if battery_w is None:
        return None
    if battery_w >= IDLE_WATTS:
        return ChargeState.CHARGING
    if battery_w <= -IDLE_WATTS:
        return ChargeState.DISCHARGING
    return ChargeState.IDLE


def _energy(
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


# --- protobuf power stations (River 3, Delta 3, Delta Pro 3) -----------------

_BMS_PACK_KEY = re.compile(r"^bms\.(\d+)\.(f32_show_soc|soc)$")


def _pack_energy_name(key: str) -> str | None:
    if key.startswith("bms.") and key.endswith(".accu_chg_energy"):
        return "battery_in"
    if key.startswith("bms.") and key.endswith(".accu_dsg_energy"):
        return "battery_out"
    return None


def _protobuf_station(raw: RawFields, out: Normalized) -> None:
    screen = raw.freshest("display.cms_batt_soc", "cms.f32_lcd_show_soc", "cms.lcd_show_soc")
    out.put("soc", screen, None if screen is None else rounded(screen.value))
    for key in ("display.cms_batt_soc", "cms.f32_lcd_show_soc", "cms.lcd_show_soc"):
        if (reading := raw.number(key)) is not None:
            out.soc_readings.append(reading)

    packs: dict[int, list[Reading]] = {}
    for key, match in raw.keyed("bms_pack", _BMS_PACK_KEY.match):
        if (reading := raw.number(key)) is not None:
            packs.setdefault(int(match.group(1)), []).append(reading)
    if (main := raw.number("display.bms_batt_soc")) is not None:
        packs.setdefault(0, []).append(main)
    set_packs(out, raw, packs, screen, raw.fields.get("cms.bms_is_connt"))

    ac_in_w = raw.number("display.pow_get_ac_in")
    ac_in_v = raw.number("runtime.plug_in_info_ac_in_vol")
    battery = raw.number("display.pow_get_bms")
    out.put("ac_in_w", ac_in_w, None if ac_in_w is None else rounded(ac_in_w.value))
    out.put("ac_in_v", ac_in_v, None if ac_in_v is None else rounded(ac_in_v.value, 1))
    for name, key in (
        ("watts_in", "display.pow_in_sum_w"),
        ("watts_out", "display.pow_out_sum_w"),
        ("solar_w", "display.pow_get_pv"),
    ):
        reading = raw.number(key)
        out.put(name, reading, None if reading is None else rounded(reading.value))
    out.put("battery_w", battery, None if battery is None else rounded(battery.value))

    code = raw.freshest("display.cms_chg_dsg_state", "cms.sys_chg_dsg_state")
    state = _charge_state_from_code(code.value) if code else None
    if state is not None:
        out.put("charge_state", code, state)
    elif battery is not None:
        out.put("charge_state", battery, _charge_state_from_watts(battery.value))

    dsg = raw.freshest("display.cms_dsg_rem_time", "cms.dsg_remain_time")
    chg = raw.freshest("display.cms_chg_rem_time", "cms.chg_remain_time")
    out.put("remaining_discharge_min", dsg, remaining_minutes(dsg.value) if dsg else None)
    # "Minutes to full" while idle is meaningless (River 3 idles with 986/986).
    charging = out.values.get("charge_state") is ChargeState.CHARGING
    out.put("remaining_charge_min", chg, remaining_minutes(chg.value) if chg and charging else None)

    packs_energy: dict[str, tuple[str, ...]] = {"battery_in": (), "battery_out": ()}
    for key, name in raw.keyed("bms_energy", _pack_energy_name):
        packs_energy[name] += (key,)
    _energy(out, raw, packs_energy, 0.001)  # Wh

    firmware = raw.number("runtime.pd_firm_ver")
    if firmware is not None and (text := firmware_text(firmware.value)):
        out.put("firmware", firmware, text)

    # Grid evidence, strongest first.
    signals = out.grid_signals
    if ac_in_v is not None:
        signals.append(
            grid.voltage_signal("ac_in_vol", ac_in_v.value, ac_in_v.seen_at, zero_is_reliable=False)
        )
    if (flow := raw.number("display.flow_info_ac_in")) is not None:
        signals.append(grid.flow_signal(int(flow.value), flow.seen_at))
    if ac_in_w is not None:
        signals.append(grid.ac_watts_signal("ac_in_w", ac_in_w.value, ac_in_w.seen_at))
    if (flag := raw.number("display.plug_in_info_ac_charger_flag")) is not None:
        signals.append(grid.charger_flag_signal(int(flag.value), flag.seen_at))
    _discharge_evidence(out)
    station_limits(
        out, raw, "cms.min_dsg_soc", "display.energy_backup_start_soc", "display.energy_backup_en"
    )


def _discharge_evidence(out: Normalized) -> None:
    battery_w = out.values.get("battery_w")
    state = out.values.get("charge_state")
    if battery_w is None and state is None:
        return
    discharging = state is ChargeState.DISCHARGING or (
        battery_w is not None and battery_w <= -grid.DISCHARGE_WATTS
    )
    seen = max(out.seen.get("battery_w", 0.0), out.seen.get("charge_state", 0.0))
    out.grid_signals.append(grid.discharge_signal(battery_w, discharging, seen))


# --- PowerStream (protobuf heartbeat "ps.*" and Open API "20_1.*") ----------


def _powerstream(raw: RawFields, out: Normalized) -> None:
    def pick(proto_key: str, json_key: str) -> Reading | None:
        return raw.freshest(f"ps.{proto_key}", f"20_1.{json_key}")

    soc = pick("bat_soc", "batSoc")
    out.put("soc", soc, None if soc is None else rounded(soc.value))
    if soc is not None:
        out.soc_readings.append(soc)
    set_packs(out, raw, {0: [soc]} if soc is not None else {}, soc)

    # Watts arrive in 0.1 W.
    pv1 = raw.scaled(pick("pv1_input_watts", "pv1InputWatts"), 0.1)
    pv2 = raw.scaled(pick("pv2_input_watts", "pv2InputWatts"), 0.1)
    if pv1 is not None or pv2 is not None:
        parts = [r for r in (pv1, pv2) if r is not None]
        solar = Reading(sum(r.value for r in parts), parts[0].source, max(r.seen_at for r in parts))
        out.put("solar_w", solar, rounded(solar.value))
        out.put("watts_in", solar, rounded(solar.value))
    # bat_input_watts is power taken from the battery: negative while charging.
    battery = raw.scaled(pick("bat_input_watts", "batInputWatts"), -0.1)
    out.put("battery_w", battery, None if battery is None else rounded(battery.value) + 0.0)
    output = raw.scaled(pick("inv_output_watts", "invOutputWatts"), 0.1)
    out.put("watts_out", output, None if output is None else rounded(output.value))

    dsg = pick("dsg_remain_time", "dsgRemainTime")
    chg = pick("chg_remain_time", "chgRemainTime")
    out.put("remaining_discharge_min", dsg, remaining_minutes(dsg.value) if dsg else None)
    out.put("remaining_charge_min", chg, remaining_minutes(chg.value) if chg else None)
    if battery is not None:
        out.put("charge_state", battery, _charge_state_from_watts(battery.value))

    volts = raw.scaled(pick("inv_op_volt", "invOpVolt"), 0.1)
    if volts is not None:
        out.put("ac_in_v", volts, rounded(volts.value, 1))
        # The inverter synchronises to the grid; this is the grid voltage.
        # Zero is only a moderate hint: the heartbeat's behaviour during an
        # outage has not been captured.
        signal = grid.voltage_signal("grid_vol", volts.value, volts.seen_at, zero_is_reliable=True)
        if signal.direction < 0:
            signal = grid.GridSignal(
                signal.name, -1, grid.Weight.MODERATE, signal.text, signal.seen_at
            )
        out.grid_signals.append(signal)
    if (freq := raw.scaled(pick("inv_freq", "invFreq"), 0.1)) is not None:
        out.grid_signals.append(grid.frequency_signal("grid_freq", freq.value, freq.seen_at))


# --- JSON families ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _JsonLayout:
    screen_soc: tuple[str, ...]
    main_pack: tuple[str, ...]
    slave_group: re.Pattern[str]  # group(1) = pack number (empty for an unnumbered slave)
    connected: str | None  # list of per-pack connection states, main first
    discharge_limit: str
    dsg_remain: tuple[str, ...]
    chg_remain: tuple[str, ...]
    solar: tuple[tuple[str, float], ...]  # key, factor to W


_DELTA2_LAYOUT = _JsonLayout(
    screen_soc=("bms_emsStatus.f32LcdShowSoc", "bms_emsStatus.lcdShowSoc"),
    main_pack=("bms_bmsStatus.f32ShowSoc", "bms_bmsStatus.soc", "pd.soc"),
    slave_group=re.compile(r"^bms_slave(?:_bmsSlaveStatus_(\d+))?\.(f32ShowSoc|soc)$"),
    connected="bms_emsStatus.bmsIsConnt",
    discharge_limit="bms_emsStatus.minDsgSoc",
    dsg_remain=("bms_emsStatus.dsgRemainTime",),
    chg_remain=("bms_emsStatus.chgRemainTime",),
    solar=(("mppt.inWatts", 1.0), ("mppt.pv2InWatts", 1.0)),
)
_DELTA_PRO_LAYOUT = _JsonLayout(
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


def _json_station(raw: RawFields, out: Normalized, layout: _JsonLayout) -> None:
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
        out.put("charge_state", balance, _charge_state_from_watts(balance.value))

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

    _energy(out, raw, _JSON_ENERGY, 0.001)
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
    _discharge_evidence(out)
    station_limits(out, raw, layout.discharge_limit, "pd.bpPowerSoc", "pd.watchIsConfig")


def _json_generic(raw: RawFields, out: Normalized) -> None:
    # Unknown JSON device: try the Delta 2 names first, the Delta Pro names if absent.
    if raw.has_prefix(("ems.", "bmsMaster.")):
        _json_station(raw, out, _DELTA_PRO_LAYOUT)
    else:
        _json_station(raw, out, _DELTA2_LAYOUT)


def _protobuf_generic(raw: RawFields, out: Normalized) -> None:
    if raw.has_prefix(("ps.", "20_1.")):
        _powerstream(raw, out)
    else:
        _protobuf_station(raw, out)


_PROTOBUF_PREFIXES = ("display.", "cms.", "bms.", "runtime.", "ps.")

_Normalizer = Callable[[RawFields, Normalized], None]

_BY_FAMILY: dict[DeviceFamily, _Normalizer] = {
    DeviceFamily.RIVER3: _protobuf_station,
    DeviceFamily.DELTA3: _protobuf_station,
    DeviceFamily.DELTA_PRO_3: _protobuf_station,
    DeviceFamily.POWERSTREAM: _powerstream,
    DeviceFamily.DELTA2: lambda raw, out: _json_station(raw, out, _DELTA2_LAYOUT),
    DeviceFamily.RIVER2: lambda raw, out: _json_station(raw, out, _DELTA2_LAYOUT),
    DeviceFamily.DELTA_PRO: lambda raw, out: _json_station(raw, out, _DELTA_PRO_LAYOUT),
}


def normalize(
    fields: Mapping[str, Any],
    seen: Mapping[str, float],
    model: ModelInfo,
    *,
    index: dict[str, list[tuple[str, Any]]] | None = None,
    now: float | None = None,
    soc_max_age: float = math.inf,
    pack_silent_after: float = math.inf,
) -> Normalized:
    """Normalized values from merged raw fields (`seen`: when each field last arrived).

    `index`: a dict the caller keeps while the set of field names is unchanged
    (see `RawFields.keyed`); it is filled on first use. soc_min ignores readings
    older than `soc_max_age` at `now`, and packs that have not reported for
    `pack_silent_after` while another pack did (no bound by default).
    """
    out = Normalized()
    raw = RawFields(
        fields,
        seen,
        index,
        now=math.inf if now is None else now,
        soc_max_age=soc_max_age,
        pack_silent_after=pack_silent_after,
    )
    normalizer = _BY_FAMILY.get(model.family)
    if normalizer is None:
        # Unknown family: the field names tell which layout the device speaks.
        protobuf_keys = raw.has_prefix(_PROTOBUF_PREFIXES)
        if protobuf_keys or (model.encoding is Encoding.PROTOBUF and not fields):
            normalizer = _protobuf_generic
        elif raw.has_prefix(("20_1.",)):
            normalizer = _powerstream
        else:
            normalizer = _json_generic
    normalizer(raw, out)
    capacity(out, raw, model)
    return out
