"""Every capture decodes, and the values its source states come out of our decoder.

The captures (tests/fixtures/captures, each with a .source.json naming its
origin) are the only ground truth the project has: nobody here can reach the
EcoFlow cloud.
"""

from __future__ import annotations

import base64
import json
from pathlib import Path
from typing import Any

import pytest

from custom_components.ecoflow_power.ecoflow.envelope import parse_envelope
from custom_components.ecoflow_power.ecoflow.models import DeviceFamily, identify_model
from custom_components.ecoflow_power.ecoflow.proto.envelope_pb2 import HeaderMessage
from custom_components.ecoflow_power.ecoflow.protobuf_decoder import decode_frame
from custom_components.ecoflow_power.ecoflow.state import (
    ChargeState,
    GridStatus,
    MessageSource,
    PowerState,
)
from custom_components.ecoflow_power.ecoflow.tracker import DeviceTracker

CAPTURES = Path(__file__).parent.parent / "fixtures" / "captures"
NOW = 1_700_000_000.0


def stated(name: str) -> Any:
    return json.loads((CAPTURES / f"{name}.source.json").read_text())["values_stated_by_source"]


def track(filename: str, sn: str, product: str | None = None) -> DeviceTracker:
    tracker = DeviceTracker(sn, identify_model(sn, product))
    path = CAPTURES / filename
    if path.suffix == ".jsonl":
        for line in path.read_text().splitlines():
            assert tracker.ingest(line, MessageSource.PROPERTY, NOW) in (True, False)
    elif path.suffix == ".json":
        tracker.ingest(json.loads(path.read_text()), MessageSource.GET_REPLY, NOW)
    else:
        tracker.ingest(path.read_bytes(), MessageSource.GET_REPLY, NOW)
    stats = tracker.stats
    assert stats.malformed == 0, stats.last_error
    assert stats.decoded >= 1
    return tracker


def state_of(tracker: DeviceTracker) -> PowerState:
    return tracker.snapshot(NOW, stale_after_sec=120.0)


def test_every_capture_has_attribution() -> None:
    payloads = [p for p in CAPTURES.iterdir() if not p.name.endswith(".source.json")]
    assert len(payloads) >= 17
    for payload in payloads:
        stem = payload.name.split(".")[0]
        assert (CAPTURES / f"{stem}.source.json").exists(), payload.name


# --- protobuf captures ---------------------------------------------------------


def test_pb01_river3_binary_and_hex_are_the_same_payload() -> None:
    raw = (CAPTURES / "pb01_river3_getreply_maodijim.bin").read_bytes()
    text = (CAPTURES / "pb01_river3_getreply_maodijim.hex").read_text()
    assert [f.type_key for f in parse_envelope(raw)] == ["32/2", "254/21", "32/50", "254/22"]
    assert parse_envelope(raw) == parse_envelope(text)


def test_pb01_river3_values_stated_by_source() -> None:
    values = stated("pb01_river3_getreply_maodijim")
    raw = track("pb01_river3_getreply_maodijim.bin", "R651PC0CXGCA0798").raw_fields()
    assert raw["display.pow_in_sum_w"] == values["DisplayPropertyUpload.powInSumW"]
    assert raw["display.pow_out_sum_w"] == values["DisplayPropertyUpload.powOutSumW"]
    assert raw["display.pow_get_ac_in"] == pytest.approx(
        values["DisplayPropertyUpload.powGetAcIn"], abs=1e-6
    )
    assert raw["display.pow_get_ac"] == values["DisplayPropertyUpload.powGetAc"]
    assert raw["display.flow_info_ac_in"] == values["DisplayPropertyUpload.flowInfoAcIn"]
    assert (
        raw["display.plug_in_info_ac_in_flag"] == values["DisplayPropertyUpload.plugInInfoAcInFlag"]
    )
    assert (
        raw["display.plug_in_info_ac_in_feq"] == values["DisplayPropertyUpload.plugInInfoAcInFeq"]
    )
    assert (
        raw["display.energy_backup_start_soc"]
        == values["DisplayPropertyUpload.energyBackupStartSoc"]
    )
    assert raw["display.screen_off_time"] == values["DisplayPropertyUpload.screenOffTime"]
    assert raw["display.ac_standby_time"] == values["DisplayPropertyUpload.acStandbyTime"]
    assert bool(raw["display.xboost_en"]) is values["DisplayPropertyUpload.xboostEn"]
    assert raw["display.ac_always_on_mini_soc"] == values["DisplayPropertyUpload.acAlwaysOnMiniSoc"]


