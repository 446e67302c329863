"""Policy engine rules, one by one, with a fake clock (no sleeping)."""

from __future__ import annotations

from collections.abc import Callable
import json

import pytest

from custom_components.ecoflow_power.ecoflow.state import GridStatus
from custom_components.ecoflow_power.policy import (
    AckStatus,
    AgentBinding,
    AuditKind,
    CommandAction,
    DecisionMode,
    PolicyEngine,
    PolicyEvent,
    PolicySettings,
    PolicyState,
    PolicyTelemetry,
    RepairChange,
    verify_message,
)
from tests.policy.conftest import (
    SECRET_NAS,
    SECRET_VM,
    T0,
    Harness,
    Ids,
    aborts,
    audits,
    events,
    nas,
    repairs,
    shutdowns,
    vm,
)

Make = Callable[..., Harness]


# -- critical condition and debounce ----------------------------------------------


def test_low_soc_on_grid_never_shuts_down(make: Make) -> None:
    h = make()
    effects = h.connected(soc=1)
    for _ in range(60):
        effects += h.at(60) + h.connected(soc=1)
    assert shutdowns(effects) == []
    assert h.engine.state is PolicyState.NORMAL


def test_fires_after_debounce_not_before(make: Make) -> None:
    h = make(debounce_sec=60)
    started = h.lost(soc=19.5)
    assert shutdowns(started) == []
    assert h.engine.next_deadline() == T0 + 60
    assert h.engine.pending_fire_at() == T0 + 60
    assert h.engine.state is PolicyState.CRITICAL_PENDING
    assert shutdowns(h.at(59.9)) == []
    fired = shutdowns(h.at(0.1))
    assert len(fired) == 1
    payload = fired[0].payload
    assert payload["action"] == "shutdown"
    assert payload["reason"] == "grid lost and soc_min 19.5 <= 20"
    assert payload["device"] == "R651ZAB5XXXX0001"
    assert (payload["delay_sec"], payload["ttl_sec"]) == (60, 300)
    assert payload["issued_at"] == int(T0 + 60)
    assert verify_message(payload, SECRET_NAS)
    assert h.engine.state is PolicyState.SHUTDOWN_SENT


def test_soc_at_threshold_is_critical(make: Make) -> None:
    h = make(debounce_sec=0)
    assert len(shutdowns(h.lost(soc=20))) == 1


def test_zero_debounce_fires_on_the_reading(make: Make) -> None:
    h = make(debounce_sec=0)
    assert shutdowns(h.lost(soc=21)) == []
    assert len(shutdowns(h.lost(soc=10))) == 1


def test_per_agent_thresholds_and_delay(make: Make) -> None:
    h = make([nas(delay_sec=120), vm()], debounce_sec=30)
    h.lost(soc=35)  # under the VM's 40, above the NAS's 20
    fired = h.at(30)
    assert [p.agent_id for p in shutdowns(fired)] == ["vm"]
    assert verify_message(shutdowns(fired)[0].payload, SECRET_VM)
    assert shutdowns(fired)[0].payload["delay_sec"] == 60  # setting
    h.ack("vm", shutdowns(fired)[0].payload["id"], AckStatus.RECEIVED)
    h.lost(soc=19)
    fired = h.at(30)
    assert [p.agent_id for p in shutdowns(fired)] == ["nas"]
    assert shutdowns(fired)[0].payload["delay_sec"] == 120  # override


def test_runtime_rule(make: Make) -> None:
    h = make(debounce_sec=10, runtime_threshold_min=15)
    h.lost(soc=80, remaining=16)
    assert shutdowns(h.at(20)) == []
    h.lost(soc=80, remaining=15)
    fired = shutdowns(h.at(10))
    assert len(fired) == 1
    assert fired[0].payload["reason"] == "grid lost and remaining 15 min <= 15"


def test_runtime_rule_off_by_default(make: Make) -> None:
    h = make(debounce_sec=0)
    assert shutdowns(h.lost(soc=80, remaining=1)) == []


def test_runtime_critical_is_not_broken_by_high_soc(make: Make) -> None:
    h = make(debounce_sec=60, runtime_threshold_min=15)
    h.lost(soc=80, remaining=10)
    h.clock.advance(30)
    h.lost(soc=80, remaining=12)
    assert len(shutdowns(h.at(30))) == 1


