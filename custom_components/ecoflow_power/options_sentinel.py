"""Options: a station's mains sentinel (a mixin of the options flow).

One optional entity per station that says whether utility power is present
without the cloud; how its state is read is the sentinel's kind (sentinel.py).
"""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigFlowResult
from homeassistant.helpers.selector import (
    EntitySelector,
    EntitySelectorConfig,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
)
import probatio

from .options_base import StationOptionsFlow
from .sentinel import CONF_SENTINEL_ENTITY, CONF_SENTINEL_KIND, CONF_SENTINELS, SentinelKind
from .stored_options import mapping_option

# A binary_sensor kind needs a binary sensor; the others read any entity
# (a voltage sensor, the NUT status sensor, a mains-only device's entity).
_KIND_DOMAINS: dict[SentinelKind, tuple[str, ...]] = {
    SentinelKind.BINARY_SENSOR: ("binary_sensor",),
    SentinelKind.VOLTAGE: ("sensor",),
    SentinelKind.NUT_STATUS: ("sensor",),
}


class SentinelOptionsMixin(StationOptionsFlow):
    """The "sentinel" and "sentinel_settings" steps of the options flow."""

    async def async_step_sentinel(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose the station whose sentinel to set."""
        station = self._chosen_station("sentinel", user_input)
        if not isinstance(station, str):
            return station
        self._station = station
        return await self.async_step_sentinel_settings()

    async def async_step_sentinel_settings(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """The entity and how to read it; no entity removes the sentinel."""
        assert self._station is not None
        options = self.config_entry.options
        sentinels: dict[str, Any] = dict(mapping_option(options, CONF_SENTINELS))
        errors: dict[str, str] = {}
        if user_input is not None:
            entity_id = user_input.get(CONF_SENTINEL_ENTITY)
            kind = SentinelKind(user_input[CONF_SENTINEL_KIND])
            if not entity_id:
                sentinels.pop(self._station, None)
                return self.async_create_entry(data={**options, CONF_SENTINELS: sentinels})
            domains = _KIND_DOMAINS.get(kind)
            if self.hass.states.get(entity_id) is None:
                errors[CONF_SENTINEL_ENTITY] = "sentinel_not_found"
            elif domains and entity_id.split(".", 1)[0] not in domains:
                errors[CONF_SENTINEL_KIND] = "sentinel_wrong_kind"
            else:
                sentinels[self._station] = {
                    CONF_SENTINEL_ENTITY: entity_id,
                    CONF_SENTINEL_KIND: kind.value,
                }
                return self.async_create_entry(data={**options, CONF_SENTINELS: sentinels})
        current = user_input or sentinels.get(self._station, {})
        schema = probatio.Schema(
            {
                # Any entity: "unavailable means mains lost" fits any mains-only
                # device (a Zigbee router's plug, an ESPHome node's status).
                probatio.Optional(CONF_SENTINEL_ENTITY): EntitySelector(EntitySelectorConfig()),
                probatio.Required(
                    CONF_SENTINEL_KIND, default=SentinelKind.BINARY_SENSOR.value
                ): SelectSelector(
                    SelectSelectorConfig(
                        options=[kind.value for kind in SentinelKind],
                        translation_key="sentinel_kind",
                        mode=SelectSelectorMode.LIST,
                    )
                ),
            }
        )
        return self.async_show_form(
            step_id="sentinel_settings",
            data_schema=self.add_suggested_values_to_schema(schema, current),
            errors=errors,
            description_placeholders={"station": self._stations()[self._station]},
        )
