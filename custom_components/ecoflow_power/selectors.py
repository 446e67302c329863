"""Form selectors shared by the config flow and the options modules."""

from __future__ import annotations

from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)
import probatio

from .const import CONF_ADD_NEW_DEVICES, CONF_DEVICES
from .ecoflow.api import DeviceInfo


def station_selector(stations: dict[str, str]) -> SelectSelector:
    return SelectSelector(
        SelectSelectorConfig(
            options=[SelectOptionDict(value=sn, label=label) for sn, label in stations.items()],
            mode=SelectSelectorMode.DROPDOWN,
        )
    )


def number_selector(minimum: float, maximum: float, unit: str) -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(
            min=minimum, max=maximum, step=1, unit_of_measurement=unit, mode=NumberSelectorMode.BOX
        )
    )


def seconds_selector(minimum: int, maximum: int) -> NumberSelector:
    return NumberSelector(
        NumberSelectorConfig(
            min=minimum, max=maximum, step=1, unit_of_measurement="s", mode=NumberSelectorMode.BOX
        )
    )


def devices_schema(
    account: list[DeviceInfo], selected: list[str], add_new: bool
) -> probatio.Schema:
    options = [
        SelectOptionDict(
            value=device.sn, label=f"{device.device_name or device.product_name} ({device.sn})"
        )
        for device in account
    ]
    return probatio.Schema(
        {
            probatio.Required(CONF_DEVICES, default=selected): SelectSelector(
                SelectSelectorConfig(options=options, multiple=True, mode=SelectSelectorMode.LIST)
            ),
            probatio.Required(CONF_ADD_NEW_DEVICES, default=add_new): bool,
        }
    )
