"""Outages as users live them: every critical battery gets its shutdown on time (issue 11).

Fake clock only. Each test is one scenario from the issue.
"""

from __future__ import annotations

from collections.abc import Callable

from custom_components.ecoflow_power.ecoflow.state import GridStatus
from custom_components.ecoflow_power.policy import (
    AckStatus,
    AuditKind,
    PolicyState,
    PolicyTelemetry,
)
from tests.policy.conftest import T0, Harness, aborts, audits, shutdowns

Make = Callable[..., Harness]


def new_shutdowns(effects: list) -> list:
    """Shutdowns with a new id (resends of the same command left out)."""
    return [s for s in shutdowns(effects) if not s.resend]


# -- the cooldown never delays a due shutdown ----------------------------------------


def test_second_outage_inside_the_cooldown_after_an_abort_fires_on_time(make: Make) -> None:
    h = make(debounce_sec=60, cooldown_sec=600, delay_sec=60, restore_confirm_sec=60)
    h.connected(soc=40)
    h.lost(soc=15)
    first = shutdowns(h.at(60))
    assert len(first) == 1
    h.clock.advance(10)
    assert len(aborts(h.connected(soc=15))) == 1  # grid back before the commit point
    h.at(120)  # two minutes of grid: the outage is over
    # The grid fails again, battery lower still: the debounce, not the cooldown.
    h.lost(soc=12)
    assert shutdowns(h.at(59)) == []
    again = shutdowns(h.at(1))
    assert len(again) == 1
    assert again[0].payload["id"] != first[0].payload["id"]
    assert h.clock.now - T0 < 600


def test_grid_flickering_back_after_an_abort_resumes_at_once(make: Make) -> None:
    h = make(debounce_sec=60, cooldown_sec=600, delay_sec=60, restore_confirm_sec=60)
    h.lost(soc=15)
    assert len(shutdowns(h.at(60))) == 1
    h.clock.advance(10)
    assert len(aborts(h.connected(soc=15))) == 1
    h.clock.advance(15)  # back only 15 s: the same outage
    assert len(shutdowns(h.lost(soc=14))) == 1


def test_dry_run_test_then_a_real_outage_fires_on_time(make: Make) -> None:
    h = make(debounce_sec=60, cooldown_sec=600)
    h.connected(soc=60)
    assert shutdowns(h.engine.manual_shutdown(dry_run=True, reason="test")) == []
    h.clock.advance(30)
    h.lost(soc=18)
    assert shutdowns(h.at(59)) == []
    assert len(shutdowns(h.at(1))) == 1


def test_a_dry_run_manual_shutdown_does_not_hide_the_live_one_from_its_abort(
    make: Make,
) -> None:
    h = make(debounce_sec=0, delay_sec=120)
    live = shutdowns(h.lost(soc=10))[0]
    h.clock.advance(5)
    h.engine.manual_shutdown(dry_run=True, reason="rehearsal")
    h.clock.advance(5)
    sent = aborts(h.connected())
    assert len(sent) == 1
    assert sent[0].payload["reason"].startswith("grid restored")
    record = next(a for a in h.engine.audit_trail if a.kind is AuditKind.ABORT)
    assert record.command_id == sent[0].payload["id"]
    view = h.engine.status().agents["nas"]
    assert view.last_command_id == sent[0].payload["id"]
    assert live.payload["id"] != sent[0].payload["id"]


def test_cooldown_zero_is_valid_and_never_resends_in_a_loop(make: Make) -> None:
    h = make(debounce_sec=0, cooldown_sec=0, delay_sec=30)
    first = shutdowns(h.lost(soc=10))
    assert len(first) == 1
    h.ack("nas", first[0].payload["id"], AckStatus.EXECUTING)
    later = []
    for _ in range(100):
        deadline = h.engine.next_deadline()
        assert deadline is None or deadline > h.clock.now
        h.clock.advance(5)
        later += h.lost(soc=10) + h.engine.tick()
    assert shutdowns(later) == []  # the host is going down; nothing new is due


def test_no_second_shutdown_while_one_is_pending_on_the_agent(make: Make) -> None:
    h = make(debounce_sec=0, cooldown_sec=0, delay_sec=30)
    h.connected()
    manual = shutdowns(h.engine.manual_shutdown(delay_sec=300))
    assert len(manual) == 1
    h.clock.advance(10)
    assert new_shutdowns(h.lost(soc=10) + h.at(100)) == []