def test_pb01_river3_normalized_and_grid_connected() -> None:
    tracker = track("pb01_river3_getreply_maodijim.bin", "R651PC0CXGCA0798")
    state = state_of(tracker)
    assert tracker.payload_sn == "R651PC0CXGCA0798"  # BMS serial inside the payload
    assert state.model == "River 3"
    assert state.soc == 19.0
    assert state.soc_min == 19.0
    assert state.soc_modules == (19.0,)
    assert state.ac_in_w == pytest.approx(50.71)
    assert state.watts_in == 50.0
    assert state.watts_out == 50.0
    assert state.battery_w == -2.0
    assert state.remaining_discharge_min == 986
    # Idle battery: "minutes to full" would be meaningless.
    assert state.remaining_charge_min is None
    assert state.firmware == "2.0.1.11"
    # Why connected: 50.7 W flow in over AC and the device itself says AC flows in
    # (flow_info_ac_in 2, charger flag 1). The River 3 reports AC-in voltage 0.0 V
    # at the same time (its field 67 holds the 123.5 V AC *output*), which is why
    # a zero voltage is only a weak hint on protobuf models.
    assert state.grid is GridStatus.CONNECTED
    assert "flow_info_ac_in 2 (AC in)" in state.grid_evidence
    assert "ac_in_w 50.7 W" in state.grid_evidence
    assert "ac_in_vol 0.0 V" in state.grid_evidence


def _pb02_envelope() -> bytes:
    """Rebuild the push around the logged plaintext, obfuscated as the device sends it."""
    plain = bytes.fromhex(
        (CAPTURES / "pb02_river3plus_cmsheartbeat_iob326.pdata_decrypted.hex").read_text().strip()
    )
    seq = 4510273  # from the logged header: XOR key seq & 0xFF = 0x41
    message = HeaderMessage()
    header = message.header.add()
    header.pdata = bytes(byte ^ (seq & 0xFF) for byte in plain)
    header.src, header.dest, header.d_src, header.d_dest = 3, 32, 1, 1
    header.enc_type, header.check_type = 1, 3
    header.cmd_func, header.cmd_id = 32, 2
    header.data_len, header.seq = 79, seq
    header.product_id, header.version, header.payload_ver = 17410, 3, 1
    return message.SerializeToString()


def test_pb02_river3plus_cms_heartbeat_values_stated_by_source() -> None:
    values = stated("pb02_river3plus_cmsheartbeat_iob326")
    v1p0 = values["CMSHeartBeatReport"]["v1p0"]
    frames = parse_envelope(_pb02_envelope())
    decoded = decode_frame(frames[0], DeviceFamily.RIVER3)
    assert decoded is not None
    fields = decoded.fields
    assert fields["cms.lcd_show_soc"] == v1p0["lcdShowSoc"]
    assert fields["cms.f32_lcd_show_soc"] == v1p0["f32LcdShowSoc"]
    assert fields["cms.chg_remain_time"] == v1p0["chgRemainTime"]
    assert fields["cms.dsg_remain_time"] == v1p0["dsgRemainTime"]
    assert list(fields["cms.bms_is_connt"]) == v1p0["bmsIsConnt"]
    assert fields.get("cms.chg_state", 0) == v1p0["chgState"]
    assert fields.get("cms.min_dsg_soc", 0) == v1p0["minDsgSoc"]
    v1p3 = values["CMSHeartBeatReport"]["v1p3"]
    assert fields.get("cms.chg_line_plug_in_flag", 0) == v1p3["chgLinePlugInFlag"]
    assert fields.get("cms.sys_chg_dsg_state", 0) == v1p3["sysChgDsgState"]


