"""Encode a power station's state as the protobuf frames River 3-family devices send.

Uses the project's own schemas, so what the decoders read here is what they
will read from a real device. Layout follows the captures in
``/work/shared/captures`` (pb01 snapshot reply, pb02/pb04 obfuscated pushes).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from custom_components.ecoflow_power.ecoflow.proto import envelope_pb2, power_station_pb2

from .model import PowerStationState

# (cmd_func, cmd_id) of the messages a power station emits.
DISPLAY = (254, 21)
RUNTIME = (254, 22)
CMS_HEARTBEAT = (32, 2)
BMS_HEARTBEAT = (32, 50)
# Module addresses seen in captures: 2 = the main board (display/runtime),
# 3/7 = battery management, 32 = the app/cloud.
SRC_MAIN = 2
SRC_BMS = 7
DEST_APP = 32

FLOW_AC_IN = 2  # flow_info_ac_in while AC flows in
FLOW_NO_AC = 12  # one of the values seen without AC

Frame = tuple[tuple[int, int], int, bytes]  # ((cmd_func, cmd_id), src, pdata)


def display_fields(state: PowerStationState, *, glitch_soc: float | None = None) -> dict[str, Any]:
    """DisplayPropertyUpload fields with the meanings in the protocol notes."""
    to_empty, to_full = state.remaining_minutes()
    combined = state.combined_soc if glitch_soc is None else glitch_soc
    charge_state = state.charge_state
    return {
        "pow_in_sum_w": round(state.ac_in_w, 2),
        "pow_out_sum_w": round(state.ac_out_w, 2),
        "flow_info_ac_in": FLOW_AC_IN if state.grid else FLOW_NO_AC,
        "pow_get_ac_in": round(state.ac_in_w, 2),
        # Unreliable on real devices (0 with AC flowing in): never a grid signal.
        "plug_in_info_ac_in_flag": 0,
        "pow_get_bms": round(state.battery_w, 2),
        "plug_in_info_ac_charger_flag": 1 if state.grid else 0,
        "plug_in_info_ac_in_chg_pow_max": 305,
        "bms_batt_soc": round(state.main_soc, 2),
        "bms_dsg_rem_time": to_empty,
        "bms_chg_rem_time": to_full,
        "cms_batt_soc": round(combined, 2),
        "cms_dsg_rem_time": to_empty,
        "cms_chg_rem_time": to_full,
        "bms_chg_dsg_state": charge_state,
        "cms_chg_dsg_state": charge_state,
        "pow_get_pv": 0.0,
        # Output power carries a negative sign on these devices.
        "pow_get_ac_out": -round(state.ac_out_w, 2),
    }


def runtime_fields(state: PowerStationState) -> dict[str, Any]:
    main = state.packs[0]
    volts = state.pack_voltage_mv(main) / 1000.0
    return {
        "plug_in_info_ac_in_vol": round(state.ac_in_voltage, 1),
        "plug_in_info_ac_in_amp": round(state.ac_in_amps, 3),
        "bms_batt_vol": round(volts, 3),
        "bms_batt_amp": round(state.pack_watts(main) / volts, 3),
    }


def cms_heartbeat(state: PowerStationState) -> power_station_pb2.CmsHeartbeatReport:
    to_empty, to_full = state.remaining_minutes()
    report = power_station_pb2.CmsHeartbeatReport()
    v1p0 = report.v1p0
    v1p0.chg_state = state.charge_state
    v1p0.lcd_show_soc = round(state.combined_soc)
    v1p0.chg_remain_time = to_full
    v1p0.dsg_remain_time = to_empty
    v1p0.f32_lcd_show_soc = round(state.combined_soc, 2)
    v1p0.bms_is_connt.extend([3] * len(state.packs) + [0] * max(0, 3 - len(state.packs)))
    v1p0.min_dsg_soc = round(state.min_dsg_soc)
    # Unreliable on real devices as well: 0 even with AC present.
    report.v1p3.chg_line_plug_in_flag = 0
    report.v1p3.sys_chg_dsg_state = state.charge_state
    return report


def bms_heartbeats(state: PowerStationState) -> list[power_station_pb2.BmsHeartbeatReport]:
    reports = []
    for index, pack in enumerate(state.packs):
        watts = state.pack_watts(pack)
        volts_mv = state.pack_voltage_mv(pack)
        to_empty, to_full = state.remaining_minutes()
        reports.append(
            power_station_pb2.BmsHeartbeatReport(
                num=index,
                soc=round(pack.soc),
                vol=volts_mv,
                amp=round(watts / (volts_mv / 1000.0) * 1000),
                f32_show_soc=round(pack.soc, 2),
                input_watts=round(max(0.0, watts)),
                output_watts=round(max(0.0, -watts)),
                remain_time=to_empty if watts < 0 else to_full,
                bms_sn=pack.serial,
            )
        )
    return reports


def display_message(fields: Mapping[str, Any]) -> bytes:
    return power_station_pb2.DisplayPropertyUpload(**fields).SerializeToString()


def runtime_message(fields: Mapping[str, Any]) -> bytes:
    return power_station_pb2.RuntimePropertyUpload(**fields).SerializeToString()


def obfuscate(pdata: bytes, seq: int) -> bytes:
    """XOR every byte with the low byte of ``seq`` (enc_type 1); its own inverse."""
    key = seq & 0xFF
    return bytes(b ^ key for b in pdata)


def push_envelope(frame: Frame, *, seq: int) -> bytes:
    """One obfuscated push frame, as on ``/app/device/property/{sn}``."""
    (cmd_func, cmd_id), src, pdata = frame
    header = envelope_pb2.Header(
        pdata=obfuscate(pdata, seq),
        src=src,
        dest=DEST_APP,
        d_src=1,
        d_dest=1,
        enc_type=1,
        check_type=3,
        cmd_func=cmd_func,
        cmd_id=cmd_id,
        data_len=len(pdata),
        seq=seq,
        version=3,
        payload_ver=1,
    )
    return envelope_pb2.HeaderMessage(header=[header]).SerializeToString()


def reply_envelope(frames: Iterable[Frame], *, seq: int) -> bytes:
    """A snapshot reply: several plain headers sharing one seq (like pb01)."""
    headers = [
        envelope_pb2.Header(pdata=pdata, src=src, cmd_func=func, cmd_id=cid, seq=seq)
        for (func, cid), src, pdata in frames
    ]
    return envelope_pb2.HeaderMessage(header=headers).SerializeToString()


def snapshot_frames(state: PowerStationState) -> list[Frame]:
    """The full set a snapshot reply carries: CMS, display, BMS per pack, runtime."""
    frames: list[Frame] = [
        (CMS_HEARTBEAT, SRC_BMS, cms_heartbeat(state).SerializeToString()),
        (DISPLAY, SRC_MAIN, display_message(display_fields(state))),
    ]
    frames += [(BMS_HEARTBEAT, SRC_BMS, r.SerializeToString()) for r in bms_heartbeats(state)]
    frames.append((RUNTIME, SRC_MAIN, runtime_message(runtime_fields(state))))
    return frames


def is_snapshot_request(payload: bytes) -> bool:
    """A protobuf get: a HeaderMessage whose headers carry no data (maodijim style)."""
    if not payload or payload[:1] == b"{":
        return False
    message = envelope_pb2.HeaderMessage()
    try:
        message.ParseFromString(payload)
    except Exception:
        return False
    return len(message.header) > 0 and all(not h.pdata for h in message.header)
