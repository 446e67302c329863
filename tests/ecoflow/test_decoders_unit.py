"""Envelope, JSON shapes and model identification."""

from __future__ import annotations

import base64

import pytest

from custom_components.ecoflow_power.ecoflow.envelope import (
    EnvelopeError,
    deobfuscate,
    parse_envelope,
)
from custom_components.ecoflow_power.ecoflow.json_decoder import (
    JsonPayloadError,
    decode_json,
    decode_status,
)
from custom_components.ecoflow_power.ecoflow.models import (
    DeviceFamily,
    Encoding,
    identify_model,
)
from custom_components.ecoflow_power.ecoflow.normalize_shared import (
    firmware_text,
    remaining_minutes,
)
from custom_components.ecoflow_power.ecoflow.proto.envelope_pb2 import HeaderMessage


def _payload(pdata: bytes, *, src: int, enc_type: int, seq: int) -> bytes:
    message = HeaderMessage()
    header = message.header.add(src=src, enc_type=enc_type, seq=seq, cmd_func=254, cmd_id=21)
    header.pdata = pdata
    return message.SerializeToString()


def test_xor_applies_only_to_device_pushes() -> None:
    plain = b"\x1d\x00\x00\x48\x42"
    key = 0x1234 & 0xFF
    obfuscated = bytes(byte ^ key for byte in plain)
    assert parse_envelope(_payload(obfuscated, src=2, enc_type=1, seq=0x1234))[0].pdata == plain
    # The app side (src 32) never obfuscates, even when enc_type says 1.
    assert parse_envelope(_payload(plain, src=32, enc_type=1, seq=0x1234))[0].pdata == plain
    assert parse_envelope(_payload(plain, src=2, enc_type=0, seq=0x1234))[0].pdata == plain
    assert deobfuscate(deobfuscate(plain, 77), 77) == plain


def test_text_encodings_are_detected() -> None:
    raw = _payload(b"\x08\x01", src=2, enc_type=0, seq=1)
    expected = parse_envelope(raw)
    assert parse_envelope(raw.hex()) == expected
    assert parse_envelope(raw.hex().upper().encode()) == expected
    assert parse_envelope(base64.b64encode(raw).decode()) == expected
    assert parse_envelope(base64.urlsafe_b64encode(raw)) == expected


@pytest.mark.parametrize("payload", [b"", b"\x0a\x05\x10", "zz", b"\x0a\x00"])
def test_envelope_errors_are_envelope_errors(payload: bytes | str) -> None:
    with pytest.raises(EnvelopeError):
        parse_envelope(payload)


def test_json_shapes() -> None:
    quota = decode_json({"code": "0", "data": {"pd.soc": 50}}, DeviceFamily.DELTA2)
    assert (quota.kind, quota.full_snapshot, quota.fields) == ("quota", True, {"pd.soc": 50})
    push = decode_json({"typeCode": "emsStatus", "params": {"lcdShowSoc": 42}}, DeviceFamily.DELTA2)
    assert push.fields == {"bms_emsStatus.lcdShowSoc": 42}
    assert push.full_snapshot is False
    # Delta Pro groups are not nested under "bms_".
    pro = decode_json(
        {"typeCode": "emsStatus", "params": {"lcdShowSoc": 42}}, DeviceFamily.DELTA_PRO
    )
    assert pro.fields == {"ems.lcdShowSoc": 42}
    cmd = decode_json(
        {"cmdFunc": 20, "cmdId": 1, "param": {"batSoc": 87}}, DeviceFamily.POWERSTREAM
    )
    assert cmd.fields == {"20_1.batSoc": 87}
    prop = decode_json({"params": {"inv.acInVol": 123113}}, DeviceFamily.DELTA2)
    assert prop.fields == {"inv.acInVol": 123113}
    reply = decode_json(
        {
            "operateType": "latestQuotas",
            "data": {"sn": "*****", "online": 1, "quotaMap": {"a.b": 1}},
        },
        DeviceFamily.DELTA2,
    )
    assert (reply.sn, reply.online, reply.full_snapshot) == (None, True, True)


def test_json_error_reply_is_an_error() -> None:
    with pytest.raises(JsonPayloadError, match="1006"):
        decode_json({"code": "1006", "message": "device not supported"}, DeviceFamily.RIVER3)


def test_status_payloads() -> None:
    assert decode_status("online") is True
    assert decode_status({"params": {"status": 0}}) is False
    assert decode_status({"id": 1}) is None


def test_remaining_minutes_sentinels() -> None:
    assert remaining_minutes(5939) is None
    assert remaining_minutes(5999) is None
    assert remaining_minutes(140157) is None
    assert remaining_minutes(-3) is None
    assert remaining_minutes(132) == 132


def test_firmware_text() -> None:
    assert firmware_text(16908599) == "1.2.1.55"
    assert firmware_text(0) is None


@pytest.mark.parametrize(
    ("sn", "product", "name", "family", "encoding"),
    [
        ("R651PC0CXGCA0798", None, "River 3", DeviceFamily.RIVER3, Encoding.PROTOBUF),
        ("R631ZABC", None, "River 3 Plus", DeviceFamily.RIVER3, Encoding.PROTOBUF),
        ("P231XXXX", None, "Delta 3", DeviceFamily.DELTA3, Encoding.PROTOBUF),
        ("MR51PA08", None, "Delta Pro 3", DeviceFamily.DELTA_PRO_3, Encoding.PROTOBUF),
        ("HW51ZOH4", None, "PowerStream", DeviceFamily.POWERSTREAM, Encoding.PROTOBUF),
        ("R331ZXXX", None, "Delta 2", DeviceFamily.DELTA2, Encoding.JSON),
        ("R351ZCB5", None, "Delta 2 Max", DeviceFamily.DELTA2, Encoding.JSON),
        ("R621ZEBX", None, "River 2 Pro", DeviceFamily.RIVER2, Encoding.JSON),
        ("R611XXXX", None, "River 2 Max", DeviceFamily.RIVER2, Encoding.JSON),
        ("R601XXXX", None, "River 2", DeviceFamily.RIVER2, Encoding.JSON),
        ("DCEBZ8ZE", None, "Delta Pro", DeviceFamily.DELTA_PRO, Encoding.JSON),
        ("XXXX", "DELTA Pro 3", "Delta Pro 3", DeviceFamily.DELTA_PRO_3, Encoding.PROTOBUF),
        ("XXXX", "EcoFlow DELTA 3 Plus", "Delta 3 Plus", DeviceFamily.DELTA3, Encoding.PROTOBUF),
        ("XXXX", "RIVER 2 Max", "River 2 Max", DeviceFamily.RIVER2, Encoding.JSON),
    ],
)
def test_identify_model(
    sn: str, product: str | None, name: str, family: DeviceFamily, encoding: Encoding
) -> None:
    info = identify_model(sn, product)
    assert (info.name, info.family, info.encoding) == (name, family, encoding)


def test_unknown_model_guesses_encoding_from_name() -> None:
    river4 = identify_model("Z999", "RIVER 3 Ultra Max")
    assert river4.family is DeviceFamily.RIVER3  # "river 3" still matches
    glacier = identify_model("BX11", "Glacier Classic 3")
    assert (glacier.name, glacier.family, glacier.encoding) == (
        "Glacier Classic 3",
        DeviceFamily.UNKNOWN,
        Encoding.PROTOBUF,
    )
    old = identify_model("ZZ01XXXX", None)
    assert (old.name, old.family, old.encoding) == (
        "EcoFlow ZZ01",
        DeviceFamily.UNKNOWN,
        Encoding.JSON,
    )
