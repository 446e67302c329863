"""Freshness done right (issue 10 item 5): what counts as news, and what leaves soc_min."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

from custom_components.ecoflow_power.ecoflow.models import identify_model
from custom_components.ecoflow_power.ecoflow.proto.power_station_pb2 import (
    BmsHeartbeatReport,
    CmsHeartbeatReport,
)
from custom_components.ecoflow_power.ecoflow.state import MessageSource
from custom_components.ecoflow_power.ecoflow.tracker import (
    SOC_MAX_AGE_SEC,
    DeviceTracker,
)
from tests.ecoflow.test_tracker_behaviour import SN, T0, display, envelope, new_tracker

CAPTURES = Path(__file__).parent.parent / "fixtures" / "captures"
DELTA2 = "R331ZEB4ZEA00001"
DELTA2_MAX = "R351ZEB4ZEA00001"


def delta2_reply(*, online: int = 1) -> dict[str, Any]:
    message = json.loads((CAPTURES / "js01_delta2_getreply_latestQuotas_iobroker.json").read_text())
    message["data"]["online"] = online
    return message


def as_quota_all(reply: dict[str, Any], **changes: Any) -> dict[str, Any]:
    """What quota/all over HTTPS returns for the same device state."""
    data = copy.deepcopy(reply["data"]["quotaMap"])
    data.update(changes)
    return {"code": "0", "message": "Success", "data": data}


def bms(pack: int, soc: float) -> bytes:
    report = BmsHeartbeatReport(num=pack, soc=round(soc), f32_show_soc=soc)
    return envelope(report.SerializeToString(), 32, 50)


def cms_connected(*slots: int) -> bytes:
    report = CmsHeartbeatReport()
    report.v1p0.bms_is_connt.extend(slots)
    return envelope(report.SerializeToString(), 32, 2)


# --- fresh evidence ------------------------------------------------------------


def test_a_reply_saying_the_station_is_offline_is_not_fresh_evidence() -> None:
    tracker = DeviceTracker(DELTA2, identify_model(DELTA2, None))
    tracker.ingest(delta2_reply(), MessageSource.GET_REPLY, T0)
    assert tracker.snapshot(T0, 120).fresh_at == T0
    # The cloud answers for a station that dropped off, from its cache.
    tracker.ingest(delta2_reply(online=0), MessageSource.GET_REPLY, T0 + 30)
    state = tracker.snapshot(T0 + 30, 120)
    assert state.online is False
    assert state.updated_at == T0 + 30
    assert state.fresh_at == T0


def test_repeated_offline_replies_never_become_fresh() -> None:
    tracker = DeviceTracker(DELTA2, identify_model(DELTA2, None))
    for offset in (0, 30, 60):
        tracker.ingest(delta2_reply(online=0), MessageSource.GET_REPLY, T0 + offset)
    state = tracker.snapshot(T0 + 60, 120)
    assert state.fresh_at is None
    assert state.updated_at == T0 + 60
    assert state.soc_min is not None  # the values still show


def test_the_first_http_quota_poll_after_a_start_without_news_is_not_fresh() -> None:
    tracker = DeviceTracker(DELTA2, identify_model(DELTA2, None))
    tracker.ingest(as_quota_all(delta2_reply()), MessageSource.HTTP_QUOTA, T0)
    state = tracker.snapshot(T0, 120)
    assert state.fresh_at is None
    assert state.updated_at == T0
    assert state.soc is not None


def test_an_http_quota_poll_with_changed_values_is_fresh() -> None:
    tracker = DeviceTracker(DELTA2, identify_model(DELTA2, None))
    tracker.ingest(as_quota_all(delta2_reply()), MessageSource.HTTP_QUOTA, T0)
    changed = as_quota_all(delta2_reply(), **{"pd.wattsOutSum": 512})
    tracker.ingest(changed, MessageSource.HTTP_QUOTA, T0 + 300)
    assert tracker.snapshot(T0 + 300, 120).fresh_at == T0 + 300


def test_an_http_quota_poll_repeating_what_mqtt_said_is_not_fresh() -> None:
    tracker = DeviceTracker(DELTA2, identify_model(DELTA2, None))
    tracker.ingest(delta2_reply(), MessageSource.GET_REPLY, T0)
    tracker.ingest(as_quota_all(delta2_reply()), MessageSource.HTTP_QUOTA, T0 + 60)
    state = tracker.snapshot(T0 + 60, 120)
    assert state.fresh_at == T0
    assert state.updated_at == T0 + 60


def test_steady_mqtt_replies_are_fresh_every_time() -> None:
    tracker = DeviceTracker(DELTA2, identify_model(DELTA2, None))
    tracker.ingest(delta2_reply(), MessageSource.GET_REPLY, T0)
    tracker.ingest(delta2_reply(), MessageSource.GET_REPLY, T0 + 30)
    assert tracker.snapshot(T0 + 30, 120).fresh_at == T0 + 30


# --- the weakest pack ----------------------------------------------------------


def test_an_extra_pack_reported_disconnected_leaves_the_weakest_pack_value() -> None:
    tracker = new_tracker()
    tracker.ingest(bms(0, 80.0), MessageSource.PROPERTY, T0)
    tracker.ingest(bms(1, 30.0), MessageSource.PROPERTY, T0)
    assert tracker.snapshot(T0, 60).soc_min == 30.0
    tracker.ingest(cms_connected(3, 0), MessageSource.PROPERTY, T0 + 1)
    state = tracker.snapshot(T0 + 1, 60)
    assert state.soc_min == 80.0
    assert state.soc_min_source is not None
    assert state.soc_min_source.startswith("bms.0.")


def test_a_disconnected_slave_pack_of_a_delta_2_max_leaves_the_weakest_pack_value() -> None:
    capture = json.loads(
        (CAPTURES / "js05_delta2max_2slaves_getreply_latestQuotas_tolwi_diag.json").read_text()
    )
    tracker = DeviceTracker(DELTA2_MAX, identify_model(DELTA2_MAX, None))
    tracker.ingest(capture, MessageSource.GET_REPLY, T0)
    assert tracker.snapshot(T0, 120).soc_min == 67  # slave 2
    unplugged = {"typeCode": "emsStatus", "params": {"bmsIsConnt": [3, 3, 0]}}
    tracker.ingest(unplugged, MessageSource.OPEN_QUOTA, T0 + 1)
    assert tracker.snapshot(T0 + 1, 120).soc_min == 81.8  # slave 1 is the weakest left


def test_a_pack_that_stopped_reporting_leaves_the_weakest_pack_value() -> None:
    tracker = new_tracker()
    tracker.ingest(bms(0, 80.0), MessageSource.PROPERTY, T0)
    tracker.ingest(bms(1, 30.0), MessageSource.PROPERTY, T0)
    tracker.ingest(bms(0, 79.0), MessageSource.PROPERTY, T0 + 60)
    assert tracker.snapshot(T0 + 60, 300).soc_min == 30.0  # one quiet minute is not gone
    tracker.ingest(bms(0, 78.0), MessageSource.PROPERTY, T0 + 200)
    state = tracker.snapshot(T0 + 200, 300)
    assert state.soc_min == 78.0
    assert state.soc_modules == (78.0, 30.0)  # still shown as last reported


def test_a_soc_older_than_the_bound_is_dropped_from_soc_min() -> None:
    tracker = new_tracker()
    tracker.ingest(bms(0, 50.0), MessageSource.PROPERTY, T0)
    # Power figures keep coming; the SoC field froze.
    tracker.ingest(display(pow_out_sum_w=120.0), MessageSource.PROPERTY, T0 + 600)
    assert tracker.snapshot(T0 + 600, 60).soc_min == 50.0
    assert tracker.snapshot(T0 + SOC_MAX_AGE_SEC + 1, 2000).soc_min is None
    tracker.ingest(display(pow_out_sum_w=121.0), MessageSource.PROPERTY, T0 + 1000)
    assert tracker.state.soc_min is None
    # A new reading counts again at once.
    tracker.ingest(bms(0, 48.0), MessageSource.PROPERTY, T0 + 1010)
    assert tracker.snapshot(T0 + 1010, 60).soc_min == 48.0


def test_a_steadily_repeated_soc_never_ages_out() -> None:
    tracker = DeviceTracker(SN, identify_model(SN, None), soc_max_age_sec=100)
    tracker.ingest(bms(0, 50.0), MessageSource.PROPERTY, T0)
    for offset in (60, 120, 180):
        tracker.ingest(bms(0, 50.0), MessageSource.PROPERTY, T0 + offset)
    assert tracker.snapshot(T0 + 200, 60).soc_min == 50.0
    assert tracker.snapshot(T0 + 281, 60).soc_min is None


# --- what a full snapshot leaves out ---------------------------------------------


def test_a_field_missing_from_a_newer_full_snapshot_is_forgotten_not_frozen() -> None:
    tracker = DeviceTracker(DELTA2, identify_model(DELTA2, None))
    tracker.ingest(delta2_reply(), MessageSource.GET_REPLY, T0)
    assert tracker.snapshot(T0, 120).watts_out == 344.0
    # The station stops reporting its output power (e.g. outputs switched off).
    without_output = delta2_reply()
    del without_output["data"]["quotaMap"]["pd.wattsOutSum"]
    assert tracker.ingest(without_output, MessageSource.GET_REPLY, T0 + 30) is True
    state = tracker.snapshot(T0 + 30, 120)
    assert state.watts_out is None  # not the 344 W of 30 s ago
    assert "watts_out" not in state.seen_at
    assert "pd.wattsOutSum" not in tracker.raw_fields()
    assert state.soc is not None  # what the snapshot still carries stays


def test_a_json_snapshot_leaves_the_protobuf_readings_of_the_station_alone() -> None:
    tracker = new_tracker()
    tracker.ingest(display(cms_batt_soc=50.0), MessageSource.PROPERTY, T0)
    # A quota/all answer knows only JSON keys: it says nothing of protobuf fields.
    tracker.ingest(
        {"code": "0", "data": {"bms_bmsStatus.cycles": 12}}, MessageSource.HTTP_QUOTA, T0 + 10
    )
    assert tracker.snapshot(T0 + 10, 120).soc == 50.0
    assert tracker.raw_fields()["display.cms_batt_soc"] == 50.0
