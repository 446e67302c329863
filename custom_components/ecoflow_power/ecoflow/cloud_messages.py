"""The EcoFlow cloud broker's wire: topics, snapshot requests, refusals, raw messages.

Pure functions and one dataclass, no connection: `mqtt_session.py` uses them
to subscribe, route and ask; the simulator and tests use them to speak the
same wire.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
import json
from typing import Any

import aiomqtt

from .proto import envelope_pb2
from .state import MessageSource

# CONNACK codes that mean "these credentials are no good": 4/5 in MQTT 3.1.1,
# which paho 2.x reports as the MQTT 5 reason codes 134/135.
_REFUSED_CODES = frozenset({4, 5, 134, 135})
_REFUSED_WORDS = ("not authori", "bad user name or password", "bad username or password")


@dataclass(frozen=True)
class RawMessage:
    """One message for one device, undecoded.

    ``payload`` is a mapping when the message was a JSON object (Open-API
    pushes, JSON replies, the HTTPS quota/all data) and the raw bytes
    otherwise (protobuf envelopes, possibly hex or base64 as sent).
    """

    sn: str
    source: MessageSource
    payload: bytes | Mapping[str, Any]
    received_at: float
    topic: str


def latest_quotas_json(request_id: int) -> bytes:
    """JSON snapshot request for JSON devices (Delta 2 / River 2 / Delta Pro).

    Same shape as tolwi/hassio-ecoflow-cloud ``BaseDevice.private_api_get_quota``
    and the other public clients: operateType ``latestQuotas``, empty params.
    """
    return json.dumps(
        {
            "from": "HomeAssistant",
            "id": str(request_id),
            "version": "1.1",
            "moduleType": 0,
            "operateType": "latestQuotas",
            "params": {},
        },
        separators=(",", ":"),
    ).encode()


def latest_quotas_protobuf(seq: int) -> bytes:
    """Protobuf snapshot request for the River 3 / Delta 3 family.

    An envelope with one empty header carrying only ``from`` and ``seq``, as
    maodijim/ecoflow_exporter ``proto/mqtt.py`` publishes it; its answer is the
    pb01 capture (four plain headers on get_reply).
    """
    header = envelope_pb2.Header(seq=seq)
    setattr(header, "from", "Android")
    return envelope_pb2.HeaderMessage(header=[header]).SerializeToString()


def is_refused_credentials(err: BaseException) -> bool:
    """Whether a connect error says the broker refused the user/password."""
    if isinstance(err, aiomqtt.MqttCodeError):
        rc = err.rc
        value = getattr(rc, "value", rc)
        if isinstance(value, int) and value in _REFUSED_CODES:
            return True
    text = str(err).lower()
    return any(word in text for word in _REFUSED_WORDS)


def device_topics(account: str, sn: str) -> list[str]:
    """The topics one device's telemetry and replies arrive on."""
    return [
        f"/open/{account}/{sn}/quota",
        f"/open/{account}/{sn}/status",
        f"/app/device/property/{sn}",
        f"/app/{account}/{sn}/thing/property/get_reply",
    ]


def route(topic: str) -> tuple[str, MessageSource] | None:
    """(device serial, kind of message) of a topic; None for a topic that is not ours."""
    parts = topic.split("/")
    # "/open/{account}/{sn}/quota" -> ["", "open", account, sn, "quota"]
    if len(parts) == 5 and parts[1] == "open":
        if parts[4] == "quota":
            return parts[3], MessageSource.OPEN_QUOTA
        if parts[4] == "status":
            return parts[3], MessageSource.STATUS
    if len(parts) == 5 and parts[1:4] == ["app", "device", "property"]:
        return parts[4], MessageSource.PROPERTY
    if len(parts) == 7 and parts[1] == "app" and parts[4:] == ["thing", "property", "get_reply"]:
        return parts[3], MessageSource.GET_REPLY
    return None


def maybe_json(data: bytes) -> bytes | Mapping[str, Any]:
    """The payload as a JSON object when it is one, else the bytes as sent."""
    if data[:1] != b"{":
        return data
    try:
        parsed = json.loads(data)
    except ValueError:
        return data
    return parsed if isinstance(parsed, dict) else data