def test_pb02_river3plus_normalized_and_grid_unknown() -> None:
    tracker = DeviceTracker("R631ZXXXX", identify_model("R631ZXXXX", None))
    assert tracker.ingest(_pb02_envelope(), MessageSource.PROPERTY, NOW)
    state = state_of(tracker)
    summary = stated("pb02_river3plus_cmsheartbeat_iob326")["summary"]
    assert state.model == "River 3 Plus"
    assert state.soc == summary["soc_percent"]
    assert state.remaining_discharge_min == summary["remaining_discharge_min"]
    assert state.remaining_charge_min is None  # 5939 sentinel
    # No pack figure in a CMS heartbeat alone: soc_min falls back to the screen.
    assert state.soc_min == 100.0
    # Why unknown: a CMS heartbeat carries no AC signal we trust
    # (chg_line_plug_in_flag is 0 even with AC flowing in on other captures).
    # The old "tag 27 grid detection" read battery output watts; we do not.
    assert state.grid is GridStatus.UNKNOWN


def test_pb03_delta3plus_decodes_and_grid_lost() -> None:
    tracker = track("pb03_delta3plus_getreply_iobroker.hex", "P351XXXX")
    state = state_of(tracker)
    assert state.model == "Delta 3 Plus"
    assert state.soc == pytest.approx(98.78, abs=0.01)  # cms_batt_soc, the screen
    # Two figures for the main pack at the same moment: the lower one counts.
    assert state.soc_min == pytest.approx(98.61, abs=0.01)
    assert state.soc_min_source == "bms.0.f32_show_soc"
    assert state.battery_w == -57.0
    assert state.charge_state is ChargeState.DISCHARGING
    assert state.remaining_discharge_min == 1018
    assert state.energy_kwh == {"battery_in": 13.71, "battery_out": 11.872}
    # Why lost: every AC-side signal says "no AC" (flow_info_ac_in 12, charger
    # flag 0, AC-in 7.2 V, 0 W AC in) and the battery carries the 37 W load.
    assert state.grid is GridStatus.LOST
    assert "flow_info_ac_in 12 (no AC in)" in state.grid_evidence
    assert "battery -57.0 W (discharging)" in state.grid_evidence


def test_pb04_delta3_encrypted_push_values_stated_by_source() -> None:
    values = stated("pb04_delta3_p231_display_encrypted_shuette42")
    tracker = track("pb04_delta3_p231_display_encrypted_shuette42.hex", "P231XXXX")
    raw = tracker.raw_fields()
    assert (
        raw["display.plug_in_info_ac_in_chg_pow_max"]
        == 1600
        == values["plug_in_info_ac_in_chg_pow_max(f209) / ac_charge_power_limit_w"]
    )
    assert ("display.cms_batt_soc" in raw) is values["cms_batt_soc present"]
    state = state_of(tracker)
    assert state.soc == 100.0
    assert state.remaining_discharge_min == 3999
    # Why unknown: flow_info_ac_in 15 alone (seen without AC) and a battery that
    # idles at -5 W are not enough to call an outage; no voltage in this push.
    assert state.grid is GridStatus.UNKNOWN


def test_pb05_deltapro3_base64_and_grid_connected() -> None:
    text = (CAPTURES / "pb05_deltapro3_getreply_tolwi270_via_nextaltair.b64").read_text()
    assert [f.type_key for f in parse_envelope(text)] == ["254/22", "254/21", "32/2", "32/50"]
    assert parse_envelope(text) == parse_envelope(base64.b64decode(text))
    tracker = track("pb05_deltapro3_getreply_tolwi270_via_nextaltair.b64", "")
    assert tracker.payload_sn == "MR51PA08PG5W1029"
    state = state_of(tracker)
    assert state.ac_in_v == pytest.approx(120.7, abs=0.05)  # the US unit the source names
    # Why connected: 120.7 V at the AC input, 103 W flowing in, flow_info_ac_in 2.
    assert state.grid is GridStatus.CONNECTED
    assert "ac_in_vol 120.7 V" in state.grid_evidence


