"""What the simulated devices put on the wire, against the protocol notes."""

from __future__ import annotations

import json

from custom_components.ecoflow_power.ecoflow.cloud_messages import latest_quotas_protobuf
from custom_components.ecoflow_power.ecoflow.proto import envelope_pb2, power_station_pb2
from simulator import protobuf_codec
from simulator.devices import JsonPowerStation, ProtobufPowerStation, delta2, river3
from simulator.model import NOT_APPLICABLE_MINUTES
from simulator.scenarios import make_scenario

PB = power_station_pb2


def run(
    device: ProtobufPowerStation | JsonPowerStation, scenario: str, seconds: float = 60
) -> None:
    device.set_scenario(make_scenario(scenario))
    device.step(seconds)


def pushed_frames(device: ProtobufPowerStation) -> dict[tuple[int, int], list[bytes]]:
    """Decode the device's next pushes the way a client must: XOR with seq."""
    frames: dict[tuple[int, int], list[bytes]] = {}
    for out in device.pushes("acct"):
        assert out.topic == f"/app/device/property/{device.sn}"
        message = envelope_pb2.HeaderMessage.FromString(out.payload)
        assert len(message.header) == 1
        header = message.header[0]
        assert header.enc_type == 1
        assert header.src != 32
        assert header.data_len == len(header.pdata)
        plain = bytes(b ^ (header.seq & 0xFF) for b in header.pdata)
        frames.setdefault((header.cmd_func, header.cmd_id), []).append(plain)
    return frames


def test_river3_on_grid_charging() -> None:
    device = river3(soc=50)
    run(device, "steady")
    frames = pushed_frames(device)
    display = PB.DisplayPropertyUpload.FromString(frames[(254, 21)][0])
    assert display.flow_info_ac_in == 2
    assert display.plug_in_info_ac_charger_flag == 1
    assert display.plug_in_info_ac_in_flag == 0  # unreliable on real devices, too
    assert display.pow_get_bms > 0
    assert display.cms_chg_dsg_state == 2
    assert display.cms_dsg_rem_time == NOT_APPLICABLE_MINUTES == 5939
    assert 0 < display.cms_chg_rem_time < NOT_APPLICABLE_MINUTES
    assert display.pow_get_ac_out < 0  # output carries a negative sign
    assert display.cms_batt_soc == display.bms_batt_soc == 51.0
    runtime = PB.RuntimePropertyUpload.FromString(frames[(254, 22)][0])
    assert runtime.plug_in_info_ac_in_vol == 230.0  # volts, field 68
    cms = PB.CmsHeartbeatReport.FromString(frames[(32, 2)][0])
    assert cms.v1p0.lcd_show_soc == 51
    assert cms.v1p0.chg_state == 2
    assert len(frames[(32, 50)]) == 1


def test_river3_grid_loss() -> None:
    device = river3(soc=80)
    run(device, "outage", 120)
    frames = pushed_frames(device)
    display = PB.DisplayPropertyUpload.FromString(frames[(254, 21)][0])
    assert display.flow_info_ac_in != 2
    assert display.plug_in_info_ac_charger_flag == 0
    assert display.pow_get_ac_in == 0
    assert display.pow_get_bms < 0  # negative while discharging
    assert display.cms_chg_dsg_state == 1
    assert display.cms_chg_rem_time == 5939
    assert display.cms_dsg_rem_time == 78  # 78 % left at 1 %/min
    assert display.cms_batt_soc == 78.0
    runtime = PB.RuntimePropertyUpload.FromString(frames[(254, 22)][0])
    assert runtime.plug_in_info_ac_in_vol == 0.0
    bms = PB.BmsHeartbeatReport.FromString(frames[(32, 50)][0])
    assert bms.amp < 0
    assert bms.output_watts > 0
    assert bms.input_watts == 0


def test_pushes_carry_only_changed_display_fields() -> None:
    device = river3(soc=100)
    run(device, "steady")
    first = PB.DisplayPropertyUpload.FromString(pushed_frames(device)[(254, 21)][0])
    device.step(1)
    second = PB.DisplayPropertyUpload.FromString(pushed_frames(device)[(254, 21)][0])
    assert first.HasField("flow_info_ac_in")
    # Nothing changed at 100 % on grid: only the always-sent totals remain.
    assert not second.HasField("flow_info_ac_in")
    assert not second.HasField("cms_batt_soc")
    assert second.HasField("pow_in_sum_w")


def test_obfuscation_really_changes_the_bytes() -> None:
    pdata = PB.DisplayPropertyUpload(cms_batt_soc=55.5).SerializeToString()
    frame = ((254, 21), 2, pdata)
    envelope = envelope_pb2.HeaderMessage.FromString(
        protobuf_codec.push_envelope(frame, seq=0x1234)
    )
    assert envelope.header[0].pdata != pdata
    assert protobuf_codec.obfuscate(envelope.header[0].pdata, 0x34) == pdata


