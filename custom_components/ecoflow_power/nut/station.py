"""Stations as NUT UPSes: names and aliases, snapshots, and their policy consumers.

`StationBackend` is the server's backend for any number of stations. It reads
telemetry and policy status through callables, so the Home Assistant glue and
the tests feed it the same way. `StationBackend.route` answers the engine's
commands to a station's NUT consumer (see consumer.py) and returns the acks to
hand back to the engine.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
import logging

from custom_components.ecoflow_power.ecoflow.state import PowerState
from custom_components.ecoflow_power.policy.protocol import Ack
from custom_components.ecoflow_power.policy.status import PolicyStatus

from .backend import ClientEvent, UpsSnapshot
from .consumer import LocalConsumer, StationFacts, nut_agent_id, ups_inputs
from .variables import build_variables

_LOGGER = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class StationUps:
    """How one station is served: its UPS name, aliases, and its clients' policy."""

    sn: str
    name: str
    description: str
    model: str
    aliases: tuple[str, ...] = ()
    charge_low_pct: float = 20.0
    runtime_low_sec: int = 0
    charge_restart_pct: float | None = None

    @property
    def agent_id(self) -> str:
        return nut_agent_id(self.name)

    @property
    def names(self) -> tuple[str, ...]:
        return (self.name, *self.aliases)


@dataclass
class StationBackend:
    stations: Sequence[StationUps]
    power_state: Callable[[str], PowerState | None]
    policy_status: Callable[[str], PolicyStatus | None]
    clock: Callable[[], float]
    stale_after_sec: float
    driver_version: str
    on_client_event: Callable[[StationUps, ClientEvent], None] | None = None
    _by_name: dict[str, StationUps] = field(init=False)
    _consumers: dict[str, LocalConsumer] = field(init=False)

    def __post_init__(self) -> None:
        self._by_name = {name: ups for ups in self.stations for name in ups.names}
        self._consumers = {ups.agent_id: LocalConsumer(ups.agent_id) for ups in self.stations}

    # --- NutBackend ---------------------------------------------------------

    def ups_names(self) -> Sequence[str]:
        return list(self._by_name)

    def station_of(self, name: str) -> StationUps | None:
        return self._by_name.get(name)

    def snapshot(self, ups: str) -> UpsSnapshot | None:
        station = self._by_name.get(ups)
        if station is None:
            return None
        facts = StationFacts(
            model=station.model,
            serial=station.sn,
            driver_version=self.driver_version,
            charge_low_pct=station.charge_low_pct,
            runtime_low_sec=station.runtime_low_sec,
            charge_restart_pct=station.charge_restart_pct,
        )
        inputs = ups_inputs(
            facts,
            self.power_state(station.sn),
            self.policy_status(station.sn),
            station.agent_id,
            now=self.clock(),
            stale_after_sec=self.stale_after_sec,
        )
        return UpsSnapshot(station.description, build_variables(inputs))

    def client_event(self, event: ClientEvent) -> None:
        station = self._by_name.get(event.ups)
        if station is not None and self.on_client_event is not None:
            self.on_client_event(station, event)

    # --- the policy consumer ------------------------------------------------

    def is_local_agent(self, agent_id: str) -> bool:
        return agent_id in self._consumers

    def route(self, agent_id: str, payload: Mapping[str, object]) -> list[Ack]:
        """Acks for a command the engine addressed to a NUT consumer."""
        consumer = self._consumers.get(agent_id)
        return [] if consumer is None else consumer.receive(payload, self.clock())

    def due(self) -> list[tuple[str, Ack]]:
        """`executing` acks of consumers whose commit point has come."""
        now = self.clock()
        return [(agent_id, ack) for agent_id, c in self._consumers.items() for ack in c.due(now)]

    def next_deadline(self) -> float | None:
        pending = [c.pending_execute_at for c in self._consumers.values()]
        times = [float(t) for t in pending if t is not None]
        return min(times) if times else None

    def adopt(self) -> None:
        """After a restart: take over live shutdowns the engines still know about."""
        for station in self.stations:
            status = self.policy_status(station.sn)
            view = status.agents.get(station.agent_id) if status else None
            self._consumers[station.agent_id].adopt(view)
