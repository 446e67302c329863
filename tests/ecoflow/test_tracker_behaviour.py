"""Tracker behaviour that decides whether a shutdown is right."""

from __future__ import annotations

from types import MappingProxyType

import pytest

from custom_components.ecoflow_power.ecoflow.filters import GridDebouncer, SocJumpFilter
from custom_components.ecoflow_power.ecoflow.models import identify_model
from custom_components.ecoflow_power.ecoflow.proto.envelope_pb2 import HeaderMessage
from custom_components.ecoflow_power.ecoflow.proto.power_station_pb2 import (
    CmsHeartbeatReport,
    DisplayPropertyUpload,
    RuntimePropertyUpload,
)
from custom_components.ecoflow_power.ecoflow.state import (
    GridStatus,
    MessageSource,
    PowerState,
)
from custom_components.ecoflow_power.ecoflow.tracker import DeviceTracker

SN = "R631ZTEST0001"
T0 = 1_700_000_000.0


def envelope(pdata: bytes, cmd_func: int, cmd_id: int, *, seq: int = 0x1234, **extra: int) -> bytes:
    """A device push: pdata obfuscated with seq & 0xFF as River 3 sends it."""
    message = HeaderMessage()
    header = message.header.add()
    header.pdata = bytes(byte ^ (seq & 0xFF) for byte in pdata)
    header.src, header.dest, header.enc_type = 2, 32, 1
    header.cmd_func, header.cmd_id, header.seq = cmd_func, cmd_id, seq
    for name, value in extra.items():
        setattr(header, name, value)
    return message.SerializeToString()


def display(**fields: float) -> bytes:
    return envelope(DisplayPropertyUpload(**fields).SerializeToString(), 254, 21)


def runtime(**fields: float) -> bytes:
    return envelope(RuntimePropertyUpload(**fields).SerializeToString(), 254, 22)


def cms_soc(value: float) -> bytes:
    report = CmsHeartbeatReport()
    report.v1p0.f32_lcd_show_soc = value
    report.v1p0.lcd_show_soc = round(value)
    return envelope(report.SerializeToString(), 32, 2)


def new_tracker(confirm: float = 10.0) -> DeviceTracker:
    return DeviceTracker(SN, identify_model(SN, None), grid_confirm_sec=confirm)


ON_AC = {"flow_info_ac_in": 2, "pow_get_ac_in": 120.0, "plug_in_info_ac_charger_flag": 1}
OUTAGE = {
    "flow_info_ac_in": 12,
    "pow_get_ac_in": 0.0,
    "plug_in_info_ac_charger_flag": 0,
    "pow_get_bms": -80.0,
    "cms_chg_dsg_state": 1,
}


# --- grid ---------------------------------------------------------------------


def test_full_idle_battery_with_low_input_is_not_an_outage() -> None:
    # 100 %, nothing drawn, 2 W of AC input: a full battery simply takes nothing.
    tracker = new_tracker()
    tracker.ingest(
        display(cms_batt_soc=100.0, pow_get_ac_in=2.0, pow_get_bms=0.0, cms_chg_dsg_state=0),
        MessageSource.PROPERTY,
        T0,
    )
    assert tracker.snapshot(T0, 60).grid is not GridStatus.LOST


def test_discharging_alone_is_not_an_outage() -> None:
    # A load above the AC charger limit (or maxChargeSoc below soc) discharges
    # with the grid present; only AC-side evidence can say "lost".
    tracker = new_tracker()
    tracker.ingest(display(pow_get_bms=-300.0, cms_chg_dsg_state=1), MessageSource.PROPERTY, T0)
    assert tracker.snapshot(T0, 60).grid is GridStatus.UNKNOWN


def test_no_evidence_is_unknown_never_lost() -> None:
    tracker = new_tracker()
    tracker.ingest(cms_soc(80.0), MessageSource.PROPERTY, T0)
    state = tracker.snapshot(T0, 60)
    assert state.grid is GridStatus.UNKNOWN
    assert state.grid_evidence == ("no grid evidence",)


def test_stale_evidence_reads_unknown_never_lost() -> None:
    # The last thing we heard was an outage; after silence we no longer know.
    tracker = new_tracker()
    tracker.ingest(display(**OUTAGE), MessageSource.PROPERTY, T0)
    assert tracker.snapshot(T0 + 5, 60).grid is GridStatus.LOST
    state = tracker.snapshot(T0 + 61, 60)
    assert state.grid is GridStatus.UNKNOWN
    assert all(reason.startswith("stale: ") for reason in state.grid_evidence)


def test_ac_voltage_is_strong_evidence_even_without_input_watts() -> None:
    tracker = new_tracker()
    tracker.ingest(runtime(plug_in_info_ac_in_vol=229.8), MessageSource.PROPERTY, T0)
    tracker.ingest(display(pow_get_ac_in=0.0, pow_get_bms=-40.0), MessageSource.PROPERTY, T0)
    state = tracker.snapshot(T0, 60)
    assert state.grid is GridStatus.CONNECTED
    assert "ac_in_vol 229.8 V" in state.grid_evidence