def test_grid_back_for_the_restore_confirmation_cancels_the_timer(make: Make) -> None:
    h = make(debounce_sec=60, restore_confirm_sec=60)
    h.lost(soc=10)
    h.clock.advance(30)
    effects = h.connected(soc=10)
    assert AuditKind.TIMER_PAUSED in [a.kind for a in audits(effects)]
    assert h.engine.next_deadline() == h.clock.now + 60
    effects = h.at(60)
    assert AuditKind.TIMER_CANCELLED in [a.kind for a in audits(effects)]
    h.clock.advance(10)
    h.lost(soc=10)  # a new timer starts from here
    assert shutdowns(h.at(59)) == []
    assert len(shutdowns(h.at(1))) == 1


def test_zero_restore_confirmation_cancels_at_once(make: Make) -> None:
    h = make(debounce_sec=60, restore_confirm_sec=0)
    h.lost(soc=10)
    h.clock.advance(30)
    effects = h.connected(soc=10)
    assert AuditKind.TIMER_CANCELLED in [a.kind for a in audits(effects)]
    h.clock.advance(10)
    h.lost(soc=10)
    assert shutdowns(h.at(59)) == []
    assert len(shutdowns(h.at(1))) == 1


def test_soc_above_threshold_plus_hysteresis_cancels(make: Make) -> None:
    h = make(debounce_sec=60, hysteresis_pct=2)
    h.lost(soc=19)
    h.clock.advance(30)
    h.lost(soc=22.5)
    assert shutdowns(h.at(60)) == []
    assert h.engine.state is PolicyState.ON_BATTERY


def test_soc_inside_hysteresis_band_keeps_timer(make: Make) -> None:
    h = make(debounce_sec=60, hysteresis_pct=2)
    h.lost(soc=20)
    h.clock.advance(20)
    h.lost(soc=21.5)
    h.clock.advance(20)
    h.lost(soc=22)  # threshold + hysteresis exactly: still held
    assert len(shutdowns(h.at(20))) == 1


def test_hysteresis_band_does_not_start_a_timer(make: Make) -> None:
    h = make(debounce_sec=10)
    h.lost(soc=21)
    assert shutdowns(h.at(100)) == []
    assert h.engine.pending_fire_at() is None


def test_unknown_reading_neither_breaks_nor_starts(make: Make) -> None:
    h = make(debounce_sec=60)
    h.unknown(soc=5)  # never known: nothing starts
    assert h.engine.pending_fire_at() is None
    h.lost(soc=10)
    h.clock.advance(30)
    h.unknown(soc=50)
    assert h.engine.pending_fire_at() == T0 + 60
    assert len(shutdowns(h.at(30))) == 1


def test_lost_without_soc_does_not_break(make: Make) -> None:
    h = make(debounce_sec=60)
    h.lost(soc=10)
    h.clock.advance(30)
    h.lost(soc=None)
    assert len(shutdowns(h.at(30))) == 1


# -- staleness -------------------------------------------------------------------------


def test_stale_after_loss_shuts_down_every_agent(make: Make) -> None:
    h = make([nas(), vm()], stale_after_sec=120, debounce_sec=60)
    h.lost(soc=80)  # well above both thresholds
    assert h.engine.next_deadline() == T0 + 120
    assert shutdowns(h.at(119)) == []
    effects = h.at(1)
    assert sorted(p.agent_id for p in shutdowns(effects)) == ["nas", "vm"]
    assert RepairChange("telemetry_stale", True) in repairs(effects)
    assert "telemetry stale" in shutdowns(effects)[0].payload["reason"]
    assert events(effects, PolicyEvent.BATTERY_CRITICAL)[0].data["agent_id"] is None
    # Telemetry back: repair cleared, and no second shutdown (cooldown).
    back = h.lost(soc=80)
    assert RepairChange("telemetry_stale", False) in repairs(back)
    assert shutdowns(back + h.at(300)) == []


def test_unknown_readings_after_loss_count_as_silence(make: Make) -> None:
    h = make(stale_after_sec=120)
    h.lost(soc=80)
    fired = []
    for _ in range(12):
        h.clock.advance(10)
        fired += h.unknown(soc=80)
    assert len(shutdowns(fired)) == 1


def test_lost_without_battery_figures_is_not_fresh(make: Make) -> None:
    h = make(stale_after_sec=120)
    h.lost(soc=80)
    fired = []
    for _ in range(12):
        h.clock.advance(10)
        fired += h.lost(soc=None)
    assert len(shutdowns(fired)) == 1


