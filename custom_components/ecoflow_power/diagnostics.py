"""Diagnostics: what a maintainer needs to debug a device, with no secret in it."""

from __future__ import annotations

from dataclasses import fields, is_dataclass
from enum import Enum
from typing import Any

from homeassistant.components.diagnostics import async_redact_data
from homeassistant.core import HomeAssistant

from .clock import now_ts
from .const import CONF_ACCESS_KEY, CONF_DEVICES, CONF_EXCLUDED_DEVICES, CONF_SECRET_KEY
from .runtime import EcoflowConfigEntry

TO_REDACT = {CONF_ACCESS_KEY, CONF_SECRET_KEY, "password", "secret", "username", "account"}


def mask_serial(sn: str) -> str:
    """Keep the model prefix and the last two characters; hide the unit's identity."""
    if len(sn) <= 6:
        return "**REDACTED**"
    return f"{sn[:4]}{'*' * (len(sn) - 6)}{sn[-2:]}"


def _is_serial_key(key: Any) -> bool:
    # Pack and module serials ride inside payloads ("bms.0.bms_sn", "module_sn").
    return isinstance(key, str) and (key.lower().endswith("_sn") or key.lower() in {"sn", "serial"})


def _mask_serials(value: Any, serials: set[str]) -> Any:
    if isinstance(value, str):
        for sn in serials:
            value = value.replace(sn, mask_serial(sn))
        return value
    if isinstance(value, dict):
        return {
            _mask_serials(k, serials): (
                mask_serial(v)
                if _is_serial_key(str(k).rsplit(".", 1)[-1]) and isinstance(v, str) and v
                else _mask_serials(v, serials)
            )
            for k, v in value.items()
        }
    if isinstance(value, list | tuple):
        return [_mask_serials(item, serials) for item in value]
    return value


async def async_get_config_entry_diagnostics(
    hass: HomeAssistant, entry: EcoflowConfigEntry
) -> dict[str, Any]:
    telemetry = entry.runtime_data.telemetry
    now = now_ts()
    devices: dict[str, Any] = {}
    for sn, tracker in telemetry.trackers.items():
        state = tracker.snapshot(now, telemetry.stale_after_sec)
        devices[sn] = {
            "model": _plain(telemetry.models[sn]),
            "product_name": telemetry.devices[sn].product_name,
            "state": state.to_dict(),
            "seconds_since_update": telemetry.seconds_since_update(sn),
            "stats": _plain(tracker.stats),
            "raw_fields": _plain(tracker.raw_fields()),
        }
    serials = set(telemetry.trackers) | telemetry.account_serials
    options = dict(entry.options)
    data: dict[str, Any] = {
        "entry": {
            "title": entry.title,
            "data": async_redact_data(dict(entry.data), TO_REDACT),
            "options": {
                key: value
                for key, value in options.items()
                if key not in (CONF_DEVICES, CONF_EXCLUDED_DEVICES)
            }
            | {
                CONF_DEVICES: options.get(CONF_DEVICES, []),
                CONF_EXCLUDED_DEVICES: options.get(CONF_EXCLUDED_DEVICES, []),
            },
        },
        "cloud": {
            "connected": telemetry.cloud_connected,
            "session": _plain(telemetry.session.stats),
        },
        "devices": devices,
    }
    policy = entry.runtime_data.policy
    if policy is not None:
        data["policy"] = policy.diagnostics()
    if entry.runtime_data.nut is not None:
        data["nut"] = entry.runtime_data.nut.diagnostics()
    if entry.runtime_data.wake is not None:
        data["wake"] = entry.runtime_data.wake.diagnostics()
    masked: dict[str, Any] = _mask_serials(async_redact_data(data, TO_REDACT), serials)
    return masked


def _plain(value: Any) -> Any:
    """JSON-friendly copy of dataclasses, mappings, enums and tuples."""
    if is_dataclass(value) and not isinstance(value, type):
        return {field.name: _plain(getattr(value, field.name)) for field in fields(value)}
    if isinstance(value, Enum):
        return value.value
    if isinstance(value, dict) or hasattr(value, "items"):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple | set):
        return [_plain(item) for item in value]
    if isinstance(value, bytes):
        return value.hex()
    return value
