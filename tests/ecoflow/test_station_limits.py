"""What a station says about its own energy and cut-offs, from the captures."""

from __future__ import annotations

import pytest

from custom_components.ecoflow_power.ecoflow.models import identify_model
from custom_components.ecoflow_power.ecoflow.state import MessageSource
from custom_components.ecoflow_power.ecoflow.tracker import DeviceTracker
from tests.ecoflow.test_captures import state_of, track
from tests.ecoflow.test_tracker_behaviour import SN, T0, display

JS03 = "js03_river2max_getreply_latestQuotas_iobroker.json"
JS04 = "js04_river2pro_getreply_latestQuotas_iobroker.json"
PB05 = "pb05_deltapro3_getreply_tolwi270_via_nextaltair.b64"
PB06 = "pb06_powerstream_heartbeat_pvcharging_iobroker.hex"


@pytest.mark.parametrize(
    ("capture", "sn", "capacity_wh", "discharge_limit", "backup_reserve"),
    [
        # Delta 2: full = design capacity (20000 mAh), limit 7 %, reserve 40 % switched on.
        ("js01_delta2_getreply_latestQuotas_iobroker.json", "R331ZEB4ZEA00001", 1024.0, 7.0, 40.0),
        # Delta Pro: 76000 of 80000 mAh left -> 95 % of 3600 Wh; no backup reserve field.
        ("js02_deltapro_getreply_latestQuotas_iobroker.json", "DCEBZ8ZE2110138", 3420.0, 5.0, None),
        # River 2 Max: an aged pack, 17978 of 20000 mAh; reserve 35 % switched on.
        (
            "js03_river2max_getreply_latestQuotas_iobroker.json",
            "R611ZEB4ZEA00001",
            460.0,
            0.0,
            35.0,
        ),
        # River 2 Pro: reserve level 18 % but switched off (pd.watchIsConfig 0).
        (
            "js04_river2pro_getreply_latestQuotas_iobroker.json",
            "R621ZEB4ZEA00001",
            691.0,
            0.0,
            None,
        ),
        # River 3: no pack health reported; limit 5 %, reserve 80 % switched off.
        ("pb01_river3_getreply_maodijim.bin", "R651PC0CXGCA0798", 245.0, 5.0, None),
        # Delta Pro 3: backup reserve on at 35 %.
        (
            "pb05_deltapro3_getreply_tolwi270_via_nextaltair.b64",
            "MR51ZAB4ZEA00001",
            4096.0,
            0.0,
            35.0,
        ),
        # PowerStream: an inverter, no battery of its own, no cut-offs.
        (
            "pb06_powerstream_heartbeat_pvcharging_iobroker.hex",
            "HW51ZAB4ZEA00001",
            None,
            None,
            None,
        ),
    ],
)
def test_station_reports_its_capacity_and_cut_offs(
    capture: str,
    sn: str,
    capacity_wh: float | None,
    discharge_limit: float | None,
    backup_reserve: float | None,
) -> None:
    state = state_of(track(capture, sn))
    assert state.capacity_wh == capacity_wh
    assert state.discharge_limit_pct == discharge_limit
    assert state.backup_reserve_pct == backup_reserve


def test_switching_the_backup_reserve_on_makes_it_a_cut_off() -> None:
    tracker = DeviceTracker(SN, identify_model(SN, None))
    tracker.ingest(
        display(energy_backup_en=0, energy_backup_start_soc=30), MessageSource.PROPERTY, T0
    )
    assert tracker.snapshot(T0, 60).backup_reserve_pct is None
    tracker.ingest(display(energy_backup_en=1), MessageSource.PROPERTY, T0 + 1)
    assert tracker.snapshot(T0 + 1, 60).backup_reserve_pct == 30.0


def test_unknown_model_has_no_capacity() -> None:
    tracker = DeviceTracker("X", identify_model("X", "EcoFlow Wave 9"))
    tracker.ingest(display(cms_batt_soc=50.0), MessageSource.PROPERTY, T0)
    assert tracker.snapshot(T0, 60).capacity_wh is None