def test_stale_while_connected_raises_repair_only(make: Make) -> None:
    h = make(stale_after_sec=120)
    h.connected()
    effects = h.at(200)
    assert shutdowns(effects) == []
    assert repairs(effects) == [RepairChange("telemetry_stale", True)]
    assert h.engine.status().telemetry_stale
    assert repairs(h.at(200)) == []  # raised once
    assert repairs(h.connected()) == [RepairChange("telemetry_stale", False)]
    assert not h.engine.status().telemetry_stale


def test_grid_never_known_shuts_nothing_down_and_says_it_is_unprotected(make: Make) -> None:
    h = make()
    assert h.engine.next_deadline() == T0 + 300
    effects = h.unknown(soc=1) + h.at(299)
    assert effects == []
    assert h.engine.state is PolicyState.NORMAL
    effects = h.at(10_000)
    assert shutdowns(effects) == []
    assert repairs(effects) == [RepairChange("policy_unprotected", True)]
    assert h.engine.state is PolicyState.UNPROTECTED
    assert h.engine.next_deadline() is None
    assert repairs(h.connected()) == [RepairChange("policy_unprotected", False)]


def test_stale_fail_safe_respects_disarm(make: Make) -> None:
    h = make(stale_after_sec=120)
    h.engine.set_armed(False)
    h.lost(soc=80)
    effects = h.at(120)
    assert shutdowns(effects) == []
    assert [a.mode for a in audits(effects) if a.kind is AuditKind.SHUTDOWN] == [
        DecisionMode.DISARMED
    ]


def test_old_reading_does_not_refresh(make: Make) -> None:
    h = make(stale_after_sec=120)
    h.lost(soc=80)
    h.clock.advance(119)
    # A reading stamped at T0 + 10 is older than the first: ignored.
    h.engine.update(PolicyTelemetry(GridStatus.LOST, 80, None, T0 - 10))
    assert len(shutdowns(h.at(1))) == 1


def test_future_stamped_reading_does_not_blind_the_engine(make: Make) -> None:
    h = make(debounce_sec=0)
    h.engine.update(PolicyTelemetry(GridStatus.CONNECTED, 80, None, T0 + 3600))
    h.clock.advance(5)
    assert len(shutdowns(h.lost(soc=5))) == 1


# -- commands: cooldown, resend, abort -------------------------------------------------


def test_cooldown_blocks_second_shutdown_then_refires(make: Make) -> None:
    h = make(debounce_sec=0, cooldown_sec=600)
    first = shutdowns(h.lost(soc=10))
    h.ack("nas", first[0].payload["id"], AckStatus.RECEIVED)
    later: list = []
    for _ in range(59):
        h.clock.advance(10)
        later += h.lost(soc=10)
    assert shutdowns(later) == []
    assert h.engine.next_deadline() == T0 + 600
    again = shutdowns(h.at(10))
    assert len(again) == 1
    assert again[0].payload["id"] != first[0].payload["id"]


def test_resend_same_payload_until_ttl(make: Make) -> None:
    h = make(debounce_sec=0, resend_interval_sec=15, ttl_sec=60, delay_sec=30)
    original = shutdowns(h.lost(soc=10))[0]
    assert h.engine.next_deadline() == T0 + 15
    resent = []
    for _ in range(6):
        resent += shutdowns(h.at(15))
    assert len(resent) == 3  # at +15, +30, +45; +60 is issued_at + ttl
    assert all(r.payload == original.payload and r.resend for r in resent)
    assert any(a.kind is AuditKind.UNACKNOWLEDGED for a in h.engine.audit_trail)


def test_any_ack_stops_resend(make: Make) -> None:
    h = make(debounce_sec=0)
    cmd = shutdowns(h.lost(soc=10))[0]
    h.ack("nas", cmd.payload["id"], AckStatus.RECEIVED)
    assert shutdowns(h.at(15) + h.at(15)) == []
    view = h.engine.status().agents["nas"]
    assert view.acknowledged
    assert view.last_ack_status is AckStatus.RECEIVED
    assert view.last_command_id == cmd.payload["id"]
    assert view.last_command_action is CommandAction.SHUTDOWN


