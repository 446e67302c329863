"""One device's telemetry: every message in, one PowerState out.

The tracker is the only stateful part of the decoding side. It never reads
the clock (time is passed in) and never raises out of `ingest`: a bad message
is counted in `stats` and skipped, because one corrupt MQTT payload must not
take down the integration's message loop.

One message makes one pass through these stages (`ingest`):

1. intake    decode the payload and screen it (`intake.Intake`): batches of
             plausible raw fields, plus what to count; is it fresh evidence?
2. merge     into the device's raw fields, each stamped with the message time
             (`store.RawStore`);
3. normalize the merged fields into model-independent values (normalize.py);
4. filter    the SoC readings this message reported (filters.SocJumpFilter);
5. grid      assess the verdict and debounce it (grid.py, filters.GridDebouncer);
6. compose   the PowerState, once; `ingest` says whether it changed.

A message that repeats the previous one (same content, nothing merged in
between) skips stages 2-6: only the times move. `snapshot(now, stale)`
returns the state of the last pass unless something time-dependent applies:
grid evidence gone stale, a grid change waiting for its confirmation, or SoC
readings grown older than the SoC age bound (docs/telemetry.md).
"""

from __future__ import annotations

from collections.abc import Mapping
import copy
from dataclasses import dataclass, field, replace
import math
from typing import Any

from .filters import GridDebouncer, SocJumpFilter
from .grid import GridSignal, assess_grid
from .intake import Arrival, Intake
from .models import ModelInfo
from .normalize import normalize
from .readings import Normalized
from .state import GridStatus, MessageSource, PowerState
from .store import RawStore

_NEVER_STALE = math.inf


@dataclass(slots=True)
class DecodeStats:
    """Counters for diagnostics.

    messages: ingest calls. decoded: messages that updated the state.
    malformed: payloads or frames that did not parse. rejected: frames refused
    by a filter (empty, truncated, implausible) plus SoC readings held back as
    glitches. unknown_types: frames of an address this family does not use,
    keyed "cmd_func/cmd_id" (or "json:<shape>").
    """

    messages: int = 0
    decoded: int = 0
    malformed: int = 0
    rejected: int = 0
    unknown_types: dict[str, int] = field(default_factory=dict)
    raw_field_counts: dict[str, int] = field(default_factory=dict)
    last_error: str | None = None


def _short(text: str, limit: int = 200) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


# A pack that has not reported for this long while another pack did is no
# longer in use (four of the session's 30 s snapshot requests without it).
PACK_SILENT_AFTER_SEC = 120.0
# A SoC reading older than this no longer counts toward soc_min, however fresh
# the rest of the telemetry is: a frozen SoC field must not look current.
SOC_MAX_AGE_SEC = 900.0