# -- a flapping grid ---------------------------------------------------------------------


def test_flapping_40_s_lost_15_s_present_ends_in_a_shutdown(make: Make) -> None:
    h = make(debounce_sec=60, restore_confirm_sec=60)
    sent = []
    for _ in range(4):
        for _ in range(8):  # 40 s on battery, a reading every 5 s
            sent += h.lost(soc=15)
            h.clock.advance(5)
        for _ in range(3):  # 15 s of grid
            sent += h.connected(soc=15)
            h.clock.advance(5)
        if shutdowns(sent):
            break
    assert len(new_shutdowns(sent)) == 1
    # 60 s of accumulated on-battery time: 40 s, then 20 s into the second stretch.
    record = next(a for a in h.engine.audit_trail if a.kind is AuditKind.SHUTDOWN)
    assert record.at == T0 + 40 + 15 + 20


def test_a_short_blip_of_grid_does_not_restart_the_debounce(make: Make) -> None:
    h = make(debounce_sec=60, restore_confirm_sec=60)
    h.lost(soc=15)
    h.clock.advance(50)
    h.connected(soc=15)
    assert h.engine.pending_fire_at() is None  # nothing fires while the grid is present
    h.clock.advance(5)
    h.lost(soc=15)
    assert h.engine.pending_fire_at() == h.clock.now + 10


# -- the runtime rule ----------------------------------------------------------------------


def test_runtime_jitter_around_the_limit_still_fires(make: Make) -> None:
    h = make(debounce_sec=60, runtime_threshold_min=15, runtime_hysteresis_min=5)
    sent = []
    for i in range(8):
        sent += h.lost(soc=80, remaining=14 if i % 2 == 0 else 17)
        h.clock.advance(10)
    sent += h.engine.tick()
    assert len(new_shutdowns(sent)) == 1


def test_runtime_recovering_for_good_cancels_the_timer(make: Make) -> None:
    h = make(debounce_sec=900, runtime_threshold_min=15, runtime_hysteresis_min=5)
    h.lost(soc=80, remaining=14)
    effects = []
    for _ in range(30):
        h.clock.advance(10)
        effects += h.lost(soc=80, remaining=45)  # the load went away
    assert AuditKind.TIMER_CANCELLED in [a.kind for a in audits(effects)]
    assert h.engine.pending_fire_at() is None
    # One reading above the band is not enough: the smoothed figure must agree.
    h.lost(soc=80, remaining=14)
    h.clock.advance(10)
    first = audits(h.lost(soc=80, remaining=45))
    assert AuditKind.TIMER_CANCELLED not in [a.kind for a in first]


def test_runtime_not_applicable_mid_timer_holds_the_timer(make: Make) -> None:
    h = make(debounce_sec=60, runtime_threshold_min=15)
    h.lost(soc=80, remaining=10)
    h.clock.advance(30)
    # 5939 / 5999 reach the engine as None ("not applicable").
    h.lost(soc=80, remaining=None)
    assert len(shutdowns(h.at(30))) == 1


# -- unacknowledged is not committed ---------------------------------------------------


def test_agent_silent_after_a_sent_shutdown_is_unacknowledged_and_gets_it_again(
    make: Make,
) -> None:
    h = make(debounce_sec=0, delay_sec=60, ttl_sec=300, resend_interval_sec=15)
    cmd = shutdowns(h.lost(soc=10))[0]
    h.at(61)
    assert h.engine.state is PolicyState.UNACKNOWLEDGED
    view = h.engine.status().agents["nas"]
    assert view.unacknowledged
    assert not view.committed
    # The agent reconnects after the commit point (it was down when the
    # command went out): a fresh shutdown, with the full delay ahead of it.
    h.clock.advance(10)
    again = new_shutdowns(h.engine.agent_online("nas", True, since=h.clock.now - 1))
    assert len(again) == 1
    assert again[0].payload["id"] != cmd.payload["id"]
    h.ack("nas", again[0].payload["id"], AckStatus.EXECUTING)
    assert h.engine.state is PolicyState.COMMITTED
    assert not h.engine.status().agents["nas"].unacknowledged