def test_abort_when_grid_returns_before_commit(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=60)
    shutdown = shutdowns(h.lost(soc=10))[0]
    h.clock.advance(20)
    effects = h.connected()
    sent = aborts(effects)
    assert len(sent) == 1
    payload = sent[0].payload
    assert verify_message(payload, SECRET_NAS)
    assert payload["delay_sec"] == 0
    # Expires with the shutdown's commit point.
    assert payload["issued_at"] + payload["ttl_sec"] == shutdown.payload["issued_at"] + 60
    event = events(effects, PolicyEvent.SHUTDOWN_ABORTED)[0]
    assert event.data["ref"] == shutdown.payload["id"]
    assert events(effects, PolicyEvent.GRID_RESTORED)
    # The shutdown is no longer re-sent; the abort is, but only before the commit.
    commit_at = shutdown.payload["issued_at"] + 60
    for _ in range(5):
        step = h.at(15)
        assert shutdowns(step) == []
        assert all(h.clock.now < commit_at for _ in aborts(step))
    assert h.engine.state is PolicyState.NORMAL


def test_abort_resends_stop_at_commit_point(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=60, resend_interval_sec=15)
    h.lost(soc=10)
    h.clock.advance(50)
    assert len(aborts(h.connected())) == 1  # ttl 10
    assert aborts(h.at(15)) == []


def test_no_abort_after_commit_point(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=60)
    h.lost(soc=10)
    h.clock.advance(60)
    effects = h.connected()
    assert aborts(effects) == []
    assert AuditKind.ABORT_TOO_LATE in [a.kind for a in audits(effects)]
    assert shutdowns(h.at(15)) == []  # and no late copy of the shutdown either


def test_no_abort_once_agent_reports_executing(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=60)
    cmd = shutdowns(h.lost(soc=10))[0]
    h.clock.advance(5)
    h.ack("nas", cmd.payload["id"], AckStatus.EXECUTING)  # agent clock ahead
    assert h.engine.state is PolicyState.COMMITTED
    assert h.engine.status().agents["nas"].committed
    assert aborts(h.connected()) == []


def test_abort_only_once_per_restoration(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=120)
    h.lost(soc=10)
    h.clock.advance(5)
    assert len(aborts(h.connected())) == 1
    h.clock.advance(5)
    assert aborts(h.connected()) == []


# -- armed / dry run -----------------------------------------------------------------


def test_disarmed_records_once_publishes_nothing(make: Make) -> None:
    h = make(debounce_sec=10)
    h.engine.set_armed(False)
    assert h.engine.state is PolicyState.DISARMED
    h.lost(soc=10)
    effects = h.at(10) + h.at(10) + h.lost(soc=10)
    assert shutdowns(effects) == []
    decisions = [a for a in audits(effects) if a.kind is AuditKind.SHUTDOWN]
    assert [d.mode for d in decisions] == [DecisionMode.DISARMED]
    sent = events(effects, PolicyEvent.SHUTDOWN_SENT)
    assert [e.data["published"] for e in sent] == [False]
    assert h.engine.pending_fire_at() is None
    # Nothing to tick for but the stale fail-safe (also only recorded while disarmed).
    assert h.engine.next_deadline() == h.clock.now + 120
    # Re-arming with the condition still due fires at once (no cooldown started).
    fired = shutdowns(h.engine.set_armed(True))
    assert len(fired) == 1


def test_disarmed_holds_resends_and_still_aborts_a_committed_ones_copy(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=60)
    cmd = shutdowns(h.lost(soc=10))[0]
    h.ack("nas", cmd.payload["id"], AckStatus.EXECUTING)
    # Too late to abort: the host is going down.
    assert aborts(h.engine.set_armed(False)) == []
    assert shutdowns(h.at(15)) == []


def test_dry_run_decides_and_records_without_publishing(make: Make) -> None:
    h = make(debounce_sec=0, dry_run=True, delay_sec=60)
    effects = h.lost(soc=10)
    assert shutdowns(effects) == []
    sent = events(effects, PolicyEvent.SHUTDOWN_SENT)[0]
    assert sent.data["mode"] == "dry_run"
    assert not sent.data["published"]
    assert h.engine.state is PolicyState.SHUTDOWN_SENT
    assert shutdowns(h.at(15)) == []  # no resends
    h.clock.advance(5)
    effects = h.connected()
    assert aborts(effects) == []  # the abort is decided and recorded only
    assert events(effects, PolicyEvent.SHUTDOWN_ABORTED)[0].data["mode"] == "dry_run"
    h.clock.advance(10)
    assert shutdowns(h.lost(soc=10) + h.at(100)) == []  # the cooldown applies too