class DeviceTracker:
    def __init__(
        self,
        sn: str,
        model: ModelInfo,
        *,
        grid_confirm_sec: float = 10.0,
        pack_silent_after_sec: float = PACK_SILENT_AFTER_SEC,
        soc_max_age_sec: float = SOC_MAX_AGE_SEC,
    ) -> None:
        self.sn = sn
        self.model = model
        self._pack_silent_after = pack_silent_after_sec
        self._soc_max_age = soc_max_age_sec
        self.payload_sn: str | None = None  # serial found in a payload, if any
        self._intake = Intake(model.family)
        self._store = RawStore()
        self._stats = DecodeStats()
        self._online: bool | None = None
        self._online_seen: float | None = None
        self._updated_at: float | None = None
        self._fresh_at: float | None = None  # newest fresh evidence (see _is_fresh)
        self._restamped: float | None = None  # time of the repeated fields in the state
        self._soc_filter = SocJumpFilter()
        self._soc_min_filter = SocJumpFilter()
        # name -> (value to report, source it was reported for): see _filtered_value.
        self._filtered: dict[str, tuple[float, str | None]] = {}
        self._grid = GridDebouncer(confirm_sec=grid_confirm_sec)
        self._normalized = self._normalize(0.0)
        self._state = self._compose(0.0)
        self._settled = False  # the first accepted message always counts as a change

    # --- public API -----------------------------------------------------------

    @property
    def stats(self) -> DecodeStats:
        stats = copy.copy(self._stats)
        stats.unknown_types = dict(self._stats.unknown_types)
        stats.raw_field_counts = self._store.field_counts()
        return stats

    @property
    def decoded_messages(self) -> int:
        """stats.decoded without copying the stats."""
        return self._stats.decoded

    def raw_fields(self) -> dict[str, Any]:
        return dict(self._store.fields)

    @property
    def state(self) -> PowerState:
        """The state the last message produced (no staleness applied)."""
        self._materialize()
        return self._state

    def ingest(
        self, payload: bytes | str | Mapping[str, Any], source: MessageSource, now: float
    ) -> bool:
        """Merge one message; True when the normalized state changed. Never raises."""
        self._stats.messages += 1
        try:
            arrival = self._intake.read(payload, source)  # 1. intake
            if arrival.noted:
                self._count(arrival)
            for serial in arrival.serials:
                self.payload_sn = serial
            if not arrival.accepted:
                return False
            self._stats.decoded += 1
            if self.payload_sn is None:
                self.payload_sn = arrival.pack_serial
            if arrival.online is not None:
                self._online = arrival.online
                self._online_seen = now
            if arrival.status_only:
                return self._settle(now)
            fresh = self._is_fresh(arrival, source)
            if fresh:
                self._fresh_at = now if self._fresh_at is None else max(self._fresh_at, now)
            if self._is_repeat(arrival, now):
                self._restamp(now)
                return False
            self._restamped = None  # the pass below recomputes every time
            self._store.merge(arrival, now)  # 2. merge
            self._updated_at = now if self._updated_at is None else max(self._updated_at, now)
            self._normalized = self._normalize(now)  # 3. normalize
            self._filter_soc(now)  # 4. filter
            verdict, _ = assess_grid(self._normalized.grid_signals, now, _NEVER_STALE)  # 5. grid
            self._grid.observe(verdict, now)
            return self._settle(now)  # 6. compose
        except Exception as err:
            self._stats.malformed += 1
            self._stats.last_error = _short(f"internal error on {source}: {err!r}")
            return False

    def snapshot(self, now: float, stale_after_sec: float) -> PowerState:
        """The state as of `now`: grid evidence older than `stale_after_sec` does not count."""
        self._materialize()
        state = self._state
        basis = self._normalized.soc_basis
        if basis and now - min(basis) > self._soc_max_age:
            state = self._aged_soc(state, now)
        signals = self._normalized.grid_signals
        pending = self._grid.candidate is not None
        if not pending and all(now - signal.seen_at <= stale_after_sec for signal in signals):
            return state
        status, evidence = self._grid_verdict(signals, now, stale_after_sec)
        if status is state.grid and evidence == state.grid_evidence:
            return state
        return replace(state, grid=status, grid_evidence=evidence)

    def _aged_soc(self, state: PowerState, now: float) -> PowerState:
        """soc_min without the readings that have grown too old by `now`."""
        aged = self._normalize(now)
        soc_min = aged.values.get("soc_min")
        return replace(
            state,
            soc_min=soc_min,
            soc_min_source=aged.sources.get("soc_min") if soc_min is not None else None,
        )

    # --- 1. intake: what the message brought -------------------------------------

    def _error(self, kind: str, message: str) -> None:
        if kind == "malformed":
            self._stats.malformed += 1
        else:
            self._stats.rejected += 1
        self._stats.last_error = _short(message)

    def _count(self, arrival: Arrival) -> None:
        self._stats.rejected += arrival.dropped
        for kind, message in arrival.errors:
            self._error(kind, message)
        unknown = self._stats.unknown_types
        for type_key in arrival.unknown_types:
            unknown[type_key] = unknown.get(type_key, 0) + 1

    # --- 2. merge -------------------------------------------------------------

    def _is_fresh(self, arrival: Arrival, source: MessageSource) -> bool:
        """Whether the message is evidence of the station as it is now.

        Not fresh: a reply that says the station is offline (the cloud
        answering from its cache), and an HTTP quota snapshot that carries no
        news: quota/all is always the cloud's copy, so it counts only when
        some value differs from what was last seen. The first poll after a
        start has nothing to differ from and does not count.
        """
        if arrival.online is False:
            return False
        return source is not MessageSource.HTTP_QUOTA or self._store.carries_news(arrival)

    def _normalize(self, now: float) -> Normalized:
        store = self._store
        store.flush()
        return normalize(
            store.fields,
            store.seen,
            self.model,
            index=store.key_index,
            now=now,
            soc_max_age=self._soc_max_age,
            pack_silent_after=self._pack_silent_after,
        )

    def _is_repeat(self, arrival: Arrival, now: float) -> bool:
        """A repeat of the last merged message (store.py), and nothing held or pending.

        Held SoC readings and pending grid changes take the full pass: a
        repeat can confirm them.
        """
        return (
            self._grid.candidate is None
            and self._soc_filter.pending is None
            and self._soc_min_filter.pending is None
            and self._store.is_repeat(arrival, now)
        )

    def _restamp(self, now: float) -> None:
        """Stages 2-6 for a repeat: the last merge's fields are now `now` old.

        Nothing else changes; the state catches up when read (`_materialize`).
        """
        before = self._store.restamp(now)
        if self._restamped is None:
            self._restamped = before
        if self._updated_at is None or now > self._updated_at:
            self._updated_at = now

    def _materialize(self) -> None:
        """Move the repeated fields' values and grid signals to their new time."""
        before = self._restamped
        if before is None:
            return
        self._restamped = None
        now = self._store.last_at
        assert now is not None
        normalized = self._normalized
        if now != before:
            # The repeat's fields were the newest, so exactly the values and
            # the grid signals stamped `before` came from it.
            normalized.seen = {
                name: (now if at == before else at) for name, at in normalized.seen.items()
            }
            normalized.grid_signals = [
                replace(signal, seen_at=now) if signal.seen_at == before else signal
                for signal in normalized.grid_signals
            ]
            normalized.soc_basis = [now if at == before else at for at in normalized.soc_basis]
        self._state = replace(
            self._state,
            online=self._online,
            updated_at=self._updated_at,
            fresh_at=self._fresh_at,
            seen_at=self._seen_at(),
        )

    # --- 4. filter ------------------------------------------------------------

    def _filter_soc(self, now: float) -> None:
        normalized = self._normalized
        for name, guard in (("soc", self._soc_filter), ("soc_min", self._soc_min_filter)):
            value = normalized.values.get(name)
            # Only a value this message reported counts as a new reading: a
            # repeated snapshot of the same merged field is not confirmation.
            if value is None or normalized.seen.get(name) != now:
                continue
            source = normalized.sources.get(name)
            others = [
                float(reading.value)
                for reading in normalized.soc_readings
                if reading.source != source
            ]
            reported, held = guard.update(float(value), others)
            if held:
                self._error(
                    "rejected", f"{name} jump to {value} from {source} held (reporting {reported})"
                )
            self._filtered[name] = (reported, source)

    # --- 5. grid --------------------------------------------------------------

    def _grid_verdict(
        self, signals: list[GridSignal], now: float, stale_after_sec: float
    ) -> tuple[GridStatus, tuple[str, ...]]:
        """The verdict on fresh evidence, debounced: a change shows once confirmed."""
        status, evidence = assess_grid(signals, now, stale_after_sec)
        if status is GridStatus.UNKNOWN:
            return status, evidence
        status = self._grid.current(now)
        pending = self._grid.candidate
        if pending is not None and pending is not status:
            waited = now - self._grid.candidate_since
            evidence = (*evidence, f"awaiting confirmation: {pending} for {waited:.0f} s")
        return status, evidence

    # --- 6. compose -----------------------------------------------------------

    def _settle(self, now: float) -> bool:
        self._materialize()
        previous = self._state
        self._state = self._compose(now)
        first, self._settled = not self._settled, True
        return first or not _same_readings(previous, self._state)

    def _seen_at(self) -> dict[str, float]:
        normalized = self._normalized
        seen = dict(normalized.seen)
        if normalized.grid_signals:
            seen["grid"] = max(signal.seen_at for signal in normalized.grid_signals)
        if self._online_seen is not None:
            seen["online"] = self._online_seen
        return seen

    def _filtered_value(self, name: str) -> Any:
        """The value to report: the jump filter's, while it speaks for the same source.

        When the source changes without a new reading (a pack left soc_min),
        the filter's figure belongs to the old source and the value stands.
        """
        normalized = self._normalized
        if name not in normalized.values:
            return None
        filtered = self._filtered.get(name)
        if filtered is not None and filtered[1] == normalized.sources.get(name):
            return filtered[0]
        return normalized.values[name]

    def _compose(self, now: float) -> PowerState:
        normalized: Normalized = self._normalized
        values = normalized.values
        soc = self._filtered_value("soc")
        soc_min = self._filtered_value("soc_min")
        status, evidence = self._grid_verdict(normalized.grid_signals, now, _NEVER_STALE)
        return PowerState(
            sn=self.sn or self.payload_sn or "",
            model=self.model.name,
            soc=soc,
            soc_min=soc_min,
            soc_min_source=normalized.sources.get("soc_min") if soc_min is not None else None,
            soc_modules=values.get("soc_modules", ()),
            grid=status,
            grid_evidence=evidence,
            ac_in_w=values.get("ac_in_w"),
            ac_in_v=values.get("ac_in_v"),
            watts_in=values.get("watts_in"),
            watts_out=values.get("watts_out"),
            battery_w=values.get("battery_w"),
            solar_w=values.get("solar_w"),
            remaining_discharge_min=values.get("remaining_discharge_min"),
            remaining_charge_min=values.get("remaining_charge_min"),
            charge_state=values.get("charge_state"),
            energy_kwh=values.get("energy_kwh", {}),
            firmware=values.get("firmware"),
            online=self._online,
            updated_at=self._updated_at,
            seen_at=self._seen_at(),
            capacity_wh=values.get("capacity_wh"),
            discharge_limit_pct=values.get("discharge_limit_pct"),
            backup_reserve_pct=values.get("backup_reserve_pct"),
            fresh_at=self._fresh_at,
        )


_TIMES = frozenset({"updated_at", "fresh_at", "seen_at"})
_READINGS = tuple(name for name in PowerState.__dataclass_fields__ if name not in _TIMES)


def _same_readings(a: PowerState, b: PowerState) -> bool:
    """Equal apart from times: a steady value re-reported is not a change."""
    return all(getattr(a, name) == getattr(b, name) for name in _READINGS)
