"""One device's telemetry: merge every message, filter, and expose PowerState.

The tracker is the only stateful part of the decoding side. It never reads
the clock (time is passed in) and never raises out of `ingest`: a bad message
is counted in `stats` and skipped, because one corrupt MQTT payload must not
take down the integration's message loop.
"""

from __future__ import annotations

from collections.abc import Mapping
import copy
from dataclasses import dataclass, field, replace
import json
import math
from typing import Any

from .envelope import EnvelopeError, parse_envelope
from .filters import GridDebouncer, SocJumpFilter, is_meaningful, plausible_fields
from .grid import assess_grid
from .json_decoder import JsonPayloadError, decode_json, decode_status
from .models import ModelInfo
from .normalize import Normalized, normalize
from .protobuf_decoder import PdataError, decode_frame
from .state import GridStatus, MessageSource, PowerState

# Raw keys written by the protobuf decoder; a full JSON snapshot leaves them alone.
_PROTOBUF_NAMESPACES = ("display.", "runtime.", "cms.", "bms.", "ps.")
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


def _plausible_serial(value: Any) -> str | None:
    if isinstance(value, str) and len(value) >= 8 and value.isalnum() and value.strip("0"):
        return value
    return None


class DeviceTracker:
    def __init__(self, sn: str, model: ModelInfo, *, grid_confirm_sec: float = 10.0) -> None:
        self.sn = sn
        self.model = model
        self.payload_sn: str | None = None  # serial found in a payload, if any
        self._fields: dict[str, Any] = {}
        self._seen: dict[str, float] = {}
        self._stats = DecodeStats()
        self._online: bool | None = None
        self._online_seen: float | None = None
        self._updated_at: float | None = None
        self._soc_filter = SocJumpFilter()
        self._soc_min_filter = SocJumpFilter()
        self._filtered: dict[str, float] = {}
        self._grid = GridDebouncer(confirm_sec=grid_confirm_sec)
        self._signature: PowerState | None = None

    # --- public API -----------------------------------------------------------

    @property
    def stats(self) -> DecodeStats:
        return copy.deepcopy(self._stats)

    def raw_fields(self) -> dict[str, Any]:
        return dict(self._fields)

    def ingest(
        self, payload: bytes | str | Mapping[str, Any], source: MessageSource, now: float
    ) -> bool:
        """Merge one message; True when the normalized state changed. Never raises."""
        self._stats.messages += 1
        try:
            if not self._accept(payload, source, now):
                return False
            return self._refresh(now)
        except Exception as err:
            self._stats.malformed += 1
            self._stats.last_error = _short(f"internal error on {source}: {err!r}")
            return False

    def snapshot(self, now: float, stale_after_sec: float) -> PowerState:
        normalized = normalize(self._fields, self._seen, self.model)
        return self._compose(normalized, now, stale_after_sec, debounced=True)

    # --- decoding -------------------------------------------------------------

    def _error(self, kind: str, message: str) -> None:
        if kind == "malformed":
            self._stats.malformed += 1
        else:
            self._stats.rejected += 1
        self._stats.last_error = _short(message)

    def _accept(
        self, payload: bytes | str | Mapping[str, Any], source: MessageSource, now: float
    ) -> bool:
        if source is MessageSource.STATUS:
            return self._accept_status(payload, now)
        if isinstance(payload, Mapping):
            return self._accept_json(payload, now)
        if isinstance(payload, bytes | bytearray | memoryview | str):
            text_start = payload.lstrip()[:1]
            if text_start in ("{", b"{"):
                try:
                    parsed = json.loads(payload)
                except (ValueError, UnicodeDecodeError) as err:
                    self._error("malformed", f"invalid JSON: {err}")
                    return False
                return self._accept_json(parsed, now)
            return self._accept_protobuf(payload, now)
        self._error("malformed", f"unsupported payload type {type(payload).__name__}")
        return False

    def _accept_status(self, payload: Any, now: float) -> bool:
        value: Any = payload
        if isinstance(payload, bytes | bytearray | memoryview):
            value = bytes(payload).decode("utf-8", errors="replace")
        if isinstance(value, str) and value.strip().startswith("{"):
            try:
                value = json.loads(value)
            except ValueError as err:
                self._error("malformed", f"invalid status JSON: {err}")
                return False
        online = decode_status(value)
        if online is None:
            self._error("malformed", "status message without an online flag")
            return False
        self._online = online
        self._online_seen = now
        self._stats.decoded += 1
        return True

    def _accept_json(self, obj: Any, now: float) -> bool:
        try:
            decoded = decode_json(obj, self.model.family)
        except JsonPayloadError as err:
            self._error("malformed", f"JSON: {err}")
            return False
        fields, dropped = plausible_fields(decoded.fields)
        if dropped:
            self._stats.rejected += dropped
        if not is_meaningful(fields):
            self._error("rejected", f"JSON {decoded.kind} without usable fields")
            return False
        if decoded.full_snapshot:
            for key in [k for k in self._fields if not k.startswith(_PROTOBUF_NAMESPACES)]:
                if key not in fields:
                    del self._fields[key]
                    self._seen.pop(key, None)
        self._merge(fields, now)
        if decoded.sn:
            self.payload_sn = decoded.sn
        if decoded.online is not None:
            self._online = decoded.online
            self._online_seen = now
        self._stats.decoded += 1
        return True

    def _accept_protobuf(self, payload: bytes | bytearray | memoryview | str, now: float) -> bool:
        try:
            frames = parse_envelope(payload)
        except EnvelopeError as err:
            self._error("malformed", f"envelope: {err}")
            return False
        accepted = False
        for frame in frames:
            if frame.device_sn and _plausible_serial(frame.device_sn):
                self.payload_sn = frame.device_sn
            if frame.is_truncated:
                self._error(
                    "rejected",
                    f"{frame.type_key} truncated: {len(frame.pdata)} of {frame.data_len} bytes",
                )
                continue
            try:
                decoded = decode_frame(frame, self.model.family)
            except PdataError as err:
                self._error("malformed", str(err))
                continue
            if decoded is None:
                unknown = self._stats.unknown_types
                unknown[frame.type_key] = unknown.get(frame.type_key, 0) + 1
                continue
            fields, dropped = plausible_fields(decoded.fields)
            self._stats.rejected += dropped
            if not is_meaningful(fields):
                self._error("rejected", f"{frame.type_key} {decoded.kind} without known fields")
                continue
            self._merge(fields, now)
            if self.payload_sn is None:
                serial = fields.get("bms.0.bms_sn")
                self.payload_sn = _plausible_serial(serial)
            accepted = True
        if accepted:
            self._stats.decoded += 1
        return accepted

    def _merge(self, fields: Mapping[str, Any], now: float) -> None:
        counts = self._stats.raw_field_counts
        for key, value in fields.items():
            self._fields[key] = value
            self._seen[key] = now
            counts[key] = counts.get(key, 0) + 1
        self._updated_at = now if self._updated_at is None else max(self._updated_at, now)

    # --- state ------------------------------------------------------------------

    def _refresh(self, now: float) -> bool:
        """Run the stateful filters on what this message reported; True if the state changed."""
        normalized = normalize(self._fields, self._seen, self.model)
        self._filter_soc(normalized, now)
        verdict, _ = assess_grid(normalized.grid_signals, now, _NEVER_STALE)
        self._grid.observe(verdict, now)
        signature = self._compose(normalized, now, _NEVER_STALE, debounced=True)
        signature = replace(signature, updated_at=None, seen_at={})
        changed = signature != self._signature
        self._signature = signature
        return changed

    def _filter_soc(self, normalized: Normalized, now: float) -> None:
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
            self._filtered[name] = reported

    def _compose(
        self, normalized: Normalized, now: float, stale_after_sec: float, *, debounced: bool
    ) -> PowerState:
        values = dict(normalized.values)
        for name in ("soc", "soc_min"):
            if name in self._filtered and name in values:
                values[name] = self._filtered[name]

        fresh_status, evidence = assess_grid(normalized.grid_signals, now, stale_after_sec)
        status = fresh_status
        if debounced and fresh_status is not GridStatus.UNKNOWN:
            status = self._grid.current(now)
            pending = self._grid.candidate
            if pending is not None and pending is not status:
                waited = now - self._grid.candidate_since
                evidence = (*evidence, f"awaiting confirmation: {pending} for {waited:.0f} s")

        seen = dict(normalized.seen)
        if normalized.grid_signals:
            seen["grid"] = max(signal.seen_at for signal in normalized.grid_signals)
        if self._online_seen is not None:
            seen["online"] = self._online_seen

        soc_min = values.get("soc_min")
        return PowerState(
            sn=self.sn or self.payload_sn or "",
            model=self.model.name,
            soc=values.get("soc"),
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
            seen_at=seen,
        )
