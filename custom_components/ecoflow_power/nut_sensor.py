"""Per station: the NUT clients logged in to its UPS (as LIST CLIENT shows them)."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.components.sensor import SensorEntity, SensorStateClass
from homeassistant.core import callback

from .entity import station_device_info
from .nut_server import NutServerManager

if TYPE_CHECKING:
    from .runtime import EcoflowConfigEntry


class NutClientsSensor(SensorEntity):
    """How many NUT clients are logged in to this station's UPS names; who they are."""

    _attr_has_entity_name = True
    _attr_translation_key = "nut_clients"
    _attr_state_class = SensorStateClass.MEASUREMENT
    _attr_should_poll = False

    def __init__(self, manager: NutServerManager, sn: str) -> None:
        self._manager = manager
        self._sn = sn
        self._attr_unique_id = f"{sn}_nut_clients"
        self._attr_device_info = station_device_info(manager.telemetry, sn)

    async def async_added_to_hass(self) -> None:
        self.async_on_remove(self._manager.add_listener(self._handle_change))

    @callback
    def _handle_change(self) -> None:
        self.async_write_ha_state()

    @property
    def available(self) -> bool:
        return self._manager.server is not None and self._manager.server.running

    @property
    def native_value(self) -> int:
        return len(self._manager.clients_of(self._sn))

    @property
    def extra_state_attributes(self) -> dict[str, Any]:
        station = self._manager.station_ups(self._sn)
        return {
            "ups_names": list(station.names) if station else [],
            "clients": [
                f"{c['username']}@{c['address']} ({c['ups']})"
                for c in self._manager.clients_of(self._sn)
            ],
        }


def nut_client_sensors(entry: EcoflowConfigEntry) -> list[NutClientsSensor]:
    manager = entry.runtime_data.nut
    if manager is None or manager.backend is None:
        return []
    return [NutClientsSensor(manager, station.sn) for station in manager.backend.stations]