def test_agent_reconnecting_before_the_commit_point_gets_the_same_command(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=180, ttl_sec=300, resend_interval_sec=15)
    cmd = shutdowns(h.lost(soc=10))[0]
    h.at(100)
    h.engine.agent_online("nas", False)
    h.clock.advance(10)
    again = shutdowns(h.engine.agent_online("nas", True, since=h.clock.now))
    assert [(c.payload, c.resend) for c in again] == [(cmd.payload, True)]


def test_agent_back_after_its_command_expired_gets_a_fresh_shutdown(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=60, ttl_sec=120, cooldown_sec=0)
    first = shutdowns(h.lost(soc=10))[0]
    h.at(200)
    assert shutdowns(h.lost(soc=10)) == []  # cooldown 0: no timed retry
    fresh = shutdowns(h.engine.agent_online("nas", True, since=h.clock.now))
    assert len(fresh) == 1
    assert fresh[0].payload["id"] != first.payload["id"]


def test_host_restarted_during_the_outage_gets_a_new_shutdown(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=30, cooldown_sec=600)
    first = shutdowns(h.lost(soc=10))[0]
    h.ack("nas", first.payload["id"], AckStatus.EXECUTING)
    h.at(40)
    h.engine.agent_online("nas", False)
    h.clock.advance(100)
    assert len(shutdowns(h.engine.agent_online("nas", True, since=h.clock.now))) == 1


def test_an_online_agent_that_acknowledged_is_not_sent_it_twice(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=60)
    cmd = shutdowns(h.lost(soc=10))[0]
    h.ack("nas", cmd.payload["id"], AckStatus.SCHEDULED, execute_at=int(T0) + 60)
    h.clock.advance(5)
    assert shutdowns(h.engine.agent_online("nas", True, since=T0 - 3600)) == []


# -- disarm ---------------------------------------------------------------------------------


def test_disarm_aborts_shutdowns_pending_before_their_commit_point(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=60)
    cmd = shutdowns(h.lost(soc=10))[0]
    h.clock.advance(10)
    effects = h.engine.set_armed(False)
    sent = aborts(effects)
    assert len(sent) == 1
    record = next(a for a in audits(effects) if a.kind is AuditKind.ABORT)
    assert "disarmed" in record.reason
    assert record.command_id == sent[0].payload["id"]
    assert sent[0].payload["issued_at"] + sent[0].payload["ttl_sec"] <= (
        cmd.payload["issued_at"] + 60
    )
    assert not h.engine.status().agents["nas"].fsd
    # Re-armed while still critical: a fresh shutdown at once.
    assert len(shutdowns(h.engine.set_armed(True))) == 1


def test_disarm_after_the_commit_point_says_it_is_too_late(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=60)
    shutdowns(h.lost(soc=10))
    h.clock.advance(61)
    effects = h.engine.set_armed(False)
    assert aborts(effects) == []
    assert AuditKind.ABORT_TOO_LATE in [a.kind for a in audits(effects)]


# -- the clock ------------------------------------------------------------------------------


def test_a_backward_clock_step_does_not_make_the_engine_ignore_readings(make: Make) -> None:
    h = make(debounce_sec=60, stale_after_sec=120)
    h.connected(soc=50)
    h.clock.advance(30)
    h.clock.now -= 3600  # NTP corrects Home Assistant's clock by an hour
    h.lost(soc=10)
    assert AuditKind.CLOCK_STEP in [a.kind for a in h.engine.audit_trail]
    assert h.engine.pending_fire_at() == h.clock.now + 60
    assert shutdowns(h.at(59)) == []
    assert len(shutdowns(h.at(1))) == 1


def test_a_backward_clock_step_keeps_a_running_timer_on_time(make: Make) -> None:
    h = make(debounce_sec=60, delay_sec=60)
    h.lost(soc=10)
    h.clock.advance(30)
    h.lost(soc=10)
    # Stepped back right after a reading (readings come every few seconds;
    # the time between the last input and the step is what the engine loses).
    h.clock.now -= 600
    h.engine.update(PolicyTelemetry(GridStatus.LOST, 10, None, h.clock.now))
    assert shutdowns(h.at(29)) == []
    assert len(shutdowns(h.at(1))) == 1


