"""The protobuf envelope: one MQTT payload -> a list of routed frames.

A payload is a `HeaderMessage` holding one or more `Header`s; each carries one
message in `pdata`, addressed by (cmd_func, cmd_id). Pushes obfuscate `pdata`
by XOR with the low byte of `seq`; snapshot replies arrive plain.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass
import re

from google.protobuf.message import DecodeError

from .proto.envelope_pb2 import HeaderMessage

# Messages sent by the app/cloud side (src 32) are never obfuscated.
_APP_SOURCE = 32
_XOR_ENCRYPTION = 1
_FIELD1_LEN_TAG = 0x0A  # protobuf tag of HeaderMessage.header (field 1, length-delimited)

_HEX_TEXT = re.compile(rb"^(?:[0-9a-fA-F]{2})+$")
_BASE64_TEXT = re.compile(rb"^[A-Za-z0-9+/_-]+={0,2}$")


class EnvelopeError(ValueError):
    """The payload is not a decodable HeaderMessage."""


@dataclass(frozen=True, slots=True)
class Frame:
    """One Header, with `pdata` already de-obfuscated."""

    cmd_func: int
    cmd_id: int
    src: int
    seq: int
    pdata: bytes
    data_len: int | None
    device_sn: str | None
    product_id: int | None

    @property
    def type_key(self) -> str:
        """Message type as "cmd_func/cmd_id", the key used in statistics."""
        return f"{self.cmd_func}/{self.cmd_id}"

    @property
    def is_truncated(self) -> bool:
        # data_len, when the device sets it, is the pdata length it sent; less
        # means the broker or a logger cut the message.
        return self.data_len is not None and 0 < len(self.pdata) < self.data_len


# One 256-byte table per key: bytes.translate de-obfuscates in C, about 50x
# faster than a Python loop over a 500-byte DisplayPropertyUpload.
_XOR_TABLES: dict[int, bytes] = {}


def deobfuscate(pdata: bytes, seq: int) -> bytes:
    """XOR every byte with `seq & 0xFF` (its own inverse)."""
    key = seq & 0xFF
    if key == 0:
        return pdata
    table = _XOR_TABLES.get(key)
    if table is None:
        table = bytes(value ^ key for value in range(256))
        _XOR_TABLES[key] = table
    return pdata.translate(table)


def payload_bytes(payload: bytes | bytearray | memoryview | str) -> bytes:
    """Raw envelope bytes from raw, hex or base64 input.

    Raw protobuf starts with tag 0x0A; hex text starts with "0a" and base64 text
    with "C", so the first byte tells them apart. Hex is tried before base64
    because every hex string is also valid base64.
    """
    if isinstance(payload, str):
        data = payload.strip().encode("ascii", errors="strict")
    else:
        data = bytes(payload)
    if data[:1] == bytes([_FIELD1_LEN_TAG]):
        return data
    text = b"".join(data.split())
    if _HEX_TEXT.match(text):
        return binascii.unhexlify(text)
    if _BASE64_TEXT.match(text):
        padded = text + b"=" * (-len(text) % 4)
        try:
            return base64.b64decode(
                padded, altchars=b"-_" if b"-" in text or b"_" in text else None
            )
        except (binascii.Error, ValueError) as err:
            raise EnvelopeError(f"not valid base64: {err}") from err
    return data


def parse_envelope(payload: bytes | bytearray | memoryview | str) -> list[Frame]:
    """Split a payload into frames; raises EnvelopeError when it is not an envelope."""
    try:
        raw = payload_bytes(payload)
    except (UnicodeError, binascii.Error, ValueError) as err:
        raise EnvelopeError(f"payload is neither protobuf, hex nor base64: {err}") from err
    if not raw:
        raise EnvelopeError("empty payload")
    message = HeaderMessage()
    try:
        message.ParseFromString(raw)
    except (DecodeError, RuntimeError, ValueError) as err:
        raise EnvelopeError(f"not a protobuf HeaderMessage: {err}") from err
    frames: list[Frame] = []
    for header in message.header:
        # A Header without an address cannot be routed: it is not a frame of
        # ours (random bytes often parse as an empty Header).
        if not (header.HasField("cmd_func") and header.HasField("cmd_id")):
            continue
        pdata = header.pdata
        seq = header.seq
        if header.enc_type == _XOR_ENCRYPTION and header.src != _APP_SOURCE:
            pdata = deobfuscate(pdata, seq)
        frames.append(
            Frame(
                cmd_func=header.cmd_func,
                cmd_id=header.cmd_id,
                src=header.src,
                seq=seq,
                pdata=pdata,
                data_len=header.data_len if header.HasField("data_len") else None,
                device_sn=header.device_sn or None,
                product_id=header.product_id if header.HasField("product_id") else None,
            )
        )
    if not frames:
        raise EnvelopeError("no routable header (cmd_func/cmd_id) in payload")
    return frames
