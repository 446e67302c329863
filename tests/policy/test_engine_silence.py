"""Protection that does not depend on the cloud (issue 10): fake clock only.

The energy estimate while the station is silent on battery, blind mode, the
mains sentinel, the unprotected state, station cut-offs, fsd / shutdown_by
and infrastructure agents.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest

from custom_components.ecoflow_power.ecoflow.state import GridStatus
from custom_components.ecoflow_power.policy import (
    AckStatus,
    AgentBinding,
    PolicyEvent,
    PolicyState,
    PolicyTelemetry,
    RepairChange,
)
from custom_components.ecoflow_power.policy.estimate import CAPACITY_DERATE
from tests.policy.conftest import T0, Harness, events, nas, repairs, shutdowns

Make = Callable[..., Harness]


def feed(h: Harness, grid: GridStatus, soc: float | None, **figures) -> list:
    return h.engine.update(PolicyTelemetry(grid, soc, None, h.clock.now, **figures))


def seconds_to(soc: float, threshold: float, watts: float, capacity_wh: float) -> float:
    return (soc - threshold) / 100 * capacity_wh * CAPACITY_DERATE / watts * 3600


# -- the energy estimate while silent on battery ----------------------------------------


def test_a_stall_of_minutes_at_95_percent_does_not_shut_down(make: Make) -> None:
    h = make(stale_after_sec=120, delay_sec=60, estimate_margin_sec=120)
    feed(h, GridStatus.LOST, 95, discharge_w=150, capacity_wh=1024)
    sent = []
    for _ in range(10):  # ten minutes of cloud stall
        sent += h.at(60)
    assert shutdowns(sent) == []
    status = h.engine.status()
    assert status.state is PolicyState.CRITICAL_PENDING
    expected = T0 + seconds_to(95, 20, 150, 1024) - (60 + 120)
    assert status.estimate_at == pytest.approx(expected)
    assert status.pending_fire_at == pytest.approx(expected)
    assert status.estimate_soc is not None
    assert 80 < status.estimate_soc < 95
    # Telemetry back: the estimate stops, nothing was sent.
    feed(h, GridStatus.LOST, 90, discharge_w=150, capacity_wh=1024)
    assert h.engine.status().estimate_at is None
    assert h.engine.pending_fire_at() is None


def test_a_stall_at_40_percent_under_high_load_fires_at_the_estimate(make: Make) -> None:
    h = make(stale_after_sec=120, delay_sec=60, estimate_margin_sec=120)
    feed(h, GridStatus.LOST, 40, discharge_w=250, capacity_wh=256)
    fire_at = T0 + seconds_to(40, 20, 250, 256) - 180
    assert fire_at > T0 + 120  # later than the old all-at-once stale fail-safe
    h.clock.now = fire_at - 1
    assert shutdowns(h.engine.tick()) == []
    assert h.engine.next_deadline() == pytest.approx(fire_at)
    h.clock.now = fire_at
    sent = shutdowns(h.engine.tick())
    assert len(sent) == 1
    # 180 s (delay 60 + margin 120) before the estimate reaches 20 %.
    lead_pct = 250 / (256 * CAPACITY_DERATE) * 100 / 3600 * 180
    assert f"(soc_min estimated at {20 + lead_pct:.0f})" in sent[0].payload["reason"]


def test_the_estimate_never_fires_before_the_stale_window(make: Make) -> None:
    h = make(stale_after_sec=120)
    feed(h, GridStatus.LOST, 22, discharge_w=800, capacity_wh=256)
    assert shutdowns(h.at(119)) == []
    assert len(shutdowns(h.at(1))) == 1


def test_nothing_known_about_the_drain_fires_at_the_stale_timeout(make: Make) -> None:
    h = make(stale_after_sec=120)
    feed(h, GridStatus.LOST, 95)  # no power, no capacity, no runtime
    assert shutdowns(h.at(119)) == []
    assert len(shutdowns(h.at(1))) == 1


def test_the_threshold_the_estimate_aims_at_is_each_agents_own(make: Make) -> None:
    vm = AgentBinding("vm", "vm-secret-for-tests", soc_threshold=60)
    h = make([nas(), vm], stale_after_sec=120, delay_sec=0, estimate_margin_sec=0)
    feed(h, GridStatus.LOST, 80, discharge_w=100, capacity_wh=1000)
    views = h.engine.status().agents
    assert views["vm"].shutdown_by == pytest.approx(T0 + seconds_to(80, 60, 100, 1000))
    assert views["nas"].shutdown_by == pytest.approx(T0 + seconds_to(80, 20, 100, 1000))


# -- blind mode ------------------------------------------------------------------------


def test_blind_grid_last_present_station_offline_fires_on_the_estimate(make: Make) -> None:
    h = make(stale_after_sec=120, delay_sec=60, estimate_margin_sec=120)
    feed(h, GridStatus.CONNECTED, 50, load_w=300, capacity_wh=1024)
    h.clock.advance(5)
    h.engine.update_link(cloud_connected=True, station_online=False)
    effects = h.at(115)
    assert h.engine.state is PolicyState.BLIND
    blind = [r for r in repairs(effects) if r.issue_id == "policy_blind"]
    fire_at = T0 + seconds_to(50, 20, 300, 1024) - 180
    assert blind == [RepairChange("policy_blind", True)]
    assert float(blind[0].placeholders["fires_at"]) == pytest.approx(fire_at, abs=1)
    assert "outage assumed" in h.engine.status().explanation
    assert events(effects, PolicyEvent.BATTERY_CRITICAL)
    h.clock.now = fire_at - 1
    assert shutdowns(h.engine.tick()) == []
    h.clock.now = fire_at
    sent = shutdowns(h.engine.tick())
    assert len(sent) == 1
    assert sent[0].payload["reason"].startswith("blind")
    # The station is back and says the grid is present: the shutdown is aborted.
    h.clock.advance(5)
    effects = feed(h, GridStatus.CONNECTED, 45)
    assert [e.action for e in effects if hasattr(e, "action")] == ["abort"]
    assert RepairChange("policy_blind", False) in repairs(effects)


def test_blind_with_the_cloud_unreachable(make: Make) -> None:
    h = make(stale_after_sec=120)
    feed(h, GridStatus.CONNECTED, 50)  # nothing known about the load
    h.engine.update_link(cloud_connected=False, station_online=None)
    assert len(shutdowns(h.at(120))) == 1  # stale timeout, as on battery


def test_frozen_telemetry_while_online_and_the_cloud_up_is_not_an_outage(make: Make) -> None:
    h = make(stale_after_sec=120)
    feed(h, GridStatus.CONNECTED, 50, load_w=300, capacity_wh=256)
    h.engine.update_link(cloud_connected=True, station_online=True)
    effects = h.at(3600)
    assert shutdowns(effects) == []
    assert RepairChange("telemetry_stale", True) in repairs(effects)
    assert h.engine.state is not PolicyState.BLIND


def test_blind_mode_off_keeps_the_old_behaviour(make: Make) -> None:
    h = make(stale_after_sec=120, blind_mode=False)
    feed(h, GridStatus.CONNECTED, 50)
    h.engine.update_link(cloud_connected=False, station_online=False)
    assert shutdowns(h.at(3600)) == []


def test_a_sentinel_saying_mains_present_prevents_blind_mode(make: Make) -> None:
    h = make(stale_after_sec=120)
    h.engine.update_mains(True)
    feed(h, GridStatus.CONNECTED, 50)
    h.engine.update_link(cloud_connected=False, station_online=False)
    assert shutdowns(h.at(3600)) == []
    assert h.engine.state is not PolicyState.BLIND


# -- the mains sentinel --------------------------------------------------------------


def test_mains_lost_with_the_station_silent_is_an_outage(make: Make) -> None:
    h = make(debounce_sec=60, stale_after_sec=120, blind_mode=False)
    feed(h, GridStatus.CONNECTED, 15)
    h.clock.advance(5)
    effects = h.engine.update_mains(False)  # the station never reports the loss
    assert events(effects, PolicyEvent.GRID_LOST)
    assert h.engine.status().grid is GridStatus.LOST
    assert shutdowns(h.at(59)) == []
    assert len(shutdowns(h.at(1))) == 1  # soc 15 <= 20 for the debounce


def test_mains_lost_and_silence_fire_the_fail_safe_even_with_a_healthy_battery(
    make: Make,
) -> None:
    h = make(stale_after_sec=120, blind_mode=False)
    feed(h, GridStatus.CONNECTED, 90)
    h.clock.advance(10)
    h.engine.update_mains(False)
    assert shutdowns(h.at(109)) == []
    assert len(shutdowns(h.at(1))) == 1  # nothing known about the drain: stale timeout


def test_a_station_reading_after_the_sentinel_change_wins(make: Make) -> None:
    h = make(debounce_sec=60)
    feed(h, GridStatus.CONNECTED, 15)
    h.engine.update_mains(False)
    h.clock.advance(10)
    feed(h, GridStatus.CONNECTED, 15)  # the station measures its own input
    assert h.engine.status().grid is GridStatus.CONNECTED
    assert shutdowns(h.at(120)) == []


def test_mains_back_undoes_only_a_loss_the_sentinel_declared(make: Make) -> None:
    h = make(debounce_sec=60)
    feed(h, GridStatus.CONNECTED, 15)
    h.engine.update_mains(False)
    h.clock.advance(5)
    h.engine.update_mains(True)
    assert h.engine.status().grid is GridStatus.CONNECTED
    h.clock.advance(5)
    feed(h, GridStatus.LOST, 15)  # the station itself on battery
    h.engine.update_mains(False)
    h.engine.update_mains(True)
    assert h.engine.status().grid is GridStatus.LOST
    assert len(shutdowns(h.at(60))) == 1


# -- station cut-offs ---------------------------------------------------------------------


def test_a_station_cutoff_at_or_above_the_threshold_raises_it_and_says_so(make: Make) -> None:
    h = make(debounce_sec=0)
    effects = feed(h, GridStatus.CONNECTED, 80, cutoff_pct=30)
    cutoff = [r for r in repairs(effects) if r.issue_id == "station_cutoff"]
    assert cutoff == [RepairChange("station_cutoff", True)]
    assert cutoff[0].placeholders == {"cutoff": "30", "threshold": "20", "effective": "35"}
    assert h.engine.status().agents["nas"].soc_threshold == 35
    assert len(shutdowns(feed(h, GridStatus.LOST, 34))) == 1
    effects = feed(h, GridStatus.LOST, 34, cutoff_pct=10)
    assert RepairChange("station_cutoff", False) in repairs(effects)


# -- fsd, shutdown_by, infrastructure agents ----------------------------------------------


def test_fsd_latches_until_the_grid_is_back_for_the_restore_confirmation(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=30, restore_confirm_sec=60)
    assert not h.engine.status().agents["nas"].fsd
    cmd = shutdowns(feed(h, GridStatus.LOST, 10))[0]
    h.ack("nas", cmd.payload["id"], AckStatus.EXECUTING)
    assert h.engine.status().agents["nas"].fsd
    h.clock.advance(40)
    feed(h, GridStatus.CONNECTED, 10)
    h.at(59)
    assert h.engine.status().agents["nas"].fsd
    h.at(1)
    assert not h.engine.status().agents["nas"].fsd


def test_fsd_is_never_set_in_dry_run_or_while_disarmed(make: Make) -> None:
    h = make(debounce_sec=0, dry_run=True)
    feed(h, GridStatus.LOST, 10)
    assert not h.engine.status().agents["nas"].fsd
    h = make(debounce_sec=0)
    h.engine.set_armed(False)
    feed(h, GridStatus.LOST, 10)
    assert not h.engine.status().agents["nas"].fsd


def test_shutdown_by_follows_the_fire_time_then_the_commit_point(make: Make) -> None:
    h = make(debounce_sec=60, delay_sec=30, stale_after_sec=120)
    feed(h, GridStatus.CONNECTED, 50)
    assert h.engine.status().agents["nas"].shutdown_by is None  # grid present
    feed(h, GridStatus.LOST, 50)
    # On battery, healthy, nothing known about the drain: the fail-safe's.
    assert h.engine.status().agents["nas"].shutdown_by == T0 + 120 + 30
    feed(h, GridStatus.LOST, 15)
    assert h.engine.status().agents["nas"].shutdown_by == T0 + 60 + 30
    sent = shutdowns(h.at(60))[0]
    commit = sent.payload["issued_at"] + 30
    assert h.engine.status().agents["nas"].shutdown_by == commit


def test_an_infrastructure_agent_due_makes_every_other_agent_due_first(make: Make) -> None:
    ha = AgentBinding("ha", "ha-secret-for-tests", soc_threshold=30, infrastructure=True)
    h = make([ha, nas()], debounce_sec=60)
    feed(h, GridStatus.LOST, 25)  # under HA's 30, above the NAS's 20
    sent = shutdowns(h.at(60))
    assert [s.agent_id for s in sent] == ["nas", "ha"]  # the others first
    views = h.engine.status().agents
    assert views["nas"].fsd
    assert views["ha"].fsd


def test_a_sentinel_saying_present_after_a_blind_shutdown_aborts_it(make: Make) -> None:
    h = make(stale_after_sec=120, delay_sec=120)
    feed(h, GridStatus.CONNECTED, 50)  # nothing known about the load: stale timeout
    h.engine.update_link(cloud_connected=False, station_online=None)
    assert len(shutdowns(h.at(120))) == 1
    h.clock.advance(10)
    effects = h.engine.update_mains(True)  # mains is there after all
    assert [e.action for e in effects if hasattr(e, "action")] == ["abort"]
    assert h.engine.state is not PolicyState.BLIND