@pytest.mark.parametrize(
    ("filename", "soc", "battery_w", "solar_w", "volts"),
    [
        ("pb06_powerstream_heartbeat_pvcharging_iobroker.hex", 36.0, 149.3, 153.0, 237.3),
        ("pb07_powerstream_heartbeat_idle_iobroker.hex", 64.0, 0.0, 0.0, 236.2),
    ],
)
def test_powerstream_heartbeats_in_tenth_watts(
    filename: str, soc: float, battery_w: float, solar_w: float, volts: float
) -> None:
    tracker = track(filename, "HW51ZOH4SF4U1217")
    assert tracker.stats.unknown_types == {"20/134": 1}  # time-task config: skipped, counted
    state = state_of(tracker)
    assert state.soc == soc
    assert state.battery_w == battery_w  # bat_input_watts -1493 = charging 149.3 W
    assert state.solar_w == solar_w
    # Why connected: the inverter reports the grid voltage it synchronises to.
    assert state.grid is GridStatus.CONNECTED
    assert state.ac_in_v == volts


# --- JSON captures -------------------------------------------------------------

JSON_CAPTURES = {
    "js01_delta2_getreply_latestQuotas_iobroker": "R331ZXXX",
    "js02_deltapro_getreply_latestQuotas_iobroker": "DCEBZ8ZE307XXX",
    "js03_river2max_getreply_latestQuotas_iobroker": "R611ZXXX",
    "js04_river2pro_getreply_latestQuotas_iobroker": "R621ZEBXXX",
    "js05_delta2max_2slaves_getreply_latestQuotas_tolwi_diag": "R351ZXXX",
    "js05b_delta2max_2slaves_getreply_latestQuotas_iobroker": "R351ZXXX",
    "js06_delta2max_openapi_quota_all_tess1o": "R351ZCB5HG8XXXXXX",
    "js08_powerstream_openapi_quota_all_shuette42_masked": "HW51XXXX",
}


@pytest.mark.parametrize("name", sorted(JSON_CAPTURES))
def test_json_capture_values_stated_by_source(name: str) -> None:
    raw = track(f"{name}.json", JSON_CAPTURES[name]).raw_fields()
    for key, value in stated(name).items():
        if value == "ABSENT":
            assert key not in raw, key
        else:
            assert raw[key] == value, key


def test_js01_delta2_ac_voltage_without_input_is_connected() -> None:
    state = state_of(track("js01_delta2_getreply_latestQuotas_iobroker.json", "R331ZXXX"))
    assert state.soc == 86.8  # f32LcdShowSoc, the screen
    assert state.soc_min == 86.8
    assert state.ac_in_v == pytest.approx(230.2, abs=0.05)
    assert state.battery_w == -344.0
    # pd.remainTime -132 and dsgRemainTime 139: plan with the shorter estimate.
    assert state.remaining_discharge_min == 132
    assert state.remaining_charge_min is None  # 5939 sentinel, not charging
    assert state.online is True
    # 230 V on the AC input with 0 W drawn: maxChargeSoc 50 < soc 87, so it
    # does not charge, yet the grid is there. Discharging alone is no outage.
    assert state.grid is GridStatus.CONNECTED


def test_js02_deltapro_packs_and_solar_only_reads_lost() -> None:
    state = state_of(track("js02_deltapro_getreply_latestQuotas_iobroker.json", "DCEBZ8ZE307XXX"))
    assert state.soc == pytest.approx(84.57, abs=0.01)  # ems.f32LcdShowSoc, not pd.soc 90
    assert state.soc_modules == (89.52, 80.66)
    assert state.soc_min == 80.66
    assert state.soc_min_source == "bmsSlave1.f32ShowSoc"
    assert state.solar_w == 234.0  # mppt.inWatts 2340 in 0.1 W
    # 140157 and 143999 minutes are not estimates.
    assert state.remaining_charge_min is None
    assert state.remaining_discharge_min is None
    assert state.energy_kwh["solar_in"] == 774.453
    # Lost, deliberately: acInVol 0 V at 0 Hz is reliable on JSON models (js03
    # reads the same unplugged, js01 reads the line even when not charging).
    # Solar charging the battery does not bring the grid back: the UPS has no AC
    # behind it, and the policy decides with soc_min whether that matters.
    assert state.grid is GridStatus.LOST
    assert "ac_in_vol 0.0 V" in state.grid_evidence


