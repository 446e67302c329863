"""A pessimistic energy estimate of the weakest pack while the station is silent.

Pure arithmetic. From the last known state of charge and what drains it (the
discharge power and the station's usable capacity, or the station's own
remaining-runtime figure), it projects the state of charge forward in time
and says when it reaches a threshold. Pessimistic on purpose: the load is at
least the last one seen, the capacity is derated, and of two ways to compute
the drain the faster one wins. Nothing known about the drain: no estimate
(the engine then fires at the stale timeout, as without it).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

# Usable share of the nominal capacity: ageing, cold, inverter losses.
CAPACITY_DERATE: Final = 0.8


@dataclass(frozen=True, slots=True)
class EnergySnapshot:
    """What was last known, at `at` (epoch s)."""

    soc: float  # % of the weakest pack
    at: float
    load_w: float | None = None  # W drained from the battery (at least the last seen)
    capacity_wh: float | None = None  # nominal usable capacity
    remaining_min: int | None = None  # the station's own runtime figure, on battery
    floor_pct: float = 0.0  # the station's own cut-off: the runtime figure runs to it


@dataclass(frozen=True, slots=True)
class Estimate:
    snapshot: EnergySnapshot
    rate_pct_per_sec: float  # > 0

    def soc_at(self, when: float) -> float:
        elapsed = max(0.0, when - self.snapshot.at)
        return max(0.0, self.snapshot.soc - self.rate_pct_per_sec * elapsed)

    def reaches(self, threshold_pct: float) -> float:
        """When the estimated state of charge reaches `threshold_pct` (at once if already)."""
        above = self.snapshot.soc - threshold_pct
        if above <= 0:
            return self.snapshot.at
        return self.snapshot.at + above / self.rate_pct_per_sec


def estimate(snapshot: EnergySnapshot) -> Estimate | None:
    """The drain, from power and capacity or from the runtime figure; None if unknown."""
    rates: list[float] = []
    load, capacity = snapshot.load_w, snapshot.capacity_wh
    if load is not None and load > 0 and capacity is not None and capacity > 0:
        rates.append(load / (capacity * CAPACITY_DERATE) * 100.0 / 3600.0)
    remaining = snapshot.remaining_min
    if remaining is not None and remaining > 0:
        span = snapshot.soc - snapshot.floor_pct
        if span > 0:
            rates.append(span / (remaining * 60.0))
    if not rates:
        return None
    return Estimate(snapshot, max(rates))