# -- manual commands -----------------------------------------------------------------


def test_manual_shutdown_bypasses_cooldown_and_disarm(make: Make) -> None:
    h = make([nas(), vm()], debounce_sec=0)
    fired = shutdowns(h.lost(soc=10))  # both fire
    for cmd in fired:
        h.ack(cmd.agent_id, cmd.payload["id"], AckStatus.EXECUTING)
    h.engine.set_armed(False)
    h.clock.advance(30)
    effects = h.engine.manual_shutdown(["nas"], delay_sec=5, reason="maintenance\nnow")
    sent = shutdowns(effects)
    assert [s.agent_id for s in sent] == ["nas"]
    assert sent[0].payload["delay_sec"] == 5
    assert sent[0].payload["reason"] == "maintenance now"
    record = next(a for a in audits(effects) if a.kind is AuditKind.MANUAL_SHUTDOWN)
    assert "cooldown bypassed" in record.reason
    assert "armed switch bypassed" in record.reason
    assert events(effects, PolicyEvent.SHUTDOWN_SENT)[0].data["manual"]


def test_manual_shutdown_not_auto_aborted_and_restarts_cooldown(make: Make) -> None:
    h = make(debounce_sec=0, cooldown_sec=600)
    h.connected()
    cmd = shutdowns(h.engine.manual_shutdown())[0]
    assert cmd.payload["delay_sec"] == 60
    h.clock.advance(5)
    assert aborts(h.connected()) == []
    h.clock.advance(5)
    assert shutdowns(h.lost(soc=10)) == []  # cooldown from the manual one
    assert h.engine.pending_fire_at() == T0 + 600


def test_manual_shutdown_dry_run_and_validation(make: Make) -> None:
    h = make()
    effects = h.engine.manual_shutdown(dry_run=True)
    assert shutdowns(effects) == []
    assert events(effects, PolicyEvent.SHUTDOWN_SENT)[0].data["mode"] == "dry_run"
    with pytest.raises(ValueError, match="unknown agents"):
        h.engine.manual_shutdown(["nope"])
    with pytest.raises(ValueError, match="delay_sec"):
        h.engine.manual_shutdown(delay_sec=-1)


def test_manual_abort(make: Make) -> None:
    h = make([nas(), vm()], debounce_sec=0, delay_sec=60)
    shutdown = shutdowns(h.lost(soc=10), "nas")[0]
    h.clock.advance(10)
    effects = h.engine.manual_abort(["nas"])
    sent = aborts(effects)
    assert [a.agent_id for a in sent] == ["nas"]
    assert events(effects, PolicyEvent.SHUTDOWN_ABORTED)[0].data["ref"] == shutdown.payload["id"]
    # Too late for the VM's shutdown once its commit point passed.
    h.clock.advance(50)
    effects = h.engine.manual_abort(["vm"])
    assert aborts(effects) == []
    assert AuditKind.ABORT_TOO_LATE in [a.kind for a in audits(effects)]


def test_manual_abort_without_known_shutdown_still_sent(make: Make) -> None:
    h = make()
    sent = aborts(h.engine.manual_abort())
    assert len(sent) == 1
    assert sent[0].payload["ttl_sec"] == 300


def test_ping_published_even_in_dry_run(make: Make) -> None:
    h = make(dry_run=True)
    h.engine.set_armed(False)
    effects = h.engine.ping()
    pings = [e for e in effects if getattr(e, "action", None) is CommandAction.PING]
    assert len(pings) == 1
    h.ack("nas", pings[0].payload["id"], AckStatus.PONG)
    assert h.engine.status().agents["nas"].last_ack_status is AckStatus.PONG


# -- acks -------------------------------------------------------------------------------


def test_ack_lifecycle_and_state(make: Make) -> None:
    h = make(debounce_sec=30, delay_sec=60)
    assert h.engine.state is PolicyState.NORMAL
    h.lost(soc=50)
    assert h.engine.state is PolicyState.ON_BATTERY
    h.lost(soc=10)
    assert h.engine.state is PolicyState.CRITICAL_PENDING
    cid = shutdowns(h.at(30))[0].payload["id"]
    assert h.engine.state is PolicyState.SHUTDOWN_SENT
    h.ack("nas", cid, AckStatus.RECEIVED)
    h.ack("nas", cid, AckStatus.SCHEDULED, execute_at=int(T0) + 90)
    assert h.engine.state is PolicyState.SHUTDOWN_SENT
    h.at(60)
    assert h.engine.state is PolicyState.COMMITTED  # commit point passed
    h.ack("nas", cid, AckStatus.EXECUTING)
    assert h.engine.status().agents["nas"].committed
    h.connected()
    assert h.engine.state is PolicyState.NORMAL


