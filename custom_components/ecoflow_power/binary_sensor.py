"""Binary sensors of a power station: grid power, charging, cloud connection."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import EcoflowTelemetryCoordinator
from .ecoflow.state import ChargeState, GridStatus, PowerState
from .entity import EcoflowStationEntity
from .policy_sensor import policy_binary_sensors
from .runtime import EcoflowConfigEntry

PARALLEL_UPDATES = 0


@dataclass(frozen=True, kw_only=True)
class EcoflowBinarySensorEntityDescription(BinarySensorEntityDescription):
    """A binary sensor computed from the device state and the session."""

    is_on_fn: Callable[[EcoflowTelemetryCoordinator, str, PowerState], bool | None]
    requires_fresh: bool = True


def _grid_present(_: EcoflowTelemetryCoordinator, __: str, state: PowerState) -> bool | None:
    # Unknown stays unknown: stale or missing evidence must not read as "on".
    if state.grid is GridStatus.UNKNOWN:
        return None
    return state.grid is GridStatus.CONNECTED


def _charging(_: EcoflowTelemetryCoordinator, __: str, state: PowerState) -> bool | None:
    if state.charge_state is None:
        return None
    return state.charge_state is ChargeState.CHARGING


def _cloud_connected(coordinator: EcoflowTelemetryCoordinator, sn: str, _: PowerState) -> bool:
    return coordinator.cloud_connected and coordinator.is_fresh(sn)


BINARY_SENSORS: tuple[EcoflowBinarySensorEntityDescription, ...] = (
    EcoflowBinarySensorEntityDescription(
        key="grid_power",
        translation_key="grid_power",
        device_class=BinarySensorDeviceClass.POWER,
        is_on_fn=_grid_present,
        requires_fresh=False,
    ),
    EcoflowBinarySensorEntityDescription(
        key="charging",
        device_class=BinarySensorDeviceClass.BATTERY_CHARGING,
        is_on_fn=_charging,
    ),
    EcoflowBinarySensorEntityDescription(
        key="cloud_connection",
        translation_key="cloud_connection",
        device_class=BinarySensorDeviceClass.CONNECTIVITY,
        entity_category=EntityCategory.DIAGNOSTIC,
        is_on_fn=_cloud_connected,
        requires_fresh=False,
    ),
)


class EcoflowBinarySensor(EcoflowStationEntity, BinarySensorEntity):
    """A power station binary sensor."""

    entity_description: EcoflowBinarySensorEntityDescription

    def __init__(
        self,
        coordinator: EcoflowTelemetryCoordinator,
        sn: str,
        description: EcoflowBinarySensorEntityDescription,
    ) -> None:
        super().__init__(coordinator, sn, description)
        self._requires_fresh_telemetry = description.requires_fresh

    @property
    def is_on(self) -> bool | None:
        return self.entity_description.is_on_fn(self.coordinator, self.sn, self.power_state)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EcoflowConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    coordinator = entry.runtime_data.telemetry
    async_add_entities(
        EcoflowBinarySensor(coordinator, sn, description)
        for sn in coordinator.devices
        for description in BINARY_SENSORS
    )
    if entry.runtime_data.policy is not None:
        async_add_entities(policy_binary_sensors(entry.runtime_data.policy))
