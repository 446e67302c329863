"""The NUT clients of a station as a consumer of its real policy engine (fake clock)."""

from __future__ import annotations

from dataclasses import dataclass, replace

from custom_components.ecoflow_power.ecoflow.state import GridStatus
from custom_components.ecoflow_power.nut.consumer import LocalConsumer
from custom_components.ecoflow_power.policy.protocol import AckStatus, CommandAction

from .policy_loop import PolicyLoop

T0 = 1_800_000_000.0


@dataclass
class Clock:
    now: float = T0

    def __call__(self) -> float:
        return self.now


def test_outage_countdown_then_commit_point_raises_fsd() -> None:
    clock = Clock()
    loop = PolicyLoop(clock, nut_threshold=30, nut_delay=20, debounce_sec=5)
    loop.feed(grid=GridStatus.CONNECTED, soc=80)
    assert loop.status_word() == "OL CHRG"
    clock.now += 10
    loop.feed(grid=GridStatus.LOST, soc=60)
    assert loop.status_word() == "OB DISCHRG"
    clock.now += 10
    loop.feed(grid=GridStatus.LOST, soc=29)  # below the NUT clients' own threshold
    clock.now += 5
    loop.tick()  # debounce over: the engine fires, the consumer schedules
    view = loop.engine.status().agents["nut-delta"]
    assert view.last_command_action is CommandAction.SHUTDOWN
    assert view.last_ack_status is AckStatus.SCHEDULED
    assert loop.status_word() == "OB DISCHRG"  # the countdown: clients wait
    clock.now += 19
    loop.tick()
    assert loop.status_word() == "OB DISCHRG"
    clock.now += 1  # the commit point
    loop.tick()
    assert loop.engine.status().agents["nut-delta"].committed
    assert loop.status_word() == "FSD OB LB DISCHRG"
    assert loop.published == []  # a local consumer never goes out on MQTT


def test_grid_back_during_the_countdown_aborts_and_nobody_sees_fsd() -> None:
    clock = Clock()
    loop = PolicyLoop(clock, nut_threshold=30, nut_delay=20, debounce_sec=0)
    loop.feed(grid=GridStatus.LOST, soc=25)
    loop.tick()
    assert loop.engine.status().agents["nut-delta"].last_ack_status is AckStatus.SCHEDULED
    clock.now += 10
    loop.feed(grid=GridStatus.CONNECTED, soc=25)
    view = loop.engine.status().agents["nut-delta"]
    assert view.last_command_action is CommandAction.ABORT
    assert view.last_ack_status is AckStatus.ABORTED
    clock.now += 30
    loop.tick()
    assert loop.status_word() == "OL CHRG"
    assert not loop.engine.status().agents["nut-delta"].committed


def test_an_abort_after_the_commit_point_is_refused_too_late() -> None:
    consumer = LocalConsumer("nut-delta")
    shutdown = {"id": "s1", "action": "shutdown", "issued_at": 100, "delay_sec": 10, "ttl_sec": 300}
    [scheduled] = consumer.receive(shutdown, 100)
    assert scheduled.status is AckStatus.SCHEDULED
    assert scheduled.execute_at == 110
    assert consumer.due(109) == []
    [executing] = consumer.due(110)
    assert executing.status is AckStatus.EXECUTING
    abort = {"id": "a1", "action": "abort", "issued_at": 111, "delay_sec": 0, "ttl_sec": 5}
    [refused] = consumer.receive(abort, 111)
    assert refused.status is AckStatus.REJECTED
    assert refused.detail.startswith("too_late")
    assert refused.ref == "s1"


def test_resends_pings_stale_commands_and_zero_delay() -> None:
    consumer = LocalConsumer("nut-delta")
    ping = {"id": "p1", "action": "ping", "issued_at": 100, "delay_sec": 0, "ttl_sec": 30}
    assert [a.status for a in consumer.receive(ping, 100)] == [AckStatus.PONG]
    assert [a.status for a in consumer.receive(ping, 101)] == [AckStatus.DUPLICATE]
    old = {"id": "s0", "action": "shutdown", "issued_at": 100, "delay_sec": 0, "ttl_sec": 30}
    assert [a.status for a in consumer.receive(old, 200)] == [AckStatus.EXPIRED]
    now = {"id": "s1", "action": "shutdown", "issued_at": 200, "delay_sec": 0, "ttl_sec": 30}
    statuses = [a.status for a in consumer.receive(now, 200)]
    assert statuses == [AckStatus.SCHEDULED, AckStatus.EXECUTING]
    nothing = {"id": "a9", "action": "abort", "issued_at": 300, "delay_sec": 0, "ttl_sec": 30}
    consumer2 = LocalConsumer("nut-x")
    [ack] = consumer2.receive(nothing, 300)
    assert (ack.status, ack.detail) == (AckStatus.REJECTED, "nothing_pending")


