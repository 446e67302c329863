"""Stage 1 of a message: decode and screen it into batches of raw fields.

`Intake.read` turns one payload (protobuf envelope, JSON, or a status message)
into an `Arrival`: the plausible fields of every decoded frame or JSON message
("batches"), and what the tracker must count (errors, dropped fields, unknown
frame types). It keeps no device state besides two caches that make repeated
content cheap: protobuf frames whose bytes were seen recently are not parsed
again, and a JSON message whose fields equal the previous one is not screened
again. `Arrival.signature` identifies the content (not the sequence numbers),
so the tracker can tell a repeat of its last message from news.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import json
from typing import Any

from .envelope import EnvelopeError, parse_envelope
from .filters import is_meaningful, plausible_fields
from .json_decoder import JsonDecoded, JsonPayloadError, decode_json, decode_status
from .models import DeviceFamily
from .protobuf_decoder import PdataError, decode_frame
from .state import MessageSource

_FRAME_CACHE_SIZE = 64


def plausible_serial(value: Any) -> str | None:
    if isinstance(value, str) and len(value) >= 8 and value.isalnum() and value.strip("0"):
        return value
    return None


@dataclass(frozen=True, slots=True)
class Batch:
    """Fields to merge, all observed at the same moment."""

    fields: dict[str, Any]
    full_snapshot: bool = False  # a JSON snapshot: JSON keys it lacks are gone


@dataclass(slots=True)
class Arrival:
    """What one message brought, before it touches the device state."""

    batches: list[Batch] = field(default_factory=list)
    # (kind, message): kind "malformed" or "rejected".
    errors: list[tuple[str, str]] = field(default_factory=list)
    dropped: int = 0  # implausible fields removed by the screen
    unknown_types: list[str] = field(default_factory=list)
    serials: list[str] = field(default_factory=list)  # plausible serials, in order
    pack_serial: str | None = None  # bms.0.bms_sn, if the payload carried one
    online: bool | None = None  # the message's own online flag (status, latestQuotas)
    status_only: bool = False  # a /status message: no fields, only `online`
    # JSON: its kind ("latest_quotas", "quota", ...); protobuf: "protobuf".
    kind: str = ""
    signature: Any = None  # equal signatures -> equal batches (None: not comparable)

    @property
    def accepted(self) -> bool:
        return self.status_only or bool(self.batches)

    @property
    def noted(self) -> bool:
        """Something to count besides the fields: errors, dropped fields, unknown frames."""
        return bool(self.errors or self.dropped or self.unknown_types)


@dataclass(slots=True, eq=False)
class _Screened:
    """One frame's or JSON message's decode, kept for repeats of the same bytes.

    Compared by identity: the cache hands out the same object for the same content.
    """

    fields: dict[str, Any] | None  # None: not meaningful (rejected)
    dropped: int
    kind: str


class Intake:
    """Decoder front end of one device (holds only the repeat caches)."""

    __slots__ = ("_family", "_frames", "_json_arrival", "_json_raw")

    def __init__(self, family: DeviceFamily) -> None:
        self._family = family
        self._frames: dict[tuple[int, int, int, bytes], _Screened | None] = {}
        self._json_raw: dict[str, Any] | None = None
        self._json_arrival: Arrival | None = None

    def read(self, payload: Any, source: MessageSource) -> Arrival:
        if source is MessageSource.STATUS:
            return self._status(payload)
        if isinstance(payload, Mapping):
            return self._json(payload)
        if isinstance(payload, memoryview):
            payload = bytes(payload)
        if isinstance(payload, bytes | bytearray | str):
            start = payload.lstrip()[:1]
            if start in ("{", b"{"):
                try:
                    parsed = json.loads(payload)
                except (ValueError, UnicodeDecodeError) as err:
                    return _failed("malformed", f"invalid JSON: {err}")
                return self._json(parsed)
            return self._protobuf(payload)
        return _failed("malformed", f"unsupported payload type {type(payload).__name__}")

    # --- status -----------------------------------------------------------------

    def _status(self, payload: Any) -> Arrival:
        value: Any = payload
        if isinstance(payload, bytes | bytearray | memoryview):
            value = bytes(payload).decode("utf-8", errors="replace")
        if isinstance(value, str) and value.strip().startswith("{"):
            try:
                value = json.loads(value)
            except ValueError as err:
                return _failed("malformed", f"invalid status JSON: {err}")
        online = decode_status(value)
        if online is None:
            return _failed("malformed", "status message without an online flag")
        return Arrival(online=online, status_only=True)

    # --- JSON -------------------------------------------------------------------

    def _json(self, obj: Any) -> Arrival:
        try:
            decoded = decode_json(obj, self._family)
        except JsonPayloadError as err:
            return _failed("malformed", f"JSON: {err}")
        raw = decoded.fields
        previous = self._json_arrival
        if (
            previous is not None
            and previous.signature[:3] == (decoded.kind, decoded.online, decoded.sn)
            and raw == self._json_raw
        ):
            # The same fields again (steady snapshots, repeated pushes): the
            # same screening result; the tracker only reads an Arrival.
            return previous
        arrival = self._screen_json(decoded)
        self._json_raw, self._json_arrival = raw, arrival
        return arrival

    def _screen_json(self, decoded: JsonDecoded) -> Arrival:
        kept, dropped = plausible_fields(decoded.fields)
        arrival = Arrival(dropped=dropped, online=decoded.online, kind=decoded.kind)
        # A new object for new content: signatures compare it by identity.
        arrival.signature = (decoded.kind, decoded.online, decoded.sn, object())
        if not is_meaningful(kept):
            arrival.errors.append(("rejected", f"JSON {decoded.kind} without usable fields"))
            return arrival
        arrival.batches.append(Batch(kept, decoded.full_snapshot))
        if decoded.sn:
            arrival.serials.append(decoded.sn)
        return arrival

    # --- protobuf ---------------------------------------------------------------

    def _protobuf(self, payload: bytes | bytearray | memoryview | str) -> Arrival:
        try:
            frames = parse_envelope(payload)
        except EnvelopeError as err:
            return _failed("malformed", f"envelope: {err}")
        arrival = Arrival(kind="protobuf")
        signature: list[Any] = []
        for frame in frames:
            if frame.device_sn and plausible_serial(frame.device_sn):
                arrival.serials.append(frame.device_sn)
            if frame.is_truncated:
                arrival.errors.append(
                    (
                        "rejected",
                        f"{frame.type_key} truncated: {len(frame.pdata)} of {frame.data_len} bytes",
                    )
                )
                continue
            key = (frame.cmd_func, frame.cmd_id, frame.src, frame.pdata)
            screened = self._frames.get(key)
            if screened is None:
                try:
                    decoded = decode_frame(frame, self._family)
                except PdataError as err:
                    arrival.errors.append(("malformed", str(err)))
                    continue
                if decoded is None:
                    arrival.unknown_types.append(frame.type_key)
                    continue
                kept, dropped = plausible_fields(decoded.fields)
                screened = _Screened(kept if is_meaningful(kept) else None, dropped, decoded.kind)
                if len(self._frames) >= _FRAME_CACHE_SIZE:
                    self._frames.clear()
                self._frames[key] = screened
            arrival.dropped += screened.dropped
            if screened.fields is None:
                arrival.errors.append(
                    ("rejected", f"{frame.type_key} {screened.kind} without known fields")
                )
                continue
            arrival.batches.append(Batch(screened.fields))
            if arrival.pack_serial is None:
                arrival.pack_serial = plausible_serial(screened.fields.get("bms.0.bms_sn"))
            signature.append((screened, frame.device_sn))
        arrival.signature = tuple(signature)
        return arrival


def _failed(kind: str, message: str) -> Arrival:
    return Arrival(errors=[(kind, message)])
