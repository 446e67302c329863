"""Guards between decoded fields and the state the policy acts on.

A wrong shutdown costs a home lab its uptime; a missed one costs its disks.
These filters drop what cannot be real and hold what is probably a glitch,
without ever hiding a real change for longer than one message or
`grid_confirm_sec`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
import math
from typing import Any

from .state import GridStatus

# Any field whose name ends like this is a state of charge in percent.
_SOC_SUFFIXES = ("soc", "Soc", "_soc", "SocPct")
MAX_ABS_WATTS = 100_000.0  # no EcoFlow product moves 100 kW; a float read from garbage does


def _is_soc_key(key: str) -> bool:
    leaf = key.rsplit(".", 1)[-1]
    return leaf.endswith(_SOC_SUFFIXES) and "max" not in leaf.lower() and "min" not in leaf.lower()


# Field names repeat in every message: classify each once.
_SOC_KEYS: dict[str, bool] = {}
_MAX_ABS_FLOAT = MAX_ABS_WATTS * 1000


def _soc_key(key: str) -> bool:
    known = _SOC_KEYS.get(key)
    if known is None:
        if len(_SOC_KEYS) > 10_000:  # names come from devices: bound the cache
            _SOC_KEYS.clear()
        known = _SOC_KEYS[key] = _is_soc_key(key)
    return known


def plausible_fields(fields: Mapping[str, Any]) -> tuple[dict[str, Any], int]:
    """Fields that can be real, and how many were dropped.

    NaN/inf and percentages outside 0..100 only come from misread bytes (a
    wrong XOR key, a field read from another message).
    """
    kept = dict(fields)
    dropped = 0
    for key, value in fields.items():
        kind = type(value)
        if kind is int:
            # Most fields are small counts and flags: nothing to check.
            if 0 <= value <= 100 or not _soc_key(key):
                continue
        elif kind is float:
            # NaN fails both comparisons, so it goes with the infinities.
            if -_MAX_ABS_FLOAT <= value <= _MAX_ABS_FLOAT and (
                0 <= value <= 100 or not _soc_key(key)
            ):
                continue
        elif (
            kind is bool
            or not isinstance(value, int | float)
            or (
                # An int or float subclass: same rules as above.
                math.isfinite(value)
                and abs(value) <= _MAX_ABS_FLOAT
                and (0 <= value <= 100 or not _soc_key(key))
            )
        ):
            continue
        del kept[key]
        dropped += 1
    return kept, dropped


def is_meaningful(fields: Mapping[str, Any]) -> bool:
    """A frame worth merging carries at least one known field.

    Header bytes or a fragment parsed as a DisplayPropertyUpload leave every
    known field absent (wire types do not match), which would otherwise count
    as a successful decode and refresh the state's age.
    """
    return bool(fields)


@dataclass(slots=True)
class SocJumpFilter:
    """Hold an isolated SoC jump until a second message or another source confirms it.

    90 -> 16 -> 90 on a unit with an extra battery came from a decoder reading
    the wrong message; a real fast drop repeats in the next message or shows in
    the other SoC sources of the same device, so it passes one message later at
    most.
    """

    jump: float = 15.0
    agree: float = 5.0
    accepted: float | None = None
    pending: float | None = None

    def update(self, value: float, others: Iterable[float]) -> tuple[float, bool]:
        """(value to report, whether the new value was held back)."""
        if (
            self.accepted is None
            or abs(value - self.accepted) < self.jump
            or any(abs(value - other) <= self.agree for other in others)
            or (self.pending is not None and abs(value - self.pending) <= self.agree)
        ):
            self.accepted = value
            self.pending = None
            return value, False
        self.pending = value
        return self.accepted, True


@dataclass(slots=True)
class GridDebouncer:
    """Report a grid change only after it has persisted `confirm_sec`.

    The first known reading is reported at once: there is no earlier state to
    protect, and holding it would show "unknown" for the first seconds after
    every restart. Changes to UNKNOWN are not handled here: stale or missing
    evidence reads unknown immediately (the tracker applies that).
    """

    confirm_sec: float = 10.0
    reported: GridStatus = GridStatus.UNKNOWN
    candidate: GridStatus | None = None
    candidate_since: float = 0.0
    _had_known: bool = False

    def observe(self, status: GridStatus, now: float) -> GridStatus:
        if not self._had_known and status is not GridStatus.UNKNOWN:
            self._had_known = True
            self.reported = status
            self.candidate = None
            return status
        if status is self.reported:
            self.candidate = None
            return status
        if status is not self.candidate:
            self.candidate = status
            self.candidate_since = now
        return self.current(now)

    def current(self, now: float) -> GridStatus:
        if self.candidate is not None and now - self.candidate_since >= self.confirm_sec:
            self.reported = self.candidate
            self.candidate = None
        return self.reported
