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
    # For the energy estimate (policy/estimate.py) and the station's cut-offs.
    discharge_w: float | None = None  # W leaving the battery, >= 0
    capacity_wh: float | None = None  # usable full capacity of the station, Wh
    cutoff_pct: float | None = None  # the station's own discharge limit / backup reserve, %
    load_w: float | None = None  # W the station's outputs deliver (blind estimate), >= 0

    @property
    def has_battery_figure(self) -> bool:
        return self.soc_min is not None or self.remaining_discharge_min is not None
