"""The account's devices, cached in the entry's storage so setup never waits for the cloud.

What setup needs to create devices and entities (serial, names, product,
firmware) is written whenever the cloud lists the account, and read at the
next start before any network call.
"""

from __future__ import annotations

import logging
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.storage import Store

from .const import DOMAIN
from .ecoflow.api import DeviceInfo

_LOGGER = logging.getLogger(__name__)

STORAGE_VERSION = 1
SAVE_DELAY = 5


class DeviceCache:
    """Serial -> DeviceInfo (and firmware), persisted per config entry."""

    def __init__(self, hass: HomeAssistant, entry_id: str) -> None:
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry_id}.devices"
        )
        self.devices: list[DeviceInfo] = []
        self.firmware: dict[str, str] = {}
        self.loaded = False

    async def async_load(self) -> bool:
        """Read the cache; True when it holds at least one device.

        A cache that cannot be understood is treated as empty (it is rebuilt
        from the cloud), never as a reason to fail setup.
        """
        try:
            data = await self._store.async_load() or {}
            self.devices = [
                DeviceInfo(
                    sn=str(item["sn"]),
                    product_name=str(item.get("product_name", "")),
                    device_name=str(item.get("device_name", "")),
                    online=bool(item.get("online", False)),
                )
                for item in data.get("devices", [])
            ]
            self.firmware = {
                str(sn): str(version) for sn, version in data.get("firmware", {}).items()
            }
        except (KeyError, TypeError, ValueError, AttributeError) as err:
            _LOGGER.warning("Ignoring an unreadable device cache: %s", err)
            self.devices, self.firmware = [], {}
        self.loaded = bool(self.devices)
        return self.loaded

    def set_account(self, account: list[DeviceInfo]) -> None:
        """Remember the account as the cloud listed it."""
        if account == self.devices:
            return
        self.devices = list(account)
        self._schedule_save()

    def set_firmware(self, sn: str, firmware: str) -> None:
        if self.firmware.get(sn) == firmware:
            return
        self.firmware[sn] = firmware
        self._schedule_save()

    def _schedule_save(self) -> None:
        self._store.async_delay_save(self._data, SAVE_DELAY)

    async def async_save(self) -> None:
        await self._store.async_save(self._data())

    def _data(self) -> dict[str, Any]:
        return {
            "devices": [
                {
                    "sn": device.sn,
                    "product_name": device.product_name,
                    "device_name": device.device_name,
                    "online": device.online,
                }
                for device in self.devices
            ],
            "firmware": dict(self.firmware),
        }


def devices_from_selection(serials: list[str]) -> list[DeviceInfo]:
    """Devices known only by the serials the user selected (no cache, no cloud yet)."""
    return [
        DeviceInfo(sn=sn, product_name="", device_name="", online=False)
        for sn in dict.fromkeys(serials)
    ]