def test_aborted_ack_ends_the_shutdown(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=60)
    shutdown_id = shutdowns(h.lost(soc=10))[0].payload["id"]
    h.clock.advance(5)
    abort_id = aborts(h.connected())[0].payload["id"]
    h.lost(soc=50)  # grid lost again, battery fine
    h.ack("nas", abort_id, AckStatus.ABORTED, ref=shutdown_id)
    assert h.engine.state is PolicyState.ON_BATTERY
    assert h.engine.status().agents["nas"].last_ack_status is AckStatus.ABORTED


def test_too_late_abort_marks_shutdown_committed(make: Make) -> None:
    h = make(debounce_sec=0, delay_sec=60)
    shutdown_id = shutdowns(h.lost(soc=10))[0].payload["id"]
    h.clock.advance(5)
    h.engine.manual_abort()
    abort_id = h.engine.status().agents["nas"].last_command_id
    assert abort_id is not None
    h.ack("nas", abort_id, AckStatus.REJECTED, detail="too_late: commit 1", ref=shutdown_id)
    assert h.engine.state is PolicyState.COMMITTED


@pytest.mark.parametrize("status", [AckStatus.EXPIRED, AckStatus.REJECTED])
def test_terminal_ack_ends_the_shutdown(make: Make, status: AckStatus) -> None:
    h = make(debounce_sec=0)
    cid = shutdowns(h.lost(soc=10))[0].payload["id"]
    h.ack("nas", cid, status, detail="bad_signature")
    assert h.engine.state is PolicyState.CRITICAL_PENDING  # re-fires after cooldown
    assert shutdowns(h.at(15)) == []


def test_acks_for_unknown_ids_or_agents_are_ignored(make: Make) -> None:
    h = make(debounce_sec=0)
    cid = shutdowns(h.lost(soc=10))[0].payload["id"]
    effects = h.ack("nas", "some-other-id", AckStatus.EXECUTING)
    effects += h.ack("ghost", cid, AckStatus.RECEIVED)
    assert [a.kind for a in audits(effects)] == [AuditKind.ACK_IGNORED] * 2
    assert len(shutdowns(h.at(15))) == 1  # still unacknowledged: resent
    assert h.engine.status().agents["nas"].last_ack_status is None


# -- events, audit, views --------------------------------------------------------------


def test_events_and_audit_values(make: Make) -> None:
    h = make([vm()], debounce_sec=10)
    h.connected(soc=45)
    effects = h.lost(soc=39, remaining=30)
    assert events(effects, PolicyEvent.GRID_LOST)[0].data["device_id"] == "R651ZAB5XXXX0001"
    critical = events(effects, PolicyEvent.BATTERY_CRITICAL)[0].data
    assert (critical["agent_id"], critical["threshold"], critical["fire_at"]) == ("vm", 40, T0 + 10)
    effects = h.at(10)
    record = next(a for a in audits(effects) if a.kind is AuditKind.SHUTDOWN)
    assert (record.grid, record.soc_min, record.threshold, record.remaining_min) == (
        "lost",
        39,
        40,
        30,
    )
    assert record.agent_id == "vm"
    assert record.mode is DecisionMode.LIVE
    assert record.command_id == shutdowns(effects)[0].payload["id"]
    assert record in h.engine.audit_trail
    data = events(effects, PolicyEvent.SHUTDOWN_SENT)[0].data
    assert data["execute_at"] == int(T0 + 10) + 60


def test_audit_trail_is_bounded(make: Make) -> None:
    h = make()
    for _ in range(150):
        h.clock.advance(1)
        h.lost(soc=50)
        h.clock.advance(1)
        h.connected()
    assert len(h.engine.audit_trail) == 200
    assert h.engine.audit_trail[-1].kind is AuditKind.GRID_RESTORED


