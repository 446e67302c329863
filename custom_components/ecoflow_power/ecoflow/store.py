"""Stage 2 of a message: the device's merged raw fields, their times and counts.

`RawStore` keeps every raw field a device reported, when it last arrived and
how often, and recognises a message that repeats the last merged one. For such
a repeat only the time changes, and even that is written lazily: a steady
device repeats itself far more often than anyone reads the fields.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
import math
from typing import Any

from .intake import Arrival

# Raw keys written by the protobuf decoder; a full JSON snapshot leaves them alone.
_PROTOBUF_NAMESPACES = ("display.", "runtime.", "cms.", "bms.", "ps.")
_MISSING = object()


@dataclass(slots=True)
class _LastMerge:
    """The newest message that merged fields, to recognise a repeat of it."""

    signature: Any
    keys: tuple[str, ...]  # every key it merged
    at: float  # when it (or its latest repeat) arrived
    newest_before: float  # newest merge time of anything before it
    repeats: int = 0  # repeats whose times and counts are not yet written


class RawStore:
    """Merged raw fields of one device. Read `fields`/`seen` only after `flush()`."""

    __slots__ = ("_counts", "_last", "_newest", "fields", "key_index", "seen")

    def __init__(self) -> None:
        self.fields: dict[str, Any] = {}
        self.seen: dict[str, float] = {}  # key -> when it last arrived
        # Cache of field-name scans (normalize.py `_Raw.keyed`), cleared
        # whenever the set of names changes.
        self.key_index: dict[str, list[tuple[str, Any]]] = {}
        self._counts: Counter[str] = Counter()
        self._newest = -math.inf
        self._last: _LastMerge | None = None

    @property
    def last_at(self) -> float | None:
        """When the last merged message (or its latest repeat) arrived."""
        return None if self._last is None else self._last.at

    def field_counts(self) -> dict[str, int]:
        self.flush()
        return dict(self._counts)

    def carries_news(self, arrival: Arrival) -> bool:
        """Some field of the message differs from the value last seen for it."""
        fields = self.fields
        for batch in arrival.batches:
            for key, value in batch.fields.items():
                known = fields.get(key, _MISSING)
                if known is not _MISSING and known != value:
                    return True
        return False

    def is_repeat(self, arrival: Arrival, now: float) -> bool:
        """The last merged message again, with nothing that could reorder sources.

        Its fields then have the same values; only their time moves to `now`.
        Sources compete by time, so this holds only if the last merge was the
        newest by a margin (no tie with an older message), or `now` equals it.
        """
        last = self._last
        return (
            last is not None
            and arrival.signature is not None
            and arrival.signature == last.signature
            and (now == last.at or (now > last.at and last.at > last.newest_before))
        )

    def restamp(self, now: float) -> float:
        """Record a repeat at `now`; returns the time its fields had before."""
        last = self._last
        assert last is not None
        before = last.at
        last.at = now
        last.repeats += 1
        self._newest = max(self._newest, now)
        return before

    def flush(self) -> None:
        """Write the times and counts of repeats."""
        last = self._last
        if last is None or not last.repeats:
            return
        self.seen.update(dict.fromkeys(last.keys, last.at))
        counts = self._counts
        for key in last.keys:
            counts[key] += last.repeats
        last.repeats = 0

    def merge(self, arrival: Arrival, now: float) -> None:
        self.flush()
        fields, seen = self.fields, self.seen
        size = len(fields)
        keys: list[str] = []
        for batch in arrival.batches:
            if batch.full_snapshot and not fields.keys() <= batch.fields.keys():
                gone = [
                    key
                    for key in fields
                    if not key.startswith(_PROTOBUF_NAMESPACES) and key not in batch.fields
                ]
                for key in gone:
                    del fields[key]
                    seen.pop(key, None)
                if gone:
                    self.key_index.clear()
                    size = len(fields)
            fields.update(batch.fields)
            seen.update(dict.fromkeys(batch.fields, now))
            self._counts.update(batch.fields.keys())
            keys.extend(batch.fields)
        if len(fields) != size:
            self.key_index.clear()
        self._last = _LastMerge(arrival.signature, tuple(keys), now, self._newest)
        self._newest = max(self._newest, now)
