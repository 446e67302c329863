"""Merged raw fields of one device -> model-independent values.

Each family names the same quantity differently (and in different units);
this module and normalize_json.py are the one place that knows the mapping
(normalize_shared.py holds what all families share). It picks, for every
quantity, the freshest source, and reports where each value came from so the
tracker can filter glitches and the grid logic can explain itself.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
import math
import re
from typing import Any

from . import grid
from .battery import capacity, set_packs, station_limits
from .models import DeviceFamily, Encoding, ModelInfo
from .normalize_json import DELTA2_LAYOUT, DELTA_PRO_LAYOUT, json_generic, json_station
from .normalize_shared import (
    charge_state_from_code,
    charge_state_from_watts,
    discharge_evidence,
    energy_totals,
    firmware_text,
    remaining_minutes,
)
from .readings import Normalized, RawFields, Reading, rounded
from .state import ChargeState

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
    state = charge_state_from_code(code.value) if code else None
    if state is not None:
        out.put("charge_state", code, state)
    elif battery is not None:
        out.put("charge_state", battery, charge_state_from_watts(battery.value))

    dsg = raw.freshest("display.cms_dsg_rem_time", "cms.dsg_remain_time")
    chg = raw.freshest("display.cms_chg_rem_time", "cms.chg_remain_time")
    out.put("remaining_discharge_min", dsg, remaining_minutes(dsg.value) if dsg else None)
    # "Minutes to full" while idle is meaningless (River 3 idles with 986/986).
    charging = out.values.get("charge_state") is ChargeState.CHARGING
    out.put("remaining_charge_min", chg, remaining_minutes(chg.value) if chg and charging else None)

    packs_energy: dict[str, tuple[str, ...]] = {"battery_in": (), "battery_out": ()}
    for key, name in raw.keyed("bms_energy", _pack_energy_name):
        packs_energy[name] += (key,)
    energy_totals(out, raw, packs_energy, 0.001)  # Wh

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
    discharge_evidence(out)
    station_limits(
        out, raw, "cms.min_dsg_soc", "display.energy_backup_start_soc", "display.energy_backup_en"
    )


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
        out.put("charge_state", battery, charge_state_from_watts(battery.value))

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
    DeviceFamily.DELTA2: lambda raw, out: json_station(raw, out, DELTA2_LAYOUT),
    DeviceFamily.RIVER2: lambda raw, out: json_station(raw, out, DELTA2_LAYOUT),
    DeviceFamily.DELTA_PRO: lambda raw, out: json_station(raw, out, DELTA_PRO_LAYOUT),
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
            normalizer = json_generic
    normalizer(raw, out)
    capacity(out, raw, model)
    return out