def test_status_view(make: Make) -> None:
    h = make([nas(), vm()], debounce_sec=60)
    h.lost(soc=30, remaining=42)
    status = h.engine.status()
    assert status.grid is GridStatus.LOST
    assert (status.soc_min, status.remaining_discharge_min) == (30, 42)
    assert status.pending_fire_at == T0 + 60
    assert status.agents["vm"].pending_fire_at == T0 + 60
    assert status.agents["nas"].pending_fire_at is None
    assert status.agents["vm"].soc_threshold == 40
    assert status.armed
    assert not status.dry_run


# -- persistence ------------------------------------------------------------------------


def test_restored_engine_resends_same_id(make: Make, clock) -> None:
    h = make([nas(), vm()], debounce_sec=0, resend_interval_sec=15)
    original = shutdowns(h.lost(soc=10), "nas")[0]
    data = json.loads(json.dumps(h.engine.to_dict()))
    clock.advance(20)
    fresh_ids = Ids()
    restored = PolicyEngine.from_dict(
        data, PolicySettings(debounce_sec=0), [nas(), vm()], clock, fresh_ids
    )
    assert restored.audit_trail == h.engine.audit_trail
    resent = shutdowns(restored.tick(), "nas")
    assert [r.payload for r in resent] == [original.payload]
    assert next(fresh_ids.counter) == 0  # no new command was issued


def test_restored_engine_fires_pending_timer_on_time(make: Make, clock) -> None:
    h = make([nas(), vm()], debounce_sec=60)
    h.lost(soc=35)  # VM timer
    clock.advance(20)
    data = json.loads(json.dumps(h.engine.to_dict()))
    restored = PolicyEngine.from_dict(data, PolicySettings(), [nas(), vm()], clock)
    clock.advance(5)
    # A fresh reading confirms the stored state: the timer fires on time.
    restored.update(PolicyTelemetry(GridStatus.LOST, 35, None, clock.now))
    assert restored.next_deadline() == T0 + 60
    clock.advance(34)
    assert shutdowns(restored.tick()) == []
    clock.advance(1)
    assert [s.agent_id for s in shutdowns(restored.tick())] == ["vm"]


def test_after_a_restart_nothing_fires_before_a_fresh_reading_or_a_stale_window(
    make: Make, clock
) -> None:
    h = make([nas(), vm()], debounce_sec=60, stale_after_sec=120)
    h.lost(soc=35)  # VM timer
    clock.advance(20)
    restored = PolicyEngine.from_dict(h.engine.to_dict(), PolicySettings(), [nas(), vm()], clock)
    assert restored.next_deadline() == clock.now + 120
    assert shutdowns(restored.tick()) == []
    clock.advance(119)
    assert shutdowns(restored.tick()) == []
    clock.advance(1)
    # Still silent a stale window after the restart, grid lost: everyone goes.
    assert sorted(s.agent_id for s in shutdowns(restored.tick())) == ["nas", "vm"]


def test_restart_is_not_mistaken_for_silence(make: Make, clock) -> None:
    h = make(stale_after_sec=120)
    h.lost(soc=80)
    clock.advance(300)  # Home Assistant was down for five minutes
    data = h.engine.to_dict()
    restored = PolicyEngine.from_dict(data, PolicySettings(stale_after_sec=120), [nas()], clock)
    assert shutdowns(restored.tick()) == []
    assert restored.next_deadline() == clock.now + 120
    clock.advance(120)
    assert len(shutdowns(restored.tick())) == 1  # still silent: now it is real


def test_restore_keeps_cooldown_armed_and_drops_removed_agents(make: Make, clock) -> None:
    h = make([nas(), vm()], debounce_sec=0)
    h.lost(soc=10)
    h.engine.set_armed(False)
    data = h.engine.to_dict()
    restored = PolicyEngine.from_dict(data, PolicySettings(debounce_sec=0), [nas()], clock)
    assert not restored.armed
    assert list(restored.status().agents) == ["nas"]
    restored.set_armed(True)
    clock.advance(10)
    # Disarming aborted the first shutdowns: re-armed and still critical, fresh ones.
    again = shutdowns(restored.update(PolicyTelemetry(GridStatus.LOST, 10, None, clock.now)))
    assert [s.agent_id for s in again] == ["nas"]
    with pytest.raises(ValueError, match="version"):
        PolicyEngine.from_dict({**data, "version": 99}, PolicySettings(), [nas()], clock)


# -- configuration -------------------------------------------------------------------


