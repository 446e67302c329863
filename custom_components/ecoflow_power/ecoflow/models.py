"""Which EcoFlow product a serial or product name belongs to, and how it talks."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
import re


class Encoding(StrEnum):
    PROTOBUF = "protobuf"
    JSON = "json"


class DeviceFamily(StrEnum):
    RIVER3 = "river3"
    DELTA3 = "delta3"
    DELTA_PRO_3 = "delta_pro_3"
    POWERSTREAM = "powerstream"
    DELTA2 = "delta2"
    RIVER2 = "river2"
    DELTA_PRO = "delta_pro"
    UNKNOWN = "unknown"


@dataclass(frozen=True, slots=True)
class ModelInfo:
    name: str
    family: DeviceFamily
    encoding: Encoding
    # Rated battery energy of the unit itself (no extra batteries), Wh; None
    # where the product has no battery of its own or the model is unknown.
    capacity_wh: float | None = None


_PB = Encoding.PROTOBUF
_JS = Encoding.JSON

# Rated capacities from EcoFlow's public product specifications (ecoflow.com
# spec pages; the same figures the product names and manuals state). The JSON
# captures confirm them through the BMS design capacity times the pack's
# nominal voltage: Delta 2 20000 mAh x 51.2 V = 1024 Wh (js01), River 2 Max
# 20000 mAh x 25.6 V = 512 Wh (js03), River 2 Pro 40000 mAh x 19.2 V = 768 Wh
# (js04), Delta 2 Max 40000 mAh x 51.2 V = 2048 Wh (js05, js06), Delta Pro
# 80000 mAh x 45 V = 3600 Wh (js02). The PowerStream is an inverter: its
# battery is whatever is attached.
_RIVER3 = ModelInfo("River 3", DeviceFamily.RIVER3, _PB, 245.0)
_RIVER3_PLUS = ModelInfo("River 3 Plus", DeviceFamily.RIVER3, _PB, 286.0)
_DELTA3 = ModelInfo("Delta 3", DeviceFamily.DELTA3, _PB, 1024.0)
_DELTA3_PLUS = ModelInfo("Delta 3 Plus", DeviceFamily.DELTA3, _PB, 1024.0)
_DELTA_PRO3 = ModelInfo("Delta Pro 3", DeviceFamily.DELTA_PRO_3, _PB, 4096.0)
_POWERSTREAM = ModelInfo("PowerStream", DeviceFamily.POWERSTREAM, _PB)
_DELTA2 = ModelInfo("Delta 2", DeviceFamily.DELTA2, _JS, 1024.0)
_DELTA2_MAX = ModelInfo("Delta 2 Max", DeviceFamily.DELTA2, _JS, 2048.0)
_RIVER2_PRO = ModelInfo("River 2 Pro", DeviceFamily.RIVER2, _JS, 768.0)
_RIVER2_MAX = ModelInfo("River 2 Max", DeviceFamily.RIVER2, _JS, 512.0)
_RIVER2 = ModelInfo("River 2", DeviceFamily.RIVER2, _JS, 256.0)
_DELTA_PRO = ModelInfo("Delta Pro", DeviceFamily.DELTA_PRO, _JS, 3600.0)

# Serial prefixes. Sources: the captures (R651 River 3 in pb01, R631 River 3 Plus
# in pb02, P231 Delta 3 in pb04, P351 pack serial of the Delta 3 Plus in pb03,
# MR51 Delta Pro 3 in pb05, HW51 PowerStream in pb06/js08, R351 Delta 2 Max in
# js06, R621 River 2 Pro in js04, DCEBZ Delta Pro in js02) and the project brief.
_SERIAL_PREFIXES: tuple[tuple[str, ModelInfo], ...] = (
    ("R651", _RIVER3),
    ("R653", _RIVER3),
    ("R654", _RIVER3),
    ("R655", _RIVER3),
    ("R631", _RIVER3_PLUS),
    ("R634", _RIVER3_PLUS),
    ("R635", _RIVER3_PLUS),
    ("P231", _DELTA3),
    ("P351", _DELTA3_PLUS),
    ("MR51", _DELTA_PRO3),
    ("HW51", _POWERSTREAM),
    ("R331", _DELTA2),
    ("R351", _DELTA2_MAX),
    ("R621", _RIVER2_PRO),
    ("R611", _RIVER2_MAX),
    ("R601", _RIVER2),
    ("DCABZ", _DELTA_PRO),
    ("DCEBZ", _DELTA_PRO),
)

# Product names as the device list reports them, compared after normalising
# case, spaces and the "EcoFlow" prefix. Longest first: "delta pro 3" must not
# match "delta pro".
_PRODUCT_NAMES: tuple[tuple[str, ModelInfo], ...] = tuple(
    sorted(
        (
            ("river 3 plus", _RIVER3_PLUS),
            ("river 3", _RIVER3),
            ("delta 3 plus", _DELTA3_PLUS),
            ("delta 3", _DELTA3),
            ("delta pro 3", _DELTA_PRO3),
            ("powerstream", _POWERSTREAM),
            ("delta 2 max", _DELTA2_MAX),
            ("delta 2", _DELTA2),
            ("river 2 pro", _RIVER2_PRO),
            ("river 2 max", _RIVER2_MAX),
            ("river 2", _RIVER2),
            ("delta pro", _DELTA_PRO),
        ),
        key=lambda item: -len(item[0]),
    )
)

# Generation 3 products and the micro-inverters speak protobuf; everything older
# speaks JSON. Used only for products this table does not know.
_PROTOBUF_NAME_HINT = re.compile(r"\b3\b|stream|plug")


def _normalise_name(product_name: str) -> str:
    text = product_name.lower().replace("ecoflow", " ").replace("_", " ").replace("-", " ")
    text = re.sub(r"power\s+stream", "powerstream", text)
    return " ".join(text.split())


def _match_name(normalised: str) -> ModelInfo | None:
    for name, info in _PRODUCT_NAMES:
        if re.search(rf"(^|\s){re.escape(name)}($|\s)", normalised):
            return info
    return None


def identify_model(sn: str, product_name: str | None) -> ModelInfo:
    """Model of a device from its product name, falling back to its serial prefix.

    The product name wins because the cloud sets it from the hardware; the
    serial prefix table cannot be complete (new regional variants appear).
    """
    normalised = _normalise_name(product_name) if product_name else ""
    if normalised and (info := _match_name(normalised)):
        return info
    serial = (sn or "").strip().upper()
    for prefix, info in _SERIAL_PREFIXES:
        if serial.startswith(prefix):
            return info
    if product_name and product_name.strip():
        name = product_name.strip()
    else:
        name = f"EcoFlow {serial[:4]}" if serial else "EcoFlow device"
    encoding = _PB if normalised and _PROTOBUF_NAME_HINT.search(normalised) else _JS
    return ModelInfo(name, DeviceFamily.UNKNOWN, encoding)
