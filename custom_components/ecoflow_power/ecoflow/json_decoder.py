"""Decode the JSON shapes EcoFlow uses into flat dotted-key fields.

Every shape ends up keyed the way quota/all names things ("pd.soc",
"bms_emsStatus.lcdShowSoc", "20_1.batSoc"), so one normalizer serves snapshots
and incremental pushes alike.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from .models import DeviceFamily


class JsonPayloadError(ValueError):
    """The JSON is not one of the shapes this decoder knows."""


@dataclass(frozen=True, slots=True)
class JsonDecoded:
    kind: str  # "quota", "latest_quotas", "type_code:<code>", "cmd:<f>_<id>", "property"
    fields: dict[str, Any]
    # A full snapshot replaces the JSON state; a push only carries changed keys.
    full_snapshot: bool
    sn: str | None = None
    online: bool | None = None


# Open-API pushes name the module by typeCode and send undotted keys. The group
# names differ by family: the Delta 2 / River 2 family nest BMS and EMS under
# "bms_", the Delta Pro does not (see the js02 capture: bmsMaster.*, ems.*).
_TYPE_CODE_GROUPS: dict[str, str] = {
    "pdStatus": "pd",
    "bmsStatus": "bms_bmsStatus",
    "emsStatus": "bms_emsStatus",
    "invStatus": "inv",
    "mpptStatus": "mppt",
}
_DELTA_PRO_TYPE_CODE_GROUPS: dict[str, str] = {
    **_TYPE_CODE_GROUPS,
    "bmsStatus": "bmsMaster",
    "emsStatus": "ems",
}


_SLAVE_TYPE_CODE = "bmsSlaveStatus_"


def _group_for(type_code: str, family: DeviceFamily) -> str:
    delta_pro = family is DeviceFamily.DELTA_PRO
    table = _DELTA_PRO_TYPE_CODE_GROUPS if delta_pro else _TYPE_CODE_GROUPS
    if type_code in table:
        return table[type_code]
    if type_code.startswith(_SLAVE_TYPE_CODE):
        # Extra packs must land under the names quota/all uses, or the weakest
        # pack goes missing from soc_min: Delta 2 family "bms_slave_bmsSlaveStatus_1.*"
        # (as tolwi/hassio-ecoflow-cloud maps it), Delta Pro "bmsSlave1.*" (js02).
        index = type_code.removeprefix(_SLAVE_TYPE_CODE)
        return f"bmsSlave{index}" if delta_pro else f"bms_slave_{type_code}"
    return type_code.removesuffix("Status") or type_code


def _prefixed(params: Mapping[str, Any], group: str) -> dict[str, Any]:
    # Keys that already carry a group (e.g. "bms_slave.soc") keep it.
    return {
        (key if "." in key else f"{group}.{key}"): value
        for key, value in params.items()
        if isinstance(key, str)
    }


def _string_keys(values: Mapping[Any, Any]) -> dict[str, Any]:
    return {key: value for key, value in values.items() if isinstance(key, str)}


def _serial(value: Any) -> str | None:
    # Published captures mask serials as "*********"; that is not a serial.
    if isinstance(value, str) and value.strip() and value.strip("*").strip():
        return value.strip()
    return None


def _online(value: Any) -> bool | None:
    if isinstance(value, bool):
        return value
    if isinstance(value, int | float):
        return bool(value)
    if isinstance(value, str) and value.strip() in {"0", "1"}:
        return value.strip() == "1"
    return None


def _require_mapping(value: Any, what: str) -> Mapping[str, Any]:
    if not isinstance(value, Mapping):
        raise JsonPayloadError(f"{what} is {type(value).__name__}, expected an object")
    return value


def decode_json(obj: Any, family: DeviceFamily) -> JsonDecoded:
    """Fields of one JSON message; raises JsonPayloadError for unknown shapes."""
    message = _require_mapping(obj, "message")

    if "code" in message and str(message["code"]) not in {"0", ""}:
        raise JsonPayloadError(
            f"error reply code {message['code']}: {message.get('message', '')!s:.80}"
        )

    data = message.get("data")
    if isinstance(data, Mapping) and isinstance(data.get("quotaMap"), Mapping):
        # get_reply to "latestQuotas": the full map plus serial and online flag.
        return JsonDecoded(
            kind="latest_quotas",
            fields=_string_keys(data["quotaMap"]),
            full_snapshot=True,
            sn=_serial(data.get("sn")),
            online=_online(data.get("online")),
        )
    if isinstance(data, Mapping) and ("code" in message or "success" in message):
        # quota/all over HTTPS ({"code":"0","data":{...}}), also via wrappers
        # that answer {"success":true,"data":{...}} (js06).
        return JsonDecoded(kind="quota", fields=_string_keys(data), full_snapshot=True)

    if isinstance(message.get("typeCode"), str):
        params = _require_mapping(message.get("params", {}), "params")
        type_code = message["typeCode"]
        return JsonDecoded(
            kind=f"type_code:{type_code}",
            fields=_prefixed(params, _group_for(type_code, family)),
            full_snapshot=False,
        )

    if "cmdFunc" in message and "cmdId" in message:
        params = _require_mapping(message.get("param", message.get("params", {})), "param")
        cmd_func, cmd_id = message["cmdFunc"], message["cmdId"]
        if not isinstance(cmd_func, int) or not isinstance(cmd_id, int):
            raise JsonPayloadError("cmdFunc/cmdId are not integers")
        # quota/all names these fields "20_1.batSoc": same prefix, same keys.
        return JsonDecoded(
            kind=f"cmd:{cmd_func}_{cmd_id}",
            fields=_prefixed(params, f"{cmd_func}_{cmd_id}"),
            full_snapshot=False,
        )

    if "params" in message:
        params = _require_mapping(message["params"], "params")
        return JsonDecoded(kind="property", fields=_string_keys(params), full_snapshot=False)

    if message and all(isinstance(key, str) and "." in key for key in message):
        # The bare quota/all data object (what the API client hands over).
        return JsonDecoded(kind="quota", fields=dict(message), full_snapshot=True)

    raise JsonPayloadError("unknown JSON shape (no quotaMap, data, typeCode, cmdFunc or params)")


def decode_status(obj: Any) -> bool | None:
    """Online flag of a /status message: "online"/"offline", 0/1 or {"params":{"status":1}}."""
    if isinstance(obj, str):
        text = obj.strip().strip('"').lower()
        if text in {"online", "1", "true"}:
            return True
        if text in {"offline", "0", "false"}:
            return False
        return None
    if isinstance(obj, Mapping):
        for container in (obj.get("params"), obj.get("param"), obj.get("data"), obj):
            if isinstance(container, Mapping):
                for key in ("status", "online"):
                    if key in container:
                        value = container[key]
                        if isinstance(value, str):
                            return decode_status(value)
                        return _online(value)
        return None
    return _online(obj)
