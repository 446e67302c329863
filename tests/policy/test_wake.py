"""The restore rule: wake the hosts that shut down, in order, once power is back for good."""

from __future__ import annotations

import pytest

from custom_components.ecoflow_power.ecoflow.state import GridStatus
from custom_components.ecoflow_power.policy.wake import (
    EmitWakeEvent,
    SendMagicPacket,
    WakeEvent,
    WakePlanner,
    WakeSettings,
    WakeTarget,
)

from .conftest import FakeClock

LOST, PRESENT = GridStatus.LOST, GridStatus.CONNECTED
NAS = WakeTarget("nas", "aa:bb:cc:00:00:01", "127.0.0.1", 9, infrastructure=True)
VM = WakeTarget("vm", "aa:bb:cc:00:00:02")
DESKTOP = WakeTarget("desktop", "aa:bb:cc:00:00:03")
SETTINGS = WakeSettings(
    enabled=True, stable_sec=300, restart_soc=30, gap_sec=30, retry_sec=120, max_attempts=3
)


def packets(effects) -> list[tuple[str, int]]:
    return [(e.host_id, e.attempt) for e in effects if isinstance(e, SendMagicPacket)]


def events(effects) -> list[WakeEvent]:
    return [e.event_type for e in effects if isinstance(e, EmitWakeEvent)]


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


def outage_with_commits(clock: FakeClock, *hosts: str, settings=SETTINGS) -> WakePlanner:
    planner = WakePlanner(settings, [NAS, VM, DESKTOP], clock=clock)
    planner.update(LOST, 18)
    for host in hosts:
        planner.note_committed(host)
    clock.advance(600)
    return planner


def run_until(planner: WakePlanner, clock: FakeClock, until: float) -> list:
    """Tick at every deadline the planner asks for, up to `until` (as the glue does)."""
    out: list = []
    while (deadline := planner.next_deadline()) is not None and deadline <= until:
        clock.now = max(clock.now, deadline)
        out += planner.tick()
    clock.now = max(clock.now, until)
    return out


def test_committed_hosts_are_woken_after_the_grid_is_stable_infrastructure_first(clock):
    planner = outage_with_commits(clock, "vm", "nas")
    start = clock.now
    assert packets(planner.update(PRESENT, 40)) == []
    assert planner.next_deadline() == start + 300

    effects = run_until(planner, clock, start + 300)
    assert events(effects) == [WakeEvent.POWER_RESTORED]
    assert packets(effects) == [("nas", 1)]  # infrastructure first
    nas_packet = next(e for e in effects if isinstance(e, SendMagicPacket))
    assert (nas_packet.mac, nas_packet.broadcast, nas_packet.port) == (NAS.mac, "127.0.0.1", 9)

    effects = run_until(planner, clock, start + 330)
    assert packets(effects) == [("vm", 1)]  # then the rest, one gap later


def test_grid_failing_again_within_the_stable_time_wakes_nobody(clock):
    planner = outage_with_commits(clock, "nas")
    planner.update(PRESENT, 40)
    clock.advance(200)
    assert packets(planner.update(LOST, 39)) == []
    assert planner.next_deadline() is None
    clock.advance(1000)
    assert packets(planner.tick()) == []
    assert planner.owed == ("nas",)


def test_grid_failing_during_the_wake_up_stops_it_and_the_next_restoration_resumes(clock):
    planner = outage_with_commits(clock, "nas", "vm")
    planner.update(PRESENT, 40)
    assert packets(run_until(planner, clock, clock.now + 300)) == [("nas", 1)]
    clock.advance(10)
    planner.update(LOST, 39)
    assert packets(run_until(planner, clock, clock.now + 1000)) == []

    planner.update(PRESENT, 45)
    effects = run_until(planner, clock, clock.now + 300)
    assert packets(effects) == [("nas", 1)]  # attempts start over with the new restoration


def test_low_battery_after_the_stable_time_waits_for_the_restart_level(clock):
    planner = outage_with_commits(clock, "nas")
    planner.update(PRESENT, 12)
    effects = run_until(planner, clock, clock.now + 400)
    assert packets(effects) == []
    assert planner.next_deadline() is None  # only a new reading can change it (no busy loop)
    assert packets(planner.update(PRESENT, 31)) == [("nas", 1)]


def test_a_host_that_comes_online_stops_its_retries(clock):
    planner = outage_with_commits(clock, "nas")
    planner.update(PRESENT, 40)
    run_until(planner, clock, clock.now + 300)
    clock.advance(45)
    assert events(planner.host_online("nas")) == [WakeEvent.HOST_WOKEN]
    assert packets(run_until(planner, clock, clock.now + 1000)) == []
    assert planner.owed == ()


def test_a_host_that_never_answers_is_retried_then_reported(clock):
    planner = outage_with_commits(clock, "vm")
    planner.update(PRESENT, 40)
    effects = run_until(planner, clock, clock.now + 300 + 3 * 120)
    assert packets(effects) == [("vm", 1), ("vm", 2), ("vm", 3)]
    assert events(effects) == [WakeEvent.POWER_RESTORED, WakeEvent.HOST_WAKE_FAILED]
    assert planner.next_deadline() is None


def test_hosts_not_shut_down_by_us_are_not_woken(clock):
    planner = outage_with_commits(clock)  # nobody committed
    planner.update(PRESENT, 80)
    assert run_until(planner, clock, clock.now + 1000) == []


def test_a_host_back_by_itself_gets_no_packet_and_no_event(clock):
    planner = outage_with_commits(clock, "desktop")
    planner.update(PRESENT, 80)
    assert planner.host_online("desktop") == []
    assert run_until(planner, clock, clock.now + 1000) == []


def test_disabled_rule_sends_nothing(clock):
    planner = outage_with_commits(clock, "nas", settings=WakeSettings(enabled=False))
    planner.update(PRESENT, 80)
    assert planner.next_deadline() is None
    clock.advance(1000)
    assert planner.tick() == []


def test_hosts_owed_a_wake_up_survive_a_restart(clock):
    planner = outage_with_commits(clock, "nas")
    stored = planner.to_dict()
    restored = WakePlanner(SETTINGS, [NAS, VM], clock=clock)
    restored.restore(stored)
    assert restored.owed == ("nas",)
    restored.update(PRESENT, 50)
    assert packets(run_until(restored, clock, clock.now + 300)) == [("nas", 1)]


def test_unknown_grid_during_the_stable_window_restarts_it(clock):
    planner = outage_with_commits(clock, "nas")
    planner.update(PRESENT, 50)
    clock.advance(250)
    planner.update(GridStatus.UNKNOWN, 50)
    clock.advance(60)
    planner.update(PRESENT, 50)
    assert packets(run_until(planner, clock, clock.now + 299)) == []
    assert packets(run_until(planner, clock, clock.now + 1)) == [("nas", 1)]


@pytest.mark.parametrize(
    ("bad", "match"),
    [
        ({"stable_sec": -1}, "stable_sec"),
        ({"retry_sec": 0}, "retry_sec"),
        ({"max_attempts": 0}, "max_attempts"),
        ({"restart_soc": 101}, "restart_soc"),
    ],
)
def test_invalid_restore_settings_are_refused(bad, match):
    with pytest.raises(ValueError, match=match):
        WakeSettings(**bad)
