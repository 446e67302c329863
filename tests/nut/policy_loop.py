"""A station's real policy engine with its NUT consumer, run the way the HA glue runs it."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace
import itertools
from typing import Any

from custom_components.ecoflow_power.ecoflow.state import ChargeState, GridStatus, PowerState
from custom_components.ecoflow_power.nut.station import StationBackend, StationUps
from custom_components.ecoflow_power.policy.effects import Effect, PublishCommand
from custom_components.ecoflow_power.policy.engine import PolicyEngine
from custom_components.ecoflow_power.policy.settings import AgentBinding, PolicySettings
from custom_components.ecoflow_power.policy.telemetry import PolicyTelemetry

SN = "R331ZEB4ZEA00001"


class PolicyLoop:
    """Feed telemetry, tick, and route the engine's commands to the NUT consumer."""

    def __init__(
        self,
        clock: Callable[[], float],
        *,
        nut_threshold: float = 30,
        nut_delay: int = 4,
        debounce_sec: int = 1,
        aliases: tuple[str, ...] = ("ups",),
    ) -> None:
        self.clock = clock
        self._options = {
            "nut_threshold": nut_threshold,
            "nut_delay": nut_delay,
            "debounce_sec": debounce_sec,
            "aliases": aliases,
        }
        ids = itertools.count()
        self.ups = StationUps(
            sn=SN,
            name="delta",
            description="Rack (DELTA 2)",
            model="DELTA 2",
            aliases=aliases,
            charge_low_pct=nut_threshold,
        )
        self.engine = PolicyEngine(
            SN,
            PolicySettings(soc_threshold=10, debounce_sec=debounce_sec, delay_sec=60),
            [
                AgentBinding(
                    self.ups.agent_id, "local", soc_threshold=nut_threshold, delay_sec=nut_delay
                )
            ],
            clock=clock,
            id_factory=lambda: f"cmd-{next(ids)}",
        )
        self.state: PowerState | None = None
        self.published: list[PublishCommand] = []  # what would have gone out on MQTT
        self.backend = StationBackend(
            [self.ups],
            power_state=lambda sn: self.state,
            policy_status=lambda sn: self.engine.status(),
            clock=clock,
            stale_after_sec=120,
            driver_version="0.1.0",
        )

    def restarted(self, stored: dict[str, Any] | None = None) -> PolicyLoop:
        """Home Assistant restarted: a new loop whose engine is read back from `stored`.

        `stored` defaults to what the engine would have saved just now.
        """
        fresh = PolicyLoop(self.clock, **self._options)
        fresh.engine = self.engine.from_dict(
            self.engine.to_dict() if stored is None else stored,
            self.engine.settings,
            list(self.engine.agents.values()),
            clock=self.clock,
        )
        return fresh

    def feed(self, *, grid: GridStatus, soc: float, watts_out: float = 150) -> None:
        on_battery = grid is GridStatus.LOST
        self.state = PowerState(
            sn=SN,
            model="DELTA 2",
            soc=soc + 2,
            soc_min=soc,
            grid=grid,
            ac_in_v=0 if on_battery else 230.1,
            watts_out=watts_out,
            battery_w=-watts_out if on_battery else 100,
            charge_state=ChargeState.DISCHARGING if on_battery else ChargeState.CHARGING,
            remaining_discharge_min=int(soc * 3),
            firmware="1.0.1.57",
            online=True,
            updated_at=self.clock(),
        )
        self.run(
            self.engine.update(
                PolicyTelemetry(
                    grid=grid,
                    soc_min=soc,
                    remaining_discharge_min=int(soc * 3),
                    at=self.clock(),
                )
            )
        )

    def refresh(self) -> None:
        """The same reading again, as a station repeats itself."""
        assert self.state is not None
        self.state = replace(self.state, updated_at=self.clock())
        self.run(
            self.engine.update(
                PolicyTelemetry(
                    grid=self.state.grid,
                    soc_min=self.state.soc_min,
                    remaining_discharge_min=self.state.remaining_discharge_min,
                    at=self.clock(),
                )
            )
        )

    def tick(self) -> None:
        self.run(self.engine.tick())
        for agent_id, ack in self.backend.due():
            self.run(self.engine.handle_ack(agent_id, ack))

    def run(self, effects: list[Effect]) -> None:
        for effect in effects:
            if not isinstance(effect, PublishCommand):
                continue
            if self.backend.is_local_agent(effect.agent_id):
                for ack in self.backend.route(effect.agent_id, effect.payload):
                    self.run(self.engine.handle_ack(effect.agent_id, ack))
            else:
                self.published.append(effect)

    def status_word(self) -> str | None:
        snapshot = self.backend.snapshot("delta")
        assert snapshot is not None
        return None if snapshot.variables is None else snapshot.variables["ups.status"]
