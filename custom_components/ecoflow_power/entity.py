"""Base entities for EcoFlow power stations."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from homeassistant.components.sensor import SensorEntity
from homeassistant.core import callback
from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity
from homeassistant.util import dt as dt_util

from .const import DOMAIN, MANUFACTURER
from .coordinator import EcoflowTelemetryCoordinator
from .ecoflow.state import PowerState


def utc_datetime(timestamp: float | None) -> datetime | None:
    """Epoch seconds as a timestamp sensor's value."""
    return None if timestamp is None else dt_util.utc_from_timestamp(timestamp)


def station_device_info(coordinator: EcoflowTelemetryCoordinator, sn: str) -> DeviceInfo:
    """The HA device of one power station."""
    account_device = coordinator.devices[sn]
    model = coordinator.models[sn]
    state = coordinator.data.get(sn) if coordinator.data else None
    return DeviceInfo(
        identifiers={(DOMAIN, sn)},
        manufacturer=MANUFACTURER,
        model=model.name,
        name=account_device.device_name or model.name,
        serial_number=sn,
        # Before the first telemetry, the firmware the device cache remembers.
        sw_version=(state.firmware if state else None) or coordinator.known_firmware(sn),
    )


class EcoflowStationEntity(CoordinatorEntity[EcoflowTelemetryCoordinator]):
    """An entity of one power station, fed by the telemetry coordinator."""

    _attr_has_entity_name = True
    # Measurements go unavailable when telemetry is stale; entities that say
    # what is known (grid, connectivity, last seen) set this to False.
    _requires_fresh_telemetry = True

    def __init__(
        self,
        coordinator: EcoflowTelemetryCoordinator,
        sn: str,
        description: EntityDescription,
        *,
        unique_suffix: str | None = None,
    ) -> None:
        # The context lets the coordinator tell only this station's entities.
        super().__init__(coordinator, context=sn)
        self.entity_description = description
        self.sn = sn
        self._attr_unique_id = f"{sn}_{unique_suffix or description.key}"
        self._attr_device_info = station_device_info(coordinator, sn)

    _shown: tuple[Any, ...] | None = None

    @callback
    def _handle_coordinator_update(self) -> None:
        """Write the state only when what the entity shows changed.

        Every message of a station reaches its entities; most leave their
        value as it was (steady readings, jitter below the display precision),
        and a state write costs more than everything else a message does.
        """
        # A sensor's state follows from its native value (cheaper to read).
        value = self.native_value if isinstance(self, SensorEntity) else self.state
        shown = (self.available, value)
        if shown == self._shown:
            return
        self._shown = shown
        self.async_write_ha_state()

    @property
    def power_state(self) -> PowerState:
        return self.coordinator.data[self.sn]

    @property
    def available(self) -> bool:
        if not super().available or self.sn not in (self.coordinator.data or {}):
            return False
        return not self._requires_fresh_telemetry or self.coordinator.is_fresh(self.sn)
