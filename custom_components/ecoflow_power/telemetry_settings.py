"""The entry's telemetry settings as stored, checked: a bad value runs on its default.

The options form offers the ranges below. Storage may hold other values: ones
the engine still accepts (tests and the demo use a stale time of a few
seconds) are kept; a value it would refuse (a stale time of 0, no number at
all) can only come from a hand-edited file and must not fail the setup:
protection would be gone with the entry.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import math
from typing import Any

from .const import CONF_GRID_CONFIRM, CONF_STALE_AFTER, DEFAULT_GRID_CONFIRM, DEFAULT_STALE_AFTER

# What the options form offers (seconds, both ends included).
STALE_AFTER_RANGE = (30, 3600)
GRID_CONFIRM_RANGE = (0, 300)


def _seconds(
    options: Mapping[str, Any], key: str, default: int, minimum: int
) -> tuple[float, str | None]:
    """(value to run with, why the stored one was refused or None)."""
    stored = options.get(key, default)
    if (
        isinstance(stored, bool)
        or not isinstance(stored, int | float)
        or not math.isfinite(stored)
        or stored < minimum
    ):
        return default, f"{key} = {stored!r} is not a number of seconds >= {minimum}"
    return stored, None


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    stale_after_sec: float
    grid_confirm_sec: float
    # Why stored values were refused (they run on their defaults); empty when valid.
    refused: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TelemetrySettings:
        # The engine counts staleness in whole seconds, at least one.
        stale, stale_error = _seconds(options, CONF_STALE_AFTER, DEFAULT_STALE_AFTER, 1)
        confirm, confirm_error = _seconds(options, CONF_GRID_CONFIRM, DEFAULT_GRID_CONFIRM, 0)
        refused = tuple(error for error in (stale_error, confirm_error) if error)
        return cls(stale, confirm, refused)
