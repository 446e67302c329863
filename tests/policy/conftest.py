"""Shared helpers for the policy tests: a fake clock and readable telemetry builders."""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
import itertools

import pytest

from custom_components.ecoflow_power.ecoflow.state import GridStatus
from custom_components.ecoflow_power.policy import (
    Ack,
    AckStatus,
    AgentBinding,
    AuditRecord,
    CommandAction,
    Effect,
    EmitEvent,
    PolicyEngine,
    PolicyEvent,
    PolicySettings,
    PolicyTelemetry,
    PublishCommand,
    RepairChange,
)

T0 = 1_767_225_600.0
SECRET_NAS = "nas-secret-for-tests"
SECRET_VM = "vm-secret-for-tests"


@dataclass
class FakeClock:
    now: float = T0

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> float:
        self.now += seconds
        return self.now


@dataclass
class Ids:
    """Deterministic command ids: cmd-0, cmd-1, ..."""

    counter: itertools.count = field(default_factory=itertools.count)

    def __call__(self) -> str:
        return f"cmd-{next(self.counter)}"


def nas(**kw) -> AgentBinding:
    return AgentBinding("nas", SECRET_NAS, **kw)


def vm(**kw) -> AgentBinding:
    return AgentBinding("vm", SECRET_VM, soc_threshold=40, **kw)


@dataclass
class Harness:
    clock: FakeClock
    engine: PolicyEngine

    def reading(
        self, grid: GridStatus, soc: float | None = 50, remaining: int | None = None
    ) -> list[Effect]:
        return self.engine.update(PolicyTelemetry(grid, soc, remaining, self.clock.now))

    def lost(self, soc: float | None = 50, remaining: int | None = None) -> list[Effect]:
        return self.reading(GridStatus.LOST, soc, remaining)

    def connected(self, soc: float | None = 50) -> list[Effect]:
        return self.reading(GridStatus.CONNECTED, soc)

    def unknown(self, soc: float | None = None) -> list[Effect]:
        return self.reading(GridStatus.UNKNOWN, soc)

    def at(self, seconds: float) -> list[Effect]:
        """Advance the clock and tick."""
        self.clock.advance(seconds)
        return self.engine.tick()

    def ack(self, agent_id: str, command_id: str, status: AckStatus, **kw) -> list[Effect]:
        ack = Ack(id=command_id, agent=agent_id, status=status, at=int(self.clock.now), **kw)
        return self.engine.handle_ack(agent_id, ack)


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock()


@pytest.fixture
def make(clock: FakeClock) -> Callable[..., Harness]:
    def factory(agents: Iterable[AgentBinding] | None = None, **settings) -> Harness:
        engine = PolicyEngine(
            "R651ZAB5XXXX0001",
            PolicySettings(**settings),
            [nas()] if agents is None else agents,
            clock=clock,
            id_factory=Ids(),
        )
        return Harness(clock, engine)

    return factory


def publishes(
    effects: Iterable[Effect], action: CommandAction | None = None, agent_id: str | None = None
) -> list[PublishCommand]:
    return [
        e
        for e in effects
        if isinstance(e, PublishCommand)
        and (action is None or e.action is action)
        and (agent_id is None or e.agent_id == agent_id)
    ]


def shutdowns(effects: Iterable[Effect], agent_id: str | None = None) -> list[PublishCommand]:
    return publishes(effects, CommandAction.SHUTDOWN, agent_id)


def aborts(effects: Iterable[Effect], agent_id: str | None = None) -> list[PublishCommand]:
    return publishes(effects, CommandAction.ABORT, agent_id)


def events(effects: Iterable[Effect], event_type: PolicyEvent | None = None) -> list[EmitEvent]:
    return [
        e
        for e in effects
        if isinstance(e, EmitEvent) and (event_type is None or e.event_type is event_type)
    ]


def audits(effects: Iterable[Effect]) -> list[AuditRecord]:
    return [e for e in effects if isinstance(e, AuditRecord)]


def repairs(effects: Iterable[Effect]) -> list[RepairChange]:
    return [e for e in effects if isinstance(e, RepairChange)]
