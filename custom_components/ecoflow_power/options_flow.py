"""The options flow: devices and telemetry, then one mixin per kind of setting."""

from __future__ import annotations

from typing import Any

from homeassistant.config_entries import ConfigFlowResult, OptionsFlowWithReload
import probatio

from .account import client_from_data
from .const import (
    CONF_ADD_NEW_DEVICES,
    CONF_AGENTS,
    CONF_DEVICES,
    CONF_GRID_CONFIRM,
    CONF_STALE_AFTER,
)
from .device_selection import devices_to_manage, selection_options
from .ecoflow.errors import EcoflowError
from .options_agents import AgentOptionsMixin
from .options_nut import NutOptionsMixin
from .options_policy import PolicyOptionsMixin
from .options_restore import RestoreOptionsSteps, wake_hosts
from .options_sentinel import SentinelOptionsMixin
from .selectors import devices_schema, seconds_selector as _seconds
from .stored_options import mapping_option
from .telemetry_settings import GRID_CONFIRM_RANGE, STALE_AFTER_RANGE, TelemetrySettings


class EcoflowOptionsFlow(
    PolicyOptionsMixin,
    SentinelOptionsMixin,
    RestoreOptionsSteps,
    NutOptionsMixin,
    AgentOptionsMixin,
    OptionsFlowWithReload,
):
    """Devices and telemetry; per station its policy, sentinel, restore rule and NUT; agents."""

    def __init__(self) -> None:
        self._station: str | None = None
        self._agent_id: str | None = None
        self._pending_options: dict[str, Any] = {}
        self._new_secret: str = ""

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        menu = ["telemetry"]
        stations = bool(self._stations())
        agents = bool(mapping_option(self._entry.options, CONF_AGENTS))
        if stations:
            menu += ["policy", "sentinel", "add_agent"]
        if agents:
            menu += ["edit_agent", "remove_agent"]
        if stations:
            menu += ["restore"]
        if wake_hosts(self._entry.options):
            menu += ["wake_target"]
        if stations:
            menu += ["nut"]
        return self.async_show_menu(step_id="init", menu_options=menu)

    async def async_step_telemetry(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        errors: dict[str, str] = {}
        entry = self._entry
        try:
            account = await client_from_data(self.hass, entry.data).devices()
        except EcoflowError:
            return self.async_abort(reason="cannot_connect")
        if user_input is not None:
            if not user_input[CONF_DEVICES]:
                errors["base"] = "no_devices_selected"
            else:
                return self.async_create_entry(
                    data={
                        **entry.options,
                        **selection_options(user_input[CONF_DEVICES], account),
                        CONF_ADD_NEW_DEVICES: user_input[CONF_ADD_NEW_DEVICES],
                        CONF_STALE_AFTER: int(user_input[CONF_STALE_AFTER]),
                        CONF_GRID_CONFIRM: int(user_input[CONF_GRID_CONFIRM]),
                    }
                )
        managed = [device.sn for device in devices_to_manage(entry, account)]
        # The values in effect: a stored one the form would refuse shows its default.
        current = TelemetrySettings.from_options(entry.options)
        schema = devices_schema(
            account, managed, entry.options.get(CONF_ADD_NEW_DEVICES) is not False
        ).extend(
            {
                probatio.Required(CONF_STALE_AFTER, default=current.stale_after_sec): _seconds(
                    *STALE_AFTER_RANGE
                ),
                probatio.Required(CONF_GRID_CONFIRM, default=current.grid_confirm_sec): _seconds(
                    *GRID_CONFIRM_RANGE
                ),
            }
        )
        return self.async_show_form(step_id="telemetry", data_schema=schema, errors=errors)
