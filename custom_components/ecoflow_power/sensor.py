"""Sensors of a power station: battery, power flows, remaining time, energy."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import (
    PERCENTAGE,
    EntityCategory,
    UnitOfElectricPotential,
    UnitOfEnergy,
    UnitOfPower,
    UnitOfTime,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .coordinator import EcoflowTelemetryCoordinator
from .ecoflow.state import ChargeState, PowerState
from .entity import EcoflowStationEntity, utc_datetime
from .nut_sensor import nut_client_sensors
from .policy_sensor import policy_sensors
from .runtime import EcoflowConfigEntry

PARALLEL_UPDATES = 0

type StateValue = float | int | str | datetime | None


def rounded(value: float | None, digits: int) -> float | int | None:
    """Round to the display precision so jitter below it writes no new state."""
    if value is None:
        return None
    return round(value) if digits == 0 else round(value, digits)


@dataclass(frozen=True, kw_only=True)
class EcoflowSensorEntityDescription(SensorEntityDescription):
    """A sensor computed from a device's normalized PowerState."""

    value_fn: Callable[[PowerState], StateValue]
    # Created only once the device has reported the value: not every model
    # reports AC voltage or solar input.
    exists_fn: Callable[[PowerState], bool] = lambda _: True
    requires_fresh: bool = True


def _seen(field: str) -> Callable[[PowerState], bool]:
    return lambda state: field in state.seen_at


def _power(key: str, field: str, *, optional: bool = False) -> EcoflowSensorEntityDescription:
    return EcoflowSensorEntityDescription(
        key=key,
        translation_key=key,
        device_class=SensorDeviceClass.POWER,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfPower.WATT,
        suggested_display_precision=0,
        value_fn=lambda state: rounded(getattr(state, field), 0),
        exists_fn=_seen(field) if optional else (lambda _: True),
    )


SENSORS: tuple[EcoflowSensorEntityDescription, ...] = (
    EcoflowSensorEntityDescription(
        key="battery",
        device_class=SensorDeviceClass.BATTERY,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        value_fn=lambda state: rounded(state.soc, 0),
    ),
    EcoflowSensorEntityDescription(
        key="battery_weakest_pack",
        translation_key="battery_weakest_pack",
        device_class=SensorDeviceClass.BATTERY,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        value_fn=lambda state: rounded(state.soc_min, 0),
    ),
    _power("input_power", "watts_in"),
    _power("output_power", "watts_out"),
    _power("ac_input_power", "ac_in_w"),
    _power("battery_power", "battery_w"),
    _power("solar_power", "solar_w", optional=True),
    EcoflowSensorEntityDescription(
        key="ac_input_voltage",
        translation_key="ac_input_voltage",
        device_class=SensorDeviceClass.VOLTAGE,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfElectricPotential.VOLT,
        suggested_display_precision=0,
        value_fn=lambda state: rounded(state.ac_in_v, 0),
        exists_fn=_seen("ac_in_v"),
    ),
    EcoflowSensorEntityDescription(
        key="remaining_discharge_time",
        translation_key="remaining_discharge_time",
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.MINUTES,
        suggested_display_precision=0,
        value_fn=lambda state: state.remaining_discharge_min,
    ),
    EcoflowSensorEntityDescription(
        key="remaining_charge_time",
        translation_key="remaining_charge_time",
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.MINUTES,
        suggested_display_precision=0,
        value_fn=lambda state: state.remaining_charge_min,
    ),
    EcoflowSensorEntityDescription(
        key="charge_state",
        translation_key="charge_state",
        device_class=SensorDeviceClass.ENUM,
        options=[member.value for member in ChargeState],
        value_fn=lambda state: state.charge_state.value if state.charge_state else None,
    ),
    EcoflowSensorEntityDescription(
        key="last_telemetry",
        translation_key="last_telemetry",
        device_class=SensorDeviceClass.TIMESTAMP,
        entity_category=EntityCategory.DIAGNOSTIC,
        # Changes with every message: off by default so it does not fill the recorder.
        entity_registry_enabled_default=False,
        value_fn=lambda state: utc_datetime(state.updated_at),
        requires_fresh=False,
    ),
)

# Cumulative counters some models keep themselves (kWh since manufacture).
ENERGY_KEYS: tuple[str, ...] = ("ac_in", "ac_out", "solar_in", "dc_out", "charge", "discharge")


def energy_description(key: str) -> EcoflowSensorEntityDescription:
    return EcoflowSensorEntityDescription(
        key=f"energy_{key}",
        translation_key=f"energy_{key}",
        device_class=SensorDeviceClass.ENERGY,
        state_class=SensorStateClass.TOTAL_INCREASING,
        native_unit_of_measurement=UnitOfEnergy.KILO_WATT_HOUR,
        suggested_display_precision=2,
        value_fn=lambda state: rounded(state.energy_kwh.get(key), 3),
        exists_fn=lambda state: key in state.energy_kwh,
    )


def pack_description(index: int) -> EcoflowSensorEntityDescription:
    return EcoflowSensorEntityDescription(
        key=f"pack_{index + 1}_battery",
        translation_key="pack_battery",
        translation_placeholders={"pack": str(index + 1)},
        device_class=SensorDeviceClass.BATTERY,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=PERCENTAGE,
        suggested_display_precision=0,
        value_fn=lambda state: (
            rounded(state.soc_modules[index], 0) if index < len(state.soc_modules) else None
        ),
        # One pack's SoC is the battery sensor already.
        exists_fn=lambda state: len(state.soc_modules) > 1 and index < len(state.soc_modules),
    )


def candidate_descriptions(state: PowerState) -> list[EcoflowSensorEntityDescription]:
    """Every description that could apply to this device right now."""
    return [
        *SENSORS,
        *(energy_description(key) for key in ENERGY_KEYS),
        *(pack_description(index) for index in range(len(state.soc_modules))),
    ]


class EcoflowSensor(EcoflowStationEntity, SensorEntity):
    """A power station sensor."""

    entity_description: EcoflowSensorEntityDescription

    def __init__(
        self,
        coordinator: EcoflowTelemetryCoordinator,
        sn: str,
        description: EcoflowSensorEntityDescription,
    ) -> None:
        super().__init__(coordinator, sn, description)
        self._requires_fresh_telemetry = description.requires_fresh
        if description.translation_placeholders:
            self._attr_translation_placeholders = dict(description.translation_placeholders)

    @property
    def native_value(self) -> StateValue:
        return self.entity_description.value_fn(self.power_state)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EcoflowConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    """Add sensors now, and later for values (packs, counters) a device starts reporting."""
    coordinator = entry.runtime_data.telemetry
    added: set[tuple[str, str]] = set()

    @callback
    def add_new_sensors() -> None:
        new: list[EcoflowSensor] = []
        for sn, state in (coordinator.data or {}).items():
            for description in candidate_descriptions(state):
                if (sn, description.key) in added or not description.exists_fn(state):
                    continue
                added.add((sn, description.key))
                new.append(EcoflowSensor(coordinator, sn, description))
        if new:
            async_add_entities(new)

    add_new_sensors()
    entry.async_on_unload(coordinator.async_add_listener(add_new_sensors))
    if entry.runtime_data.policy is not None:
        async_add_entities(policy_sensors(entry.runtime_data.policy))
    async_add_entities(nut_client_sensors(entry))