def test_a_restart_during_the_countdown_still_reaches_the_commit_point() -> None:
    clock = Clock()
    loop = PolicyLoop(clock, nut_threshold=30, nut_delay=20, debounce_sec=0)
    loop.feed(grid=GridStatus.LOST, soc=25)
    loop.tick()
    fresh = loop.restarted()
    fresh.state = loop.state
    fresh.backend.adopt()  # what the glue does at start
    clock.now += 20
    fresh.tick()
    assert fresh.engine.status().agents["nut-delta"].committed
    assert fresh.status_word() == "FSD OB LB DISCHRG"


def test_fsd_stays_latched_until_the_grid_is_confirmed_back() -> None:
    clock = Clock()
    loop = PolicyLoop(clock, nut_threshold=30, nut_delay=10, debounce_sec=0)
    loop.feed(grid=GridStatus.LOST, soc=25)
    loop.tick()
    clock.now += 10
    loop.tick()
    assert loop.status_word() == "FSD OB LB DISCHRG"
    clock.now += 5
    loop.feed(grid=GridStatus.CONNECTED, soc=26)  # power back after the commit point
    assert loop.status_word() == "FSD OB LB CHRG"  # a client reconnecting now still goes down
    restore = loop.engine.settings.restore_confirm_sec
    clock.now += restore - 1
    loop.refresh()
    loop.tick()
    assert loop.status_word().startswith("FSD")
    clock.now += 2
    loop.refresh()
    loop.tick()
    assert loop.status_word() == "OL CHRG"  # a client booting now stays up


def test_the_next_outage_starts_with_ob_only_and_gets_its_own_commit_point() -> None:
    clock = Clock()
    loop = PolicyLoop(clock, nut_threshold=30, nut_delay=10, debounce_sec=0)
    loop.feed(grid=GridStatus.LOST, soc=25)
    loop.tick()
    clock.now += 10
    loop.tick()
    assert loop.status_word() == "FSD OB LB DISCHRG"
    loop.feed(grid=GridStatus.CONNECTED, soc=26)
    clock.now += loop.engine.settings.restore_confirm_sec + 1
    loop.refresh()
    loop.tick()
    assert loop.status_word() == "OL CHRG"
    clock.now += 3600  # the host came back up; hours later the grid fails again
    loop.feed(grid=GridStatus.LOST, soc=80)
    loop.tick()
    assert loop.status_word() == "OB DISCHRG"
    loop.feed(grid=GridStatus.LOST, soc=29)
    loop.tick()
    assert loop.status_word() == "OB DISCHRG"  # a new countdown
    clock.now += 10
    loop.tick()
    assert loop.status_word() == "FSD OB LB DISCHRG"


def test_a_commit_point_passed_while_home_assistant_was_down_is_confirmed_on_return() -> None:
    clock = Clock()
    loop = PolicyLoop(clock, nut_threshold=30, nut_delay=20, debounce_sec=0)
    loop.feed(grid=GridStatus.LOST, soc=25)
    loop.tick()
    stored = loop.engine.to_dict()
    clock.now += 300  # Home Assistant was down across the commit point
    fresh = loop.restarted(stored)
    fresh.feed(grid=GridStatus.LOST, soc=20)
    assert fresh.status_word() == "OB DISCHRG"
    fresh.backend.adopt()
    fresh.tick()
    assert fresh.engine.status().agents["nut-delta"].committed
    assert fresh.status_word() == "FSD OB LB DISCHRG"


def test_an_aborted_shutdown_is_not_taken_over_after_a_restart() -> None:
    clock = Clock()
    loop = PolicyLoop(clock, nut_threshold=30, nut_delay=20, debounce_sec=0)
    loop.feed(grid=GridStatus.LOST, soc=25)
    loop.tick()
    clock.now += 5
    loop.feed(grid=GridStatus.CONNECTED, soc=25)  # aborted
    fresh = loop.restarted()
    fresh.state = loop.state
    fresh.backend.adopt()
    clock.now += 60
    fresh.tick()
    assert not fresh.engine.status().agents["nut-delta"].committed
    assert fresh.status_word() == "OL CHRG"


def test_a_dry_run_decision_is_never_confirmed_for_nut_clients() -> None:
    clock = Clock()
    loop = PolicyLoop(clock, nut_threshold=30, nut_delay=5, debounce_sec=0)
    loop.engine.reconfigure(
        replace(loop.engine.settings, dry_run=True), list(loop.engine.agents.values())
    )
    loop.feed(grid=GridStatus.LOST, soc=25)
    loop.tick()
    loop.backend.adopt()
    clock.now += 30
    loop.tick()
    assert not loop.engine.status().agents["nut-delta"].committed
    assert loop.status_word() == "OB DISCHRG"