def test_js03_river2max_idle_remaining_times_are_none() -> None:
    state = state_of(track("js03_river2max_getreply_latestQuotas_iobroker.json", "R611ZXXX"))
    assert state.remaining_discharge_min is None  # 5999 sentinel
    # pd.remainTime 319 is positive but the unit is idle: not a time to full.
    assert state.remaining_charge_min is None


def test_js04_river2pro_ac_charging() -> None:
    state = state_of(track("js04_river2pro_getreply_latestQuotas_iobroker.json", "R621ZEBXXX"))
    assert state.charge_state is ChargeState.CHARGING
    assert state.remaining_charge_min == 17  # pd.remainTime positive = to full
    assert state.ac_in_w == 850.0
    assert state.grid is GridStatus.CONNECTED


@pytest.mark.parametrize(
    ("name", "modules", "soc_min", "soc"),
    [
        ("js05_delta2max_2slaves_getreply_latestQuotas_tolwi_diag", (83.5, 81.8, 67.0), 67.0, 82.6),
        ("js05b_delta2max_2slaves_getreply_latestQuotas_iobroker", (69.8, 74.5, 67.0), 67.0, 72.1),
    ],
)
def test_js05_two_extra_batteries_soc_min_is_weakest_pack(
    name: str, modules: tuple[float, ...], soc_min: float, soc: float
) -> None:
    state = state_of(track(f"{name}.json", "R351ZXXX"))
    assert state.soc_modules == modules
    assert state.soc_min == soc_min
    assert state.soc_min_source == "bms_slave_bmsSlaveStatus_2.f32ShowSoc"
    assert state.soc == soc
    assert state.grid is GridStatus.CONNECTED


def test_js06_quota_all_sentinels_and_pass_through() -> None:
    state = state_of(track("js06_delta2max_openapi_quota_all_tess1o.json", "R351ZCB5HG8XXXXXX"))
    assert state.model == "Delta 2 Max"
    assert state.remaining_discharge_min is None
    assert state.remaining_charge_min is None
    assert state.battery_w == 0.0
    assert state.charge_state is ChargeState.IDLE
    assert state.grid is GridStatus.CONNECTED


def test_js07_incremental_pushes_merge() -> None:
    values = stated("js07_delta2_mqtt_property_pushes_v1ckxy_issue6")
    tracker = track("js07_delta2_mqtt_property_pushes_v1ckxy_issue6.jsonl", "R331ZXXX")
    raw = tracker.raw_fields()
    assert raw["bms_bmsStatus.f32ShowSoc"] == values["bms_bmsStatus.f32ShowSoc"]
    assert raw["bms_bmsStatus.vol"] == 53491  # "53494 then 53491": the later push wins
    assert raw["inv.acInVol"] == 123084  # "123113 then 123084"
    assert raw["inv.acInAmp"] == values["inv.acInAmp"]
    assert raw["pd.carTemp"] == 36  # from the first push, kept through the others
    state = state_of(tracker)
    assert state.ac_in_v == pytest.approx(123.1, abs=0.05)
    assert state.grid is GridStatus.CONNECTED


def test_js08_powerstream_quota_all() -> None:
    state = state_of(track("js08_powerstream_openapi_quota_all_shuette42_masked.json", "HW51X"))
    assert state.soc == 87.0
    assert state.solar_w == 109.0  # (510 + 580) x 0.1 W
    assert state.watts_out == 109.0
    assert state.remaining_charge_min is None  # 5939
    assert state.remaining_discharge_min == 3238
