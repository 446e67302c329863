"""Options steps of the restore rule: wake the hosts once power is back for good."""

from __future__ import annotations

from collections.abc import Mapping
import re
from typing import Any

from homeassistant.config_entries import ConfigFlowResult
from homeassistant.helpers.selector import (
    TextSelector,
)
import probatio

from .const import (
    CONF_AGENT_ID,
    CONF_AGENTS,
    CONF_RESTORE,
    CONF_WAKE_TARGETS,
    DEFAULT_WAKE_PORT,
    WAKE_BROADCAST,
    WAKE_MAC,
    WAKE_PORT,
)
from .nut.config import NutConfig
from .nut.consumer import nut_agent_id
from .options_base import StationOptionsFlow
from .restore_coordinator import wake_settings_for
from .selectors import number_selector, station_selector
from .stored_options import mapping_option

_MAC = re.compile(r"^[0-9a-fA-F]{2}([:-]?[0-9a-fA-F]{2}){5}$")
_IPV4 = re.compile(r"^(25[0-5]|2[0-4]\d|1?\d?\d)(\.(25[0-5]|2[0-4]\d|1?\d?\d)){3}$")


def wake_hosts(options: Mapping[str, Any]) -> dict[str, str]:
    """Hosts a wake address can be set for: the agents, and each station's NUT clients."""
    hosts = {agent_id: agent_id for agent_id in sorted(mapping_option(options, CONF_AGENTS))}
    nut = NutConfig.from_options(options)
    if nut.enabled:
        for station in nut.stations.values():
            hosts[nut_agent_id(station.name)] = f"NUT clients of {station.name}"
    return hosts


class RestoreOptionsSteps(StationOptionsFlow):
    """Mixed into the options flow: `restore` (choose a station) and `restore_settings`."""

    _restore_station: str | None = None

    async def async_step_restore(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose the station whose restore rule to edit."""
        station = self._chosen_station("restore", user_input)
        if not isinstance(station, str):
            return station
        self._restore_station = station
        return await self.async_step_restore_settings()

    async def async_step_restore_settings(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        sn = self._restore_station
        assert sn is not None
        options = self.config_entry.options
        current = wake_settings_for(options, sn)
        if user_input is not None:
            restore: dict[str, Any] = dict(mapping_option(options, CONF_RESTORE))
            restore[sn] = {
                "enabled": bool(user_input["enabled"]),
                "stable_sec": int(user_input["stable_min"]) * 60,
                "restart_soc": float(user_input["restart_soc"]),
                "gap_sec": int(user_input["gap_sec"]),
            }
            return self.async_create_entry(data={**options, CONF_RESTORE: restore})
        schema = probatio.Schema(
            {
                probatio.Required("enabled", default=current.enabled): bool,
                probatio.Required("stable_min", default=current.stable_sec // 60): number_selector(
                    1, 240, "min"
                ),
                probatio.Required("restart_soc", default=current.restart_soc): number_selector(
                    0, 100, "%"
                ),
                probatio.Required("gap_sec", default=current.gap_sec): number_selector(
                    0, 3600, "s"
                ),
            }
        )
        return self.async_show_form(
            step_id="restore_settings",
            data_schema=schema,
            description_placeholders={"station": self._stations()[sn]},
        )

    async def async_step_wake_target(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Set (or clear) the MAC and broadcast address a host is woken at."""
        options = self.config_entry.options
        hosts = wake_hosts(options)
        agents = list(hosts)
        targets: dict[str, Any] = dict(mapping_option(options, CONF_WAKE_TARGETS))
        errors: dict[str, str] = {}
        if user_input is not None:
            agent_id = user_input[CONF_AGENT_ID]
            mac = str(user_input.get(WAKE_MAC) or "").strip()
            broadcast = str(user_input.get(WAKE_BROADCAST) or "").strip()
            port = int(user_input.get(WAKE_PORT) or DEFAULT_WAKE_PORT)
            if agent_id not in agents:
                errors[CONF_AGENT_ID] = "unknown_agent"
            elif mac and not _MAC.match(mac):
                errors[WAKE_MAC] = "invalid_mac"
            elif broadcast and not _IPV4.match(broadcast):
                errors[WAKE_BROADCAST] = "invalid_broadcast"
            else:
                if mac:
                    targets[agent_id] = {
                        WAKE_MAC: mac,
                        WAKE_BROADCAST: broadcast or None,
                        WAKE_PORT: port,
                    }
                else:
                    targets.pop(agent_id, None)  # back to what the agent reports
                return self.async_create_entry(data={**options, CONF_WAKE_TARGETS: targets})
        selector = station_selector(hosts)
        schema = probatio.Schema(
            {
                probatio.Required(CONF_AGENT_ID): selector,
                probatio.Optional(WAKE_MAC): TextSelector(),
                probatio.Optional(WAKE_BROADCAST): TextSelector(),
                probatio.Optional(WAKE_PORT, default=DEFAULT_WAKE_PORT): number_selector(
                    1, 65535, ""
                ),
            }
        )
        return self.async_show_form(step_id="wake_target", data_schema=schema, errors=errors)
