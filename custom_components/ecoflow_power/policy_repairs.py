"""Repairs the glue derives itself: telemetry frozen while the cloud is reachable.

The engine raises its own (blind, unprotected, station cut-off) as
RepairChange effects; this one needs what only the glue knows (the cloud
session's state and the station's online flag), so it is derived here from
the station's state on every change and on a timer. It says what happens
next, and when the hosts go down if they will.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from homeassistant.util import dt as dt_util

from .ecoflow.state import PowerState
from .issues import clear_repair, raise_repair
from .policy.status import PolicyStatus

ISSUE_TELEMETRY_FROZEN = "telemetry_frozen"
STATION_ISSUES = (ISSUE_TELEMETRY_FROZEN,)


@dataclass(frozen=True, slots=True)
class StationView:
    """What the repairs of one station are computed from."""

    name: str
    status: PolicyStatus
    state: PowerState | None
    cloud_connected: bool
    silent_for: float | None  # seconds since the last accepted telemetry; None: never
    stale_after_sec: float


def local_time(timestamp: float | None) -> str:
    if timestamp is None:
        return "unknown"
    return dt_util.as_local(dt_util.utc_from_timestamp(timestamp)).strftime("%Y-%m-%d %H:%M:%S")


def hosts_down_at(status: PolicyStatus) -> float | None:
    """The earliest moment a host of this station goes down, as the engine sees it now."""
    candidates: list[float] = [
        t
        for t in (status.next_commit_at, status.pending_fire_at, status.estimate_at)
        if t is not None
    ]
    candidates += [v.shutdown_by for v in status.agents.values() if v.shutdown_by is not None]
    return min(candidates) if candidates else None


def desired_repairs(view: StationView) -> dict[str, dict[str, str]]:
    """Issue key -> placeholders, for every repair this station should show now."""
    status = view.status
    wanted: dict[str, dict[str, str]] = {}
    if (
        view.cloud_connected
        and view.state is not None
        and view.state.online is True
        and view.silent_for is not None
        and view.silent_for > view.stale_after_sec
    ):
        wanted[ISSUE_TELEMETRY_FROZEN] = {
            "device": view.name,
            "minutes": str(int(view.silent_for // 60)),
            "when": local_time(hosts_down_at(status)) if hosts_down_at(status) else "none",
        }
    return wanted


class StationRepairs:
    """Raises and clears the derived repairs; only changes touch the issue registry."""

    def __init__(self, hass: HomeAssistant) -> None:
        self.hass = hass
        self._shown: dict[str, dict[str, str]] = {}
        self._stations: set[str] = set()

    def update(self, views: Iterable[tuple[str, StationView]]) -> None:
        for sn, view in views:
            wanted = desired_repairs(view)
            # The first time round, clear what a previous run may have left.
            first = sn not in self._stations
            self._stations.add(sn)
            for key in STATION_ISSUES:
                issue_id = f"{key}_{sn}"
                placeholders = wanted.get(key)
                if placeholders is None:
                    if self._shown.pop(issue_id, None) is not None or first:
                        clear_repair(self.hass, issue_id)
                elif self._shown.get(issue_id) != placeholders:
                    self._shown[issue_id] = placeholders
                    raise_repair(
                        self.hass,
                        issue_id,
                        key,
                        placeholders,
                        severity=ir.IssueSeverity.WARNING,
                    )

    def clear_all(self) -> None:
        for issue_id in list(self._shown):
            clear_repair(self.hass, issue_id)
        self._shown.clear()