def test_snapshot_reply_is_plain_with_one_bms_header_per_pack() -> None:
    device = river3(soc=60, extra_pack=True)
    run(device, "diverge", 120)
    assert device.answer_get("acct", b'{"operateType":"latestQuotas"}') == []
    (reply,) = device.answer_get("acct", latest_quotas_protobuf(seq=9))
    assert reply.topic == f"/app/acct/{device.sn}/thing/property/get_reply"
    headers = envelope_pb2.HeaderMessage.FromString(reply.payload).header
    assert [(h.cmd_func, h.cmd_id) for h in headers] == [
        (32, 2),
        (254, 21),
        (32, 50),
        (32, 50),
        (254, 22),
    ]
    assert len({h.seq for h in headers}) == 1
    assert all(not h.HasField("enc_type") for h in headers)
    packs = [PB.BmsHeartbeatReport.FromString(h.pdata) for h in headers if h.cmd_id == 50]
    assert [p.num for p in packs] == [0, 1]
    assert packs[0].f32_show_soc == 59.0  # main pack at 0.5 %/min
    assert packs[1].f32_show_soc == 56.0  # extra pack at 2 %/min
    display = PB.DisplayPropertyUpload.FromString(headers[1].pdata)
    # Screen SoC is the capacity-weighted combination; bms_batt_soc the main pack.
    assert display.bms_batt_soc == 59.0
    assert 56.0 < display.cms_batt_soc < 59.0
    cms = PB.CmsHeartbeatReport.FromString(headers[0].pdata)
    assert list(cms.v1p0.bms_is_connt) == [3, 3, 0]


def test_glitch_shows_one_wrong_soc_then_recovers() -> None:
    device = river3(soc=90)
    run(device, "steady", 0)
    device.set_scenario(make_scenario("glitch", {"soc": 16}, current=device.scenario))
    device.step(1)
    socs = []
    for _ in range(3):
        display = PB.DisplayPropertyUpload.FromString(pushed_frames(device)[(254, 21)][0])
        if display.HasField("cms_batt_soc"):
            socs.append(display.cms_batt_soc)
        device.step(1)
    assert socs[0] == 16.0
    assert socs[1] > 89


def quota_pushes(device: JsonPowerStation) -> dict[str, dict[str, object]]:
    pushes = {}
    for out in device.pushes("acct"):
        assert out.topic == f"/open/acct/{device.sn}/quota"
        message = json.loads(out.payload)
        pushes[message["typeCode"]] = message["params"]
    return pushes


def test_delta2_pushes_on_grid() -> None:
    device = delta2(soc=50, extra_pack=True)
    run(device, "steady")
    pushes = quota_pushes(device)
    assert set(pushes) == {"pdStatus", "invStatus", "bmsStatus", "emsStatus", "bmsSlaveStatus_1"}
    assert pushes["invStatus"]["acInVol"] == 230000  # millivolts
    assert pushes["invStatus"]["inputWatts"] > 0
    assert pushes["pdStatus"]["remainTime"] > 0  # + minutes to full
    assert pushes["emsStatus"]["dsgRemainTime"] == 5939
    assert pushes["emsStatus"]["lcdShowSoc"] == 51


def test_delta2_outage_and_diverging_packs() -> None:
    device = delta2(soc=80, extra_pack=True)
    run(device, "diverge", 120)
    pushes = quota_pushes(device)
    assert pushes["invStatus"]["acInVol"] == 0
    assert pushes["invStatus"]["inputWatts"] == 0
    assert pushes["pdStatus"]["remainTime"] < 0  # - minutes to empty
    assert pushes["emsStatus"]["chgRemainTime"] == 5939
    assert pushes["pdStatus"]["soc"] == pushes["bmsStatus"]["soc"] == 79  # main pack
    assert pushes["bmsSlaveStatus_1"]["soc"] == 76
    assert pushes["emsStatus"]["f32LcdShowSoc"] == 77.5  # combined (equal packs)


def test_delta2_quota_all_and_latest_quotas() -> None:
    device = delta2(soc=70)
    run(device, "outage", 60)
    quota = device.quota_all()
    assert quota is not None
    assert len(quota) > 200
    assert quota["bms_emsStatus.lcdShowSoc"] == 69
    assert quota["pd.wattsInSum"] == 0
    assert quota["inv.acInVol"] == 0
    assert "pd.chgDsgState" not in quota  # ambiguous in the capture: left out
    (reply,) = device.answer_get("acct", b'{"operateType":"latestQuotas","id":"77"}')
    body = json.loads(reply.payload)
    assert body["id"] == "77"
    assert body["operateType"] == "latestQuotas"
    assert body["data"]["quotaMap"] == quota
    assert device.answer_get("acct", latest_quotas_protobuf(seq=1)) == []
    assert river3().quota_all() is None


def test_quota_all_freezes_during_a_stall() -> None:
    device = delta2(soc=50)
    run(device, "steady", 60)
    before = device.quota_all()
    run(device, "stall", 120)
    assert device.quota_all() == before
    run(device, "steady", 60)
    assert device.quota_all() != before