def test_grid_change_must_persist_before_it_is_reported() -> None:
    tracker = new_tracker(confirm=10.0)
    tracker.ingest(display(**ON_AC), MessageSource.PROPERTY, T0)
    # First reading is reported at once: there is no earlier state to protect.
    assert tracker.snapshot(T0, 60).grid is GridStatus.CONNECTED
    tracker.ingest(display(**OUTAGE), MessageSource.PROPERTY, T0 + 1)
    state = tracker.snapshot(T0 + 5, 60)
    assert state.grid is GridStatus.CONNECTED  # a 4 s blip is not an outage yet
    assert any("awaiting confirmation: lost" in reason for reason in state.grid_evidence)
    tracker.ingest(display(**OUTAGE), MessageSource.PROPERTY, T0 + 8)
    assert tracker.snapshot(T0 + 11, 60).grid is GridStatus.LOST


def test_grid_blip_shorter_than_confirm_is_never_reported() -> None:
    tracker = new_tracker(confirm=10.0)
    tracker.ingest(display(**ON_AC), MessageSource.PROPERTY, T0)
    tracker.ingest(display(**OUTAGE), MessageSource.PROPERTY, T0 + 1)
    tracker.ingest(display(**ON_AC), MessageSource.PROPERTY, T0 + 4)
    assert tracker.snapshot(T0 + 30, 60).grid is GridStatus.CONNECTED


def test_debouncer_first_known_reading_is_immediate() -> None:
    debouncer = GridDebouncer(confirm_sec=10)
    assert debouncer.observe(GridStatus.UNKNOWN, 0) is GridStatus.UNKNOWN
    assert debouncer.observe(GridStatus.LOST, 1) is GridStatus.LOST
    assert debouncer.observe(GridStatus.CONNECTED, 2) is GridStatus.LOST
    assert debouncer.current(12) is GridStatus.CONNECTED


# --- SoC glitches ----------------------------------------------------------------


def test_isolated_soc_jump_contradicted_by_other_sources_is_held() -> None:
    # 90 -> 16 -> 90: one message read the wrong field; the CMS heartbeat still says 90.
    tracker = new_tracker()
    tracker.ingest(display(cms_batt_soc=90.0), MessageSource.PROPERTY, T0)
    tracker.ingest(cms_soc(90.0), MessageSource.PROPERTY, T0 + 1)
    tracker.ingest(display(cms_batt_soc=16.0), MessageSource.PROPERTY, T0 + 2)
    assert tracker.snapshot(T0 + 2, 60).soc == 90.0
    assert tracker.stats.rejected >= 1
    tracker.ingest(display(cms_batt_soc=90.0), MessageSource.PROPERTY, T0 + 3)
    assert tracker.snapshot(T0 + 3, 60).soc == 90.0


def test_real_fast_drop_passes_on_the_second_message() -> None:
    tracker = new_tracker()
    tracker.ingest(display(cms_batt_soc=90.0), MessageSource.PROPERTY, T0)
    tracker.ingest(display(cms_batt_soc=60.0), MessageSource.PROPERTY, T0 + 1)
    assert tracker.snapshot(T0 + 1, 60).soc == 90.0  # held once
    tracker.ingest(display(cms_batt_soc=59.0), MessageSource.PROPERTY, T0 + 2)
    assert tracker.snapshot(T0 + 2, 60).soc == 59.0


def test_fast_drop_passes_at_once_when_sources_agree() -> None:
    tracker = new_tracker()
    tracker.ingest(display(cms_batt_soc=90.0), MessageSource.PROPERTY, T0)
    tracker.ingest(cms_soc(58.0), MessageSource.PROPERTY, T0 + 1)
    tracker.ingest(display(cms_batt_soc=60.0), MessageSource.PROPERTY, T0 + 1)
    assert tracker.snapshot(T0 + 1, 60).soc == 60.0


def test_soc_jump_filter_unit() -> None:
    guard = SocJumpFilter()
    assert guard.update(90, []) == (90, False)
    assert guard.update(16, [90]) == (90, True)
    assert guard.update(89, []) == (89, False)
    assert guard.update(50, [51]) == (50, False)


# --- filters -------------------------------------------------------------------------


def test_display_without_known_fields_is_rejected_not_merged() -> None:
    # Header bytes fed as pdata: every known field absent (wire types differ).
    tracker = new_tracker()
    bogus = HeaderMessage()
    bogus.header.add(src=2, dest=32, cmd_func=254, cmd_id=21, seq=5)
    inner = bogus.header[0].SerializeToString()
    assert tracker.ingest(envelope(inner, 254, 21), MessageSource.PROPERTY, T0) is False
    stats = tracker.stats
    # cmd_func 254 lands in field 8 (energy_backup_start_soc): dropped as an
    # impossible percentage, then the frame is empty and refused as a whole.
    assert stats.rejected == 2
    assert stats.last_error == "254/21 display without known fields"
    assert stats.decoded == 0
    assert tracker.snapshot(T0, 60).updated_at is None


