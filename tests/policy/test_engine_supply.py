"""A host fed by two stations (redundant power supplies): fake clock only."""

from __future__ import annotations

from dataclasses import dataclass

import pytest

from custom_components.ecoflow_power.ecoflow.state import GridStatus
from custom_components.ecoflow_power.policy import (
    AgentBinding,
    Effect,
    PolicyEngine,
    PolicySettings,
    PolicyTelemetry,
)
from custom_components.ecoflow_power.policy.supply import SupplyBoard
from tests.policy.conftest import SECRET_NAS, FakeClock, Ids, aborts, shutdowns

A, B = "STATION-A", "STATION-B"


@dataclass
class TwoStations:
    clock: FakeClock
    a: PolicyEngine
    b: PolicyEngine
    board: SupplyBoard

    def reading(self, station: str, grid: GridStatus, soc: float) -> list[Effect]:
        """What the glue does: feed the station, then tick the stations depending on it."""
        engine = self.a if station == A else self.b
        effects = engine.update(PolicyTelemetry(grid, soc, None, self.clock.now))
        for dependent in self.board.dependents(station):
            effects += (self.a if dependent == A else self.b).tick()
        return effects

    def at(self, seconds: float) -> list[Effect]:
        self.clock.advance(seconds)
        return self.a.tick() + self.b.tick()


def two_stations(feed_rule: str, **settings) -> TwoStations:
    clock = FakeClock()
    policy = PolicySettings(**settings)
    owner = AgentBinding("nas", SECRET_NAS, feeds=(B,), feed_rule=feed_rule)
    observer = AgentBinding("nas", SECRET_NAS, observe_only=True)
    a = PolicyEngine(A, policy, [owner], clock=clock, id_factory=Ids())
    b = PolicyEngine(B, policy, [observer], clock=clock, id_factory=Ids())
    board = SupplyBoard()
    board.attach(a)
    board.attach(b)
    h = TwoStations(clock, a, b, board)
    h.reading(A, GridStatus.CONNECTED, 80)
    h.reading(B, GridStatus.CONNECTED, 80)
    return h


def test_two_stations_redundant_supplies_shut_down_only_when_both_are_critical() -> None:
    h = two_stations("all", debounce_sec=60, delay_sec=60)
    h.reading(A, GridStatus.LOST, 10)
    assert shutdowns(h.at(120)) == []  # B still feeds the host
    assert h.a.state.value == "on_battery"
    assert "nas" not in h.b.status().agents  # B only observes
    h.reading(B, GridStatus.LOST, 15)
    assert shutdowns(h.at(59)) == []
    sent = shutdowns(h.at(1))
    assert [s.agent_id for s in sent] == ["nas"]  # once, from the owner
    # The grid back on B before the commit point: the host has power again.
    h.clock.advance(10)
    assert len(aborts(h.reading(B, GridStatus.CONNECTED, 15))) == 1


def test_two_stations_any_rule_shuts_down_when_one_is_critical() -> None:
    h = two_stations("any", debounce_sec=60, delay_sec=60)
    h.reading(B, GridStatus.LOST, 10)
    assert shutdowns(h.at(59)) == []
    assert len(shutdowns(h.at(1))) == 1
    h.clock.advance(5)
    # A's grid is present all along: only B's return aborts.
    assert aborts(h.reading(A, GridStatus.CONNECTED, 80)) == []
    assert len(aborts(h.reading(B, GridStatus.CONNECTED, 10))) == 1


def test_two_stations_the_peer_falling_silent_counts_as_its_fail_safe() -> None:
    h = two_stations("all", debounce_sec=60, stale_after_sec=120)
    h.reading(A, GridStatus.LOST, 10)
    h.reading(B, GridStatus.LOST, 80)  # B on battery but healthy, then silent
    for _ in range(11):
        h.clock.advance(10)
        h.a.update(PolicyTelemetry(GridStatus.LOST, 10, None, h.clock.now))
        assert shutdowns(h.a.tick()) == []
    assert len(shutdowns(h.at(10))) == 1  # B stale on battery: critical there too


def test_a_feeding_station_without_an_engine_never_delays_the_shutdown() -> None:
    clock = FakeClock()
    owner = AgentBinding("nas", SECRET_NAS, feeds=("NOT-MANAGED",))
    a = PolicyEngine(A, PolicySettings(debounce_sec=0), [owner], clock=clock, id_factory=Ids())
    SupplyBoard().attach(a)
    assert len(shutdowns(a.update(PolicyTelemetry(GridStatus.LOST, 10, None, clock.now)))) == 1


def test_an_observe_only_binding_must_not_list_feeds() -> None:
    with pytest.raises(ValueError, match="observe-only"):
        AgentBinding("nas", SECRET_NAS, feeds=(A,), observe_only=True)
    with pytest.raises(ValueError, match="feed_rule"):
        AgentBinding("nas", SECRET_NAS, feed_rule="most")