def test_a_backward_clock_step_keeps_resending_an_unacknowledged_shutdown(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=60, ttl_sec=300, resend_interval_sec=15)
    h.engine.agent_online("nas", True)
    first = shutdowns(h.lost(soc=10))[0]
    h.clock.now -= 3600  # the agent never acks; NTP moves the clock back an hour
    h.lost(soc=10)
    # Resent 15 s after it went out, not an hour later; the payload is unchanged.
    assert shutdowns(h.at(14)) == []
    resent = shutdowns(h.at(1))
    assert [(s.resend, s.payload) for s in resent] == [(True, first.payload)]
    # Its ttl still ends 300 s after it was sent.
    h.at(284)
    assert h.engine.to_dict()["agents"]["nas"]["shutdown"]["closed"] is False
    effects = h.at(1)
    assert AuditKind.UNACKNOWLEDGED in [a.kind for a in audits(effects)]
    # The times shown in diagnostics moved back with the clock.
    stored = h.engine.to_dict()["agents"]["nas"]
    assert stored["last_shutdown_at"] == T0 - 3600
    assert stored["online_at"] == T0 - 3600


# -- an agent that lost its job -------------------------------------------------------------


def test_agent_restarted_without_its_job_gets_a_fresh_shutdown_at_once(make: Make) -> None:
    """A `duplicate` ack saying `job: none`: the agent knows the id but lost the countdown."""
    from custom_components.ecoflow_power.policy.protocol import JobState

    h = make(debounce_sec=0, delay_sec=60, ttl_sec=300, cooldown_sec=600)
    first = shutdowns(h.lost(soc=10))[0]
    h.ack("nas", first.payload["id"], AckStatus.SCHEDULED, execute_at=int(T0) + 60)
    h.clock.advance(20)
    effects = h.ack("nas", first.payload["id"], AckStatus.DUPLICATE, job=JobState.NONE)
    fresh = new_shutdowns(effects)
    assert len(fresh) == 1, "the cooldown must not hold back a shutdown the agent lost"
    assert fresh[0].payload["id"] != first.payload["id"]
    assert any(a.kind is AuditKind.AGENT_ONLINE for a in audits(effects))


def test_a_duplicate_ack_of_a_pending_job_changes_nothing(make: Make) -> None:
    from custom_components.ecoflow_power.policy.protocol import JobState

    h = make(debounce_sec=0, delay_sec=60)
    first = shutdowns(h.lost(soc=10))[0]
    h.ack("nas", first.payload["id"], AckStatus.SCHEDULED, execute_at=int(T0) + 60)
    h.clock.advance(20)
    effects = h.ack("nas", first.payload["id"], AckStatus.DUPLICATE, job=JobState.PENDING)
    assert new_shutdowns(effects) == []
    assert h.engine.state is PolicyState.SHUTDOWN_SENT


def test_a_late_ack_of_the_last_outages_abort_leaves_the_new_shutdown_live(make: Make) -> None:
    """Queued acks come in late after a broker restart: an old abort's ack names its own ref."""
    h = make(debounce_sec=60, cooldown_sec=600, delay_sec=60, restore_confirm_sec=60)
    h.connected(soc=40)
    h.lost(soc=15)
    (first,) = shutdowns(h.at(60))
    h.clock.advance(10)
    (abort,) = aborts(h.connected(soc=15))
    h.at(120)
    h.lost(soc=12)
    (second,) = shutdowns(h.at(60))
    # Now the agent's "aborted" for the first outage's abort arrives.
    h.ack("nas", abort.payload["id"], AckStatus.ABORTED, ref=first.payload["id"])
    view = h.engine.status().agents["nas"]
    assert view.commit_at is not None  # the new shutdown is still live
    assert h.engine.state is PolicyState.SHUTDOWN_SENT
    # Still live: the grid coming back aborts it, naming it.
    (abort_new,) = aborts(h.connected(soc=12))
    assert abort_new.payload["ref"] == second.payload["id"]


def test_an_aborted_shutdown_the_agent_lost_is_not_sent_again(make: Make) -> None:
    from custom_components.ecoflow_power.policy.protocol import JobState

    h = make(debounce_sec=0, delay_sec=60, restore_confirm_sec=60)
    (first,) = shutdowns(h.lost(soc=10))
    h.clock.advance(10)
    assert len(aborts(h.connected(soc=10))) == 1
    # The agent restarted and answers a queued resend with "duplicate, no job".
    effects = h.ack("nas", first.payload["id"], AckStatus.DUPLICATE, job=JobState.NONE)
    assert new_shutdowns(effects) == []