def test_truncated_frame_is_rejected() -> None:
    pdata = DisplayPropertyUpload(cms_batt_soc=50.0, pow_out_sum_w=10.0).SerializeToString()
    payload = envelope(pdata[:5], 254, 21, data_len=len(pdata))
    tracker = new_tracker()
    assert tracker.ingest(payload, MessageSource.PROPERTY, T0) is False
    assert tracker.stats.rejected == 1
    assert "truncated" in (tracker.stats.last_error or "")


def test_implausible_soc_is_dropped() -> None:
    tracker = new_tracker()
    tracker.ingest(display(cms_batt_soc=250.0, pow_out_sum_w=10.0), MessageSource.PROPERTY, T0)
    assert tracker.snapshot(T0, 60).soc is None
    assert tracker.snapshot(T0, 60).watts_out == 10.0


# --- robustness and stats ----------------------------------------------------------------


@pytest.mark.parametrize(
    "payload",
    [b"", b"\x00\xff\x13", "not hex at all!", b"{broken json", {"unknown": "shape"}, 42, None],
)
def test_malformed_input_is_counted_never_raised(payload: object) -> None:
    tracker = new_tracker()
    assert tracker.ingest(payload, MessageSource.PROPERTY, T0) is False  # type: ignore[arg-type]
    stats = tracker.stats
    assert stats.messages == 1
    assert stats.malformed == 1
    assert stats.last_error


def test_unknown_message_type_is_counted() -> None:
    tracker = new_tracker()
    assert tracker.ingest(envelope(b"\x08\x01", 254, 99), MessageSource.PROPERTY, T0) is False
    assert tracker.stats.unknown_types == {"254/99": 1}
    assert tracker.stats.malformed == 0


def test_ingest_reports_change_only_when_state_changes() -> None:
    tracker = new_tracker()
    assert tracker.ingest(display(cms_batt_soc=50.0), MessageSource.PROPERTY, T0) is True
    assert tracker.ingest(display(cms_batt_soc=50.0), MessageSource.PROPERTY, T0 + 1) is False
    assert tracker.ingest(display(cms_batt_soc=51.0), MessageSource.PROPERTY, T0 + 2) is True
    state = tracker.snapshot(T0 + 2, 60)
    assert state.updated_at == T0 + 2
    assert state.seen_at["soc"] == T0 + 2
    stats = tracker.stats
    assert stats.raw_field_counts["display.cms_batt_soc"] == 3
    assert (stats.messages, stats.decoded) == (3, 3)


def test_status_messages_set_online() -> None:
    tracker = new_tracker()
    assert tracker.ingest('{"params":{"status":0}}', MessageSource.STATUS, T0) is True
    assert tracker.snapshot(T0, 60).online is False
    assert tracker.ingest(b"online", MessageSource.STATUS, T0 + 1) is True
    assert tracker.snapshot(T0 + 1, 60).online is True


def test_powerstate_is_immutable_and_comparable() -> None:
    state = PowerState(sn="x", model="m", energy_kwh={"ac_in": 1.0})
    assert isinstance(state.energy_kwh, MappingProxyType)
    assert state == PowerState(sn="x", model="m", energy_kwh={"ac_in": 1.0})
    with pytest.raises(AttributeError):
        state.soc = 5.0  # type: ignore[misc]
    with pytest.raises(TypeError):
        state.energy_kwh["ac_in"] = 2.0  # type: ignore[index]


def test_open_api_push_of_an_extra_pack_counts_toward_soc_min() -> None:
    """An Open-API push for extra pack 1 must feed soc_min like quota/all does.

    Found when the stand-in's two diverging packs gave soc_min 89 while the
    extra pack was at 87: the push's group name did not match quota/all's.
    """
    import json as _json
    from pathlib import Path as _Path

    from custom_components.ecoflow_power.ecoflow.models import identify_model as _identify
    from custom_components.ecoflow_power.ecoflow.state import MessageSource as _Source
    from custom_components.ecoflow_power.ecoflow.tracker import DeviceTracker as _Tracker

    capture = _json.loads(
        (
            _Path(__file__).parent.parent
            / "fixtures/captures/js05_delta2max_2slaves_getreply_latestQuotas_tolwi_diag.json"
        ).read_text()
    )
    tracker = _Tracker("R351ZEB4ZEA00001", _identify("R351ZEB4ZEA00001", "DELTA 2 Max"))
    assert tracker.ingest(capture, _Source.GET_REPLY, 1000.0)
    assert tracker.snapshot(1000.0, 120).soc_min == 67  # slave 2 is the weakest
    push = {"typeCode": "bmsSlaveStatus_1", "params": {"soc": 40, "f32ShowSoc": 40.0}}
    tracker.ingest(push, _Source.OPEN_QUOTA, 1001.0)
    tracker.ingest(push, _Source.OPEN_QUOTA, 1002.0)  # a second reading confirms the drop
    assert tracker.snapshot(1002.0, 120).soc_min == 40