@pytest.mark.parametrize(
    "bad",
    [
        {"soc_threshold": 101},
        {"soc_threshold": -1},
        {"runtime_threshold_min": -1},
        {"hysteresis_pct": -0.5},
        {"debounce_sec": -1},
        {"delay_sec": -1},
        {"stale_after_sec": 0},
        {"ttl_sec": 0},
        {"cooldown_sec": -1},
        {"restore_confirm_sec": -1},
        {"resend_interval_sec": 0},
    ],
)
def test_settings_validation(bad: dict) -> None:
    with pytest.raises(ValueError, match="must be"):
        PolicySettings(**bad)


def test_settings_from_mapping_ignores_unknown_keys() -> None:
    settings = PolicySettings.from_mapping({"soc_threshold": 15, "future_option": 1})
    assert settings.soc_threshold == 15
    assert PolicySettings.from_mapping(settings.as_dict()) == settings


@pytest.mark.parametrize(
    "kwargs",
    [
        {"agent_id": "a/b", "secret": "s"},
        {"agent_id": "nas", "secret": ""},
        {"agent_id": "nas", "secret": "s", "soc_threshold": 150},
        {"agent_id": "nas", "secret": "s", "delay_sec": -1},
    ],
)
def test_agent_binding_validation(kwargs: dict) -> None:
    with pytest.raises(ValueError, match=r"."):
        AgentBinding(**kwargs)


def test_duplicate_agents_rejected(clock) -> None:
    with pytest.raises(ValueError, match="twice"):
        PolicyEngine("dev", PolicySettings(), [nas(), nas()], clock=clock)


def test_reconfigure_keeps_timers(make: Make) -> None:
    h = make([nas(), vm()], debounce_sec=60)
    h.lost(soc=35)
    h.engine.reconfigure(PolicySettings(debounce_sec=30), [vm()])
    assert list(h.engine.agents) == ["vm"]
    assert h.engine.pending_fire_at() == T0 + 30
    assert len(shutdowns(h.at(30))) == 1


def test_rotated_secret_stops_stale_resends(make: Make, clock) -> None:
    h = make(debounce_sec=0)
    shutdowns(h.lost(soc=10))
    data = h.engine.to_dict()
    rotated = [AgentBinding("nas", "a-brand-new-secret")]
    restored = PolicyEngine.from_dict(data, PolicySettings(debounce_sec=0), rotated, clock)
    clock.advance(15)
    # The old signature would be refused: not re-sent; a fresh shutdown signed
    # with the new secret goes out instead (the condition still holds).
    assert shutdowns(restored.tick()) == []
    fresh = shutdowns(restored.update(PolicyTelemetry(GridStatus.LOST, 10, None, clock.now)))
    assert len(fresh) == 1
    assert verify_message(fresh[0].payload, "a-brand-new-secret")
    again = shutdowns(h.engine.reconfigure(PolicySettings(debounce_sec=0), rotated))
    assert [verify_message(c.payload, "a-brand-new-secret") for c in again] == [True]


@pytest.mark.parametrize(
    "mangle",
    [
        lambda d: "not a mapping",
        lambda d: {**d, "device_id": None},
        lambda d: {**d, "agents": {"nas": {"shutdown": {"id": "x"}}}},
        lambda d: {**d, "agents": ["nas"]},
        lambda d: {**d, "fresh_at": "yesterday"},
        lambda d: {**d, "grid": "sideways"},
        lambda d: {**d, "audit": [{"at": 1}]},
        lambda d: {**d, "armed": "yes"},
        lambda d: {**d, "agents": {"nas": {"critical_since": "noon"}}},
        lambda d: {
            **d,
            "agents": {"nas": {"shutdown": {**d["agents"]["nas"]["shutdown"], "payload": 7}}},
        },
        lambda d: {
            **d,
            "agents": {"nas": {"shutdown": {**d["agents"]["nas"]["shutdown"], "issued_at": "x"}}},
        },
        lambda d: {**d, "agents": {"nas": "gone"}},
        lambda d: {**d, "agents": {"nas": {**d["agents"]["nas"], "shutdown": "cmd-0"}}},
    ],
)
def test_an_unreadable_stored_state_raises_policy_state_error(make: Make, clock, mangle) -> None:
    from custom_components.ecoflow_power.policy import PolicyStateError

    h = make(debounce_sec=0)
    h.lost(soc=10)
    with pytest.raises(PolicyStateError):
        PolicyEngine.from_dict(mangle(h.engine.to_dict()), PolicySettings(), [nas()], clock)
    assert issubclass(PolicyStateError, ValueError)
