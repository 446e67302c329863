"""The entry's telemetry settings as stored, checked: a bad value runs on its default.

The options form only offers values in these ranges; a value outside them (or
no number at all) can only come from a hand-edited or foreign storage file.
Setup must not fail on it: protection would be gone with the entry.
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
    options: Mapping[str, Any], key: str, default: int, bounds: tuple[int, int]
) -> tuple[int, str | None]:
    """(value to run with, why the stored one was refused or None)."""
    stored = options.get(key, default)
    low, high = bounds
    if (
        isinstance(stored, bool)
        or not isinstance(stored, int | float)
        or not math.isfinite(stored)
        or not low <= stored <= high
    ):
        return default, f"{key} = {stored!r} is not within {low}..{high} s"
    return int(stored), None


@dataclass(frozen=True, slots=True)
class TelemetrySettings:
    stale_after_sec: int
    grid_confirm_sec: int
    # Why stored values were refused (they run on their defaults); empty when valid.
    refused: tuple[str, ...] = ()

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> TelemetrySettings:
        stale, stale_error = _seconds(
            options, CONF_STALE_AFTER, DEFAULT_STALE_AFTER, STALE_AFTER_RANGE
        )
        confirm, confirm_error = _seconds(
            options, CONF_GRID_CONFIRM, DEFAULT_GRID_CONFIRM, GRID_CONFIRM_RANGE
        )
        refused = tuple(error for error in (stale_error, confirm_error) if error)
        return cls(stale, confirm, refused)
