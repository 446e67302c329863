"""One pass per message: repeats, reuse of the state, and what time still changes."""

from __future__ import annotations

import json
from pathlib import Path

from custom_components.ecoflow_power.ecoflow.envelope import payload_bytes
from custom_components.ecoflow_power.ecoflow.models import identify_model
from custom_components.ecoflow_power.ecoflow.state import GridStatus, MessageSource
from custom_components.ecoflow_power.ecoflow.tracker import DeviceTracker
from tests.ecoflow.test_tracker_behaviour import ON_AC, OUTAGE, T0, cms_soc, display, new_tracker

CAPTURES = Path(__file__).parent.parent / "fixtures" / "captures"
RIVER3 = "R651PC0CXGCA0798"
DELTA2 = "R331ZEB4ZEA00001"


def river3_capture() -> bytes:
    return payload_bytes((CAPTURES / "pb01_river3_getreply_maodijim.bin").read_bytes())


def delta2_capture() -> dict:
    return json.loads((CAPTURES / "js01_delta2_getreply_latestQuotas_iobroker.json").read_text())


def test_steady_snapshot_replies_refresh_the_age_and_nothing_else() -> None:
    tracker = DeviceTracker(RIVER3, identify_model(RIVER3, None))
    assert tracker.ingest(river3_capture(), MessageSource.GET_REPLY, T0) is True
    assert tracker.ingest(river3_capture(), MessageSource.GET_REPLY, T0 + 30) is False
    repeated = tracker.snapshot(T0 + 30, 60)

    # The same reply heard once, 30 s later, by a tracker with no history.
    reference = DeviceTracker(RIVER3, identify_model(RIVER3, None))
    reference.ingest(river3_capture(), MessageSource.GET_REPLY, T0 + 30)
    assert repeated == reference.snapshot(T0 + 30, 60)
    assert repeated.updated_at == T0 + 30
    assert set(repeated.seen_at.values()) == {T0 + 30}


def test_repeated_json_snapshot_is_counted_like_any_message() -> None:
    tracker = DeviceTracker(DELTA2, identify_model(DELTA2, None))
    for offset in range(3):
        tracker.ingest(delta2_capture(), MessageSource.GET_REPLY, T0 + offset)
    stats = tracker.stats
    assert (stats.messages, stats.decoded) == (3, 3)
    assert stats.raw_field_counts["pd.wattsOutSum"] == 3
    assert tracker.snapshot(T0 + 2, 60).seen_at["watts_out"] == T0 + 2


def test_a_source_repeating_itself_after_a_tie_becomes_the_newest_source() -> None:
    # Display (higher priority) and CMS heartbeat report at the same moment:
    # the display wins the tie. When the heartbeat alone repeats later, it is
    # the newest reading and wins.
    tracker = new_tracker()
    tracker.ingest(display(cms_batt_soc=50.0), MessageSource.PROPERTY, T0)
    tracker.ingest(cms_soc(53.0), MessageSource.PROPERTY, T0)
    assert tracker.snapshot(T0, 60).soc == 50.0
    tracker.ingest(cms_soc(53.0), MessageSource.PROPERTY, T0 + 5)
    assert tracker.snapshot(T0 + 5, 60).soc == 53.0


def test_a_repeated_outage_push_keeps_the_grid_evidence_fresh() -> None:
    tracker = new_tracker()
    tracker.ingest(display(**OUTAGE), MessageSource.PROPERTY, T0)
    tracker.ingest(display(**OUTAGE), MessageSource.PROPERTY, T0 + 50)
    assert tracker.snapshot(T0 + 100, 60).grid is GridStatus.LOST
    state = tracker.snapshot(T0 + 111, 60)
    assert state.grid is GridStatus.UNKNOWN
    assert all(reason.startswith("stale: ") for reason in state.grid_evidence)


def test_a_repeated_outage_push_confirms_the_outage_after_the_confirm_time() -> None:
    tracker = new_tracker(confirm=10.0)
    tracker.ingest(display(**ON_AC), MessageSource.PROPERTY, T0)
    tracker.ingest(display(**OUTAGE), MessageSource.PROPERTY, T0 + 1)
    tracker.ingest(display(**OUTAGE), MessageSource.PROPERTY, T0 + 5)
    assert tracker.state.grid is GridStatus.CONNECTED
    assert tracker.ingest(display(**OUTAGE), MessageSource.PROPERTY, T0 + 12) is True
    assert tracker.state.grid is GridStatus.LOST


def test_a_fast_drop_repeated_verbatim_passes_on_the_second_message() -> None:
    tracker = new_tracker()
    tracker.ingest(display(cms_batt_soc=90.0), MessageSource.PROPERTY, T0)
    tracker.ingest(display(cms_batt_soc=60.0), MessageSource.PROPERTY, T0 + 1)
    assert tracker.snapshot(T0 + 1, 60).soc == 90.0  # held once
    assert tracker.ingest(display(cms_batt_soc=60.0), MessageSource.PROPERTY, T0 + 2) is True
    assert tracker.snapshot(T0 + 2, 60).soc == 60.0


def test_the_state_is_built_once_and_reused_until_time_matters() -> None:
    tracker = new_tracker()
    tracker.ingest(display(**ON_AC), MessageSource.PROPERTY, T0)
    first = tracker.snapshot(T0 + 1, 60)
    assert tracker.snapshot(T0 + 2, 60) is first
    assert tracker.state is first
    # Stale evidence is the one thing the clock changes.
    assert tracker.snapshot(T0 + 61, 60).grid is GridStatus.UNKNOWN
