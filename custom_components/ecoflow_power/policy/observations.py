"""What the engine knows about its station: the last readings and their age.

One mutable record, shared by the decision (which updates it) and the views
(which read it). Persisted with the engine state.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from custom_components.ecoflow_power.ecoflow.state import GridStatus


@dataclass(slots=True)
class Observations:
    grid: GridStatus | None = None  # last known CONNECTED/LOST
    soc_min: float | None = None
    soc_at: float | None = None  # evidence time of soc_min (for the estimate)
    remaining: int | None = None  # remaining_discharge_min as reported
    discharge_w: float | None = None
    load_w: float | None = None
    capacity_wh: float | None = None
    cutoff_pct: float | None = None
    last_at: float | None = None  # newest telemetry `at` seen (ordering)
    fresh_at: float | None = None  # newest usable evidence (staleness)
    stale: bool = False
    present_since: float | None = None  # grid seen CONNECTED continuously since (engine clock)
    restored: bool = False  # this presence lasted restore_confirm_sec: the outage is over
    runtime_smoothed: float | None = None  # see condition.smooth
    runtime_smoothed_at: float | None = None
    # The sentinel (update_mains): None = unknown / not configured.
    mains: bool | None = None
    mains_at: float | None = None
    # The link to the station (update_link).
    cloud_connected: bool = True
    station_online: bool | None = None
    grid_by_sentinel: bool = False  # the LOST verdict came from the sentinel, station silent
    # After a restart: nothing fires before a fresh reading or this time.
    resume_hold: float | None = None
    started_at: float | None = None  # engine start (not persisted)
    unprotected: bool = False  # the repair is raised
    blind_shown: bool = False  # the blind repair is raised
    cutoff_shown: bool = False  # the station cut-off repair is raised

    def rebase(self, shift: float) -> None:
        """The engine clock stepped back by `shift` seconds: keep every age as it was."""
        for name in (
            "last_at",
            "fresh_at",
            "soc_at",
            "present_since",
            "runtime_smoothed_at",
            "mains_at",
            "resume_hold",
            "started_at",
        ):
            value = getattr(self, name)
            if value is not None:
                setattr(self, name, value - shift)

    def to_dict(self) -> dict[str, Any]:
        return {
            "grid": None if self.grid is None else str(self.grid),
            "soc_min": self.soc_min,
            "soc_at": self.soc_at,
            "load_w": self.load_w,
            "grid_by_sentinel": self.grid_by_sentinel,
            "remaining_min": self.remaining,
            "discharge_w": self.discharge_w,
            "capacity_wh": self.capacity_wh,
            "cutoff_pct": self.cutoff_pct,
            "last_at": self.last_at,
            "fresh_at": self.fresh_at,
            "stale": self.stale,
            "present_since": self.present_since,
            "restored": self.restored,
            "runtime_smoothed": self.runtime_smoothed,
            "runtime_smoothed_at": self.runtime_smoothed_at,
            "mains": self.mains,
            "mains_at": self.mains_at,
        }

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Observations:
        grid = data.get("grid")
        return cls(
            grid=None if grid is None else GridStatus(grid),
            soc_min=_number(data.get("soc_min")),
            soc_at=_number(data.get("soc_at")),
            load_w=_number(data.get("load_w")),
            grid_by_sentinel=bool(data.get("grid_by_sentinel", False)),
            remaining=None if data.get("remaining_min") is None else int(data["remaining_min"]),
            discharge_w=_number(data.get("discharge_w")),
            capacity_wh=_number(data.get("capacity_wh")),
            cutoff_pct=_number(data.get("cutoff_pct")),
            last_at=_number(data.get("last_at")),
            fresh_at=_number(data.get("fresh_at")),
            stale=bool(data.get("stale", False)),
            present_since=_number(data.get("present_since")),
            restored=bool(data.get("restored", False)),
            runtime_smoothed=_number(data.get("runtime_smoothed")),
            runtime_smoothed_at=_number(data.get("runtime_smoothed_at")),
            mains=None if data.get("mains") is None else bool(data["mains"]),
            mains_at=_number(data.get("mains_at")),
        )


def _number(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise TypeError(f"expected a number, got {value!r}")
    return float(value)
