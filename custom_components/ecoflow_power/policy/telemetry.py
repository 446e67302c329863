"""The slice of a station's state the policy needs, built by the HA glue per message."""

from __future__ import annotations

from dataclasses import dataclass

from custom_components.ecoflow_power.ecoflow.state import GridStatus


@dataclass(frozen=True, slots=True)
class PolicyTelemetry:
    """One telemetry reading.

    `grid` is already confirmed by the decoder's filter. `at` is the evidence
    time (epoch seconds): it drives staleness and ordering, while timers run on
    the engine's own clock.
    """

    grid: GridStatus
    soc_min: float | None
    remaining_discharge_min: int | None
    at: float

    @property
    def has_battery_figure(self) -> bool:
        return self.soc_min is not None or self.remaining_discharge_min is not None
