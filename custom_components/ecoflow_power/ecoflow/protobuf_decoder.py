"""Decode one envelope frame's `pdata` into namespaced raw fields.

Keys are "<namespace>.<proto field name>" ("display.cms_batt_soc",
"bms.1.f32_show_soc" for pack 1, "cms.lcd_show_soc", "ps.bat_soc"), so fields
from different messages never collide when merged into one device state.
Only fields present on the wire appear: absent means "not in this message".
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from google.protobuf.message import DecodeError, Message

from .envelope import Frame
from .models import DeviceFamily
from .proto.power_station_pb2 import (
    BmsHeartbeatReport,
    CmsHeartbeatReport,
    DisplayPropertyUpload,
    RuntimePropertyUpload,
)
from .proto.powerstream_pb2 import InverterHeartbeat

DISPLAY = "display"
RUNTIME = "runtime"
CMS = "cms"
BMS = "bms"
POWERSTREAM = "ps"

_POWER_STATION_ROUTES: dict[tuple[int, int], tuple[str, type[Message]]] = {
    (254, 21): (DISPLAY, DisplayPropertyUpload),
    (254, 22): (RUNTIME, RuntimePropertyUpload),
    (32, 2): (CMS, CmsHeartbeatReport),
    (32, 50): (BMS, BmsHeartbeatReport),
}
# On River 3 (20, 1) is the app's snapshot request, on a PowerStream it is the
# inverter heartbeat: the same address means different things per family.
_POWERSTREAM_ROUTES: dict[tuple[int, int], tuple[str, type[Message]]] = {
    (20, 1): (POWERSTREAM, InverterHeartbeat),
}
_POWERSTREAM_SRC = 53  # seen in every PowerStream frame (pb06, pb07)


class PdataError(ValueError):
    """pdata does not parse as the message its address names."""


@dataclass(frozen=True, slots=True)
class DecodedFrame:
    kind: str  # namespace: display, runtime, cms, bms, ps
    type_key: str  # "cmd_func/cmd_id"
    fields: dict[str, Any]


def _routes_for(
    family: DeviceFamily, frame: Frame
) -> dict[tuple[int, int], tuple[str, type[Message]]]:
    if family is DeviceFamily.POWERSTREAM:
        return _POWERSTREAM_ROUTES
    if family is DeviceFamily.UNKNOWN and frame.src == _POWERSTREAM_SRC:
        return _POWERSTREAM_ROUTES
    return _POWER_STATION_ROUTES


def is_known_type(frame: Frame, family: DeviceFamily) -> bool:
    return (frame.cmd_func, frame.cmd_id) in _routes_for(family, frame)


_SCALAR, _REPEATED, _NESTED = 0, 1, 2
# How to flatten each field, by descriptor (a few dozen, fixed by the schema).
_FIELD_KIND: dict[Any, int] = {}


def _field_kind(descriptor: Any) -> int:
    kind = _FIELD_KIND.get(descriptor)
    if kind is None:
        if _is_repeated(descriptor):
            kind = _REPEATED
        elif descriptor.message_type is not None:
            kind = _NESTED
        else:
            kind = _SCALAR
        _FIELD_KIND[descriptor] = kind
    return kind


def _flatten(message: Message, prefix: str, out: dict[str, Any]) -> None:
    for descriptor, value in message.ListFields():
        kind = _field_kind(descriptor)
        if kind == _SCALAR:
            out[prefix + descriptor.name] = value
        elif kind == _NESTED:
            # CMS heartbeat nests v1p0/v1p3; their field names do not collide.
            _flatten(value, prefix, out)
        else:
            out[prefix + descriptor.name] = tuple(value)


def _is_repeated(descriptor: Any) -> bool:
    # FieldDescriptor.label is deprecated in protobuf 6+; is_repeated replaces it.
    flag = getattr(descriptor, "is_repeated", None)
    if flag is not None:
        return bool(flag)
    return bool(descriptor.label == descriptor.LABEL_REPEATED)


def decode_frame(frame: Frame, family: DeviceFamily) -> DecodedFrame | None:
    """Fields of a known frame, None for an address this family does not use.

    Raises PdataError when the bytes do not parse.
    """
    route = _routes_for(family, frame).get((frame.cmd_func, frame.cmd_id))
    if route is None:
        return None
    kind, message_type = route
    message = message_type()
    try:
        message.ParseFromString(frame.pdata)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise PdataError(f"{frame.type_key} {message_type.__name__}: {err}") from err
    fields: dict[str, Any] = {}
    if kind == BMS:
        # One heartbeat per pack: key by pack number so packs do not overwrite
        # each other. A heartbeat without `num` is the main pack (proto3 default 0).
        pack = getattr(message, "num", 0)
        _flatten(message, f"{BMS}.{pack}.", fields)
        fields.pop(f"{BMS}.{pack}.num", None)
    else:
        _flatten(message, f"{kind}.", fields)
    return DecodedFrame(kind=kind, type_key=frame.type_key, fields=fields)
