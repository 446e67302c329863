"""Readings: raw values with their source and time, and what normalization builds.

Shared by normalize.py (the per-family mapping) and battery.py (packs,
capacity, cut-offs).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
import math
from typing import Any, NamedTuple

from . import grid

_AS_READ: Any = object()


class Reading(NamedTuple):
    """One raw value and where and when it came from (a tuple: built by the dozen per message)."""

    value: Any
    source: str  # raw field key
    seen_at: float


# Reading(...) without the generated __new__: a few dozen per message.
_new_reading = tuple.__new__


@dataclass(slots=True)
class Normalized:
    values: dict[str, Any] = field(default_factory=dict)  # PowerState field -> value
    seen: dict[str, float] = field(default_factory=dict)  # PowerState field -> time
    sources: dict[str, str] = field(default_factory=dict)  # PowerState field -> raw key
    soc_readings: list[Reading] = field(default_factory=list)  # every SoC-like value
    grid_signals: list[grid.GridSignal] = field(default_factory=list)
    # When the readings soc_min rests on arrived: it changes once the oldest
    # of them is older than `soc_max_age`.
    soc_basis: list[float] = field(default_factory=list)

    def put(self, name: str, reading: Reading | None, value: Any = _AS_READ) -> None:
        """Record a quantity, its source and time; `value` overrides the raw value."""
        if reading is None:
            return
        self.values[name] = reading.value if value is _AS_READ else value
        self.seen[name] = reading.seen_at
        self.sources[name] = reading.source


class RawFields:
    """Typed, timestamped access to the merged raw fields."""

    __slots__ = ("_index", "fields", "now", "pack_silent_after", "seen", "soc_max_age")

    def __init__(
        self,
        fields: Mapping[str, Any],
        seen: Mapping[str, float],
        index: dict[str, list[tuple[str, Any]]] | None = None,
        *,
        now: float = math.inf,
        soc_max_age: float = math.inf,
        pack_silent_after: float = math.inf,
    ) -> None:
        self.fields = fields
        self.seen = seen
        self._index = {} if index is None else index
        self.now = now
        self.soc_max_age = soc_max_age
        self.pack_silent_after = pack_silent_after

    def keyed(self, tag: str, pick: Callable[[str], Any]) -> list[tuple[str, Any]]:
        """(key, pick(key)) for every key `pick` accepts, in field order.

        Scanning every field name is most of a normalization's cost, and the
        names change far less often than the values: the caller may keep the
        index between calls and clear it when the set of keys changes.
        """
        found = self._index.get(tag)
        if found is None:
            found = [(key, hit) for key in self.fields if (hit := pick(key))]
            self._index[tag] = found
        return found

    def has_prefix(self, prefixes: tuple[str, ...]) -> bool:
        return bool(
            self.keyed("prefix:" + ",".join(prefixes), lambda key: key.startswith(prefixes))
        )

    def number(self, key: str) -> Reading | None:
        value: Any = self.fields.get(key)
        kind = type(value)
        if kind is float:
            if not math.isfinite(value):
                return None
        elif kind is not int and (
            # bool is an int subclass; a flag is not a quantity.
            value is None
            or isinstance(value, bool)
            or not isinstance(value, int | float)
            or (isinstance(value, float) and not math.isfinite(value))
        ):
            return None
        return _new_reading(Reading, (value, key, self.seen.get(key, 0.0)))

    def freshest(self, *keys: str) -> Reading | None:
        """Newest of several sources; on a tie the earlier key (higher priority) wins."""
        best: Reading | None = None
        for key in keys:
            reading = self.number(key)
            if reading is not None and (best is None or reading.seen_at > best.seen_at):
                best = reading
        return best

    def scaled(self, reading: Reading | None, factor: float) -> Reading | None:
        if reading is None:
            return None
        return Reading(reading.value * factor, reading.source, reading.seen_at)


def rounded(value: float, digits: int = 2) -> float:
    return round(float(value), digits)
