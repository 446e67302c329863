"""Options-flow steps of the NUT server, mixed into the integration's options flow."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
import contextlib
import socket
from typing import Any

from homeassistant.config_entries import ConfigFlowResult
from homeassistant.helpers.selector import (
    NumberSelector,
    NumberSelectorConfig,
    NumberSelectorMode,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
)
import probatio

from .nut.config import (
    CONF_NUT,
    DEFAULT_HOST,
    KNOWN_ALIASES,
    NUT_ALIASES,
    NUT_DELAY,
    NUT_ENABLED,
    NUT_HOST,
    NUT_NAME,
    NUT_PASSWORD,
    NUT_PORT,
    NUT_SOC_THRESHOLD,
    NUT_STATIONS,
    NUT_USERS,
    PRESETS,
    NutConfig,
    NutStationConfig,
    default_ups_name,
    generate_password,
    is_valid_host,
    is_valid_ups_name,
    is_valid_username,
)
from .nut.protocol import DEFAULT_PORT
from .options_base import StationOptionsFlow
from .selectors import number_selector, seconds_selector
from .stored_options import mapping_option

NUT_USERNAME = "username"
NUT_PRESET = "preset"
NUT_ACCEPT_PUBLIC = "accept_public_password"
PRESET_NONE = "generated"


def station_names(station: NutStationConfig) -> tuple[str, ...]:
    return (station.name, *station.aliases)


def _port_free(host: str, port: int) -> bool:
    """Whether host:port can be bound now (the check runs in the executor)."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as sock:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            sock.bind((host, port))
        except OSError:
            return False
    return True


class NutOptionsMixin(StationOptionsFlow):
    """Steps `nut`, `nut_server`, `nut_station`, `nut_station_settings`, users."""

    _nut_station: str | None = None
    _nut_user: tuple[str, str] | None = None

    def _nut_options(self) -> dict[str, Any]:
        return dict(mapping_option(self._entry.options, CONF_NUT))

    def _save_nut(self, nut: Mapping[str, Any]) -> ConfigFlowResult:
        return self.async_create_entry(data={**self._entry.options, CONF_NUT: dict(nut)})

    async def async_step_nut(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        menu = ["nut_server", "nut_station", "nut_add_user"]
        if self._nut_options().get(NUT_USERS):
            menu.append("nut_remove_user")
        return self.async_show_menu(step_id="nut", menu_options=menu)

    async def async_step_nut_server(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Enable the server; where it listens."""
        nut = self._nut_options()
        config = NutConfig.from_options(self._entry.options)
        errors: dict[str, str] = {}
        if user_input is not None:
            host = str(user_input[NUT_HOST]).strip()
            port = int(user_input[NUT_PORT])
            enabled = bool(user_input[NUT_ENABLED])
            if not is_valid_host(host):
                errors[NUT_HOST] = "invalid_host"
            elif not 1 <= port <= 65535:
                errors[NUT_PORT] = "invalid_port"
            elif enabled and not config.users:
                errors["base"] = "nut_no_users"
            elif enabled and not await self._nut_address_usable(host, port, config):
                errors[NUT_PORT] = "port_in_use"
            else:
                stations = dict(nut.get(NUT_STATIONS) or {})
                taken = config.names_in_use()
                for sn in self._stations():
                    if sn not in stations:  # every station gets a name on first enable
                        runtime = self._entry.runtime_data
                        model = runtime.telemetry.models[sn].name
                        name = default_ups_name(model, taken)
                        taken.add(name)
                        stations[sn] = {NUT_NAME: name, NUT_ALIASES: []}
                return self._save_nut(
                    {
                        **nut,
                        NUT_ENABLED: enabled,
                        NUT_HOST: host,
                        NUT_PORT: port,
                        NUT_STATIONS: stations,
                    }
                )
        schema = probatio.Schema(
            {
                probatio.Required(NUT_ENABLED, default=config.enabled): bool,
                probatio.Required(NUT_HOST, default=config.host or DEFAULT_HOST): str,
                probatio.Required(NUT_PORT, default=config.port or DEFAULT_PORT): NumberSelector(
                    NumberSelectorConfig(min=1, max=65535, step=1, mode=NumberSelectorMode.BOX)
                ),
            }
        )
        return self.async_show_form(
            step_id="nut_server",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )

    async def _nut_address_usable(self, host: str, port: int, config: NutConfig) -> bool:
        runtime = getattr(self._entry, "runtime_data", None)
        manager = getattr(runtime, "nut", None)
        server = getattr(manager, "server", None)
        if server is not None and server.running and (config.host, config.port) == (host, port):
            return True  # ours: it is freed when the entry reloads
        loop = asyncio.get_running_loop()
        with contextlib.suppress(OSError):
            return await loop.run_in_executor(None, _port_free, host, port)
        return False

    async def async_step_nut_station(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose the station whose NUT name, aliases and wake address to edit."""
        station = self._chosen_station("nut_station", user_input)
        if not isinstance(station, str):
            return station
        self._nut_station = station
        return await self.async_step_nut_station_settings()

    async def async_step_nut_station_settings(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """UPS name, aliases, and the NUT clients' own threshold and delay."""
        sn = self._nut_station
        assert sn is not None
        nut = self._nut_options()
        config = NutConfig.from_options(self._entry.options)
        current = config.stations.get(sn)
        errors: dict[str, str] = {}
        if user_input is not None:
            name = str(user_input[NUT_NAME]).strip()
            aliases = [a for a in user_input.get(NUT_ALIASES, []) if a in KNOWN_ALIASES]
            others = config.names_in_use(except_sn=sn)
            if not is_valid_ups_name(name):
                errors[NUT_NAME] = "invalid_ups_name"
            elif name.lower() in others or name.lower() in aliases:
                errors[NUT_NAME] = "ups_name_taken"
            elif any(alias in others for alias in aliases):
                errors[NUT_ALIASES] = "alias_taken"
            else:
                threshold = user_input.get(NUT_SOC_THRESHOLD)
                delay = user_input.get(NUT_DELAY)
                stations = dict(nut.get(NUT_STATIONS) or {})
                stations[sn] = {
                    NUT_NAME: name,
                    NUT_ALIASES: aliases,
                    NUT_SOC_THRESHOLD: None if threshold is None else float(threshold),
                    NUT_DELAY: None if delay is None else int(delay),
                }
                return self._save_nut({**nut, NUT_STATIONS: stations})
        taken = config.names_in_use(except_sn=sn)
        suggested = {
            NUT_NAME: current.name if current else default_ups_name(self._model_name(sn), taken),
            NUT_ALIASES: list(current.aliases) if current else [],
            NUT_SOC_THRESHOLD: current.soc_threshold if current else None,
            NUT_DELAY: current.delay_sec if current else None,
        }
        schema = probatio.Schema(
            {
                probatio.Required(NUT_NAME): TextSelector(),
                probatio.Optional(NUT_ALIASES, default=[]): SelectSelector(
                    SelectSelectorConfig(
                        options=list(KNOWN_ALIASES),
                        multiple=True,
                        translation_key="nut_alias",
                        mode=SelectSelectorMode.LIST,
                    )
                ),
                probatio.Optional(NUT_SOC_THRESHOLD): number_selector(1, 95, "%"),
                probatio.Optional(NUT_DELAY): seconds_selector(0, 3600),
            }
        )
        return self.async_show_form(
            step_id="nut_station_settings",
            data_schema=self.add_suggested_values_to_schema(schema, user_input or suggested),
            errors=errors,
            description_placeholders={"station": self._stations().get(sn, sn)},
        )

    def _model_name(self, sn: str) -> str:
        runtime = getattr(self._entry, "runtime_data", None)
        models = runtime.telemetry.models if runtime else {}
        return models[sn].name if sn in models else "ecoflow"

    async def async_step_nut_add_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """A user for NUT clients: a generated password, or a NAS's public preset."""
        nut = self._nut_options()
        users = dict(nut.get(NUT_USERS) or {})
        errors: dict[str, str] = {}
        if user_input is not None:
            preset = user_input.get(NUT_PRESET, PRESET_NONE)
            username = str(user_input.get(NUT_USERNAME) or "").strip()
            if preset in PRESETS:
                username, password = PRESETS[preset]
            else:
                password = generate_password()
            if preset in PRESETS and not user_input.get(NUT_ACCEPT_PUBLIC):
                errors[NUT_ACCEPT_PUBLIC] = "public_password_not_accepted"
            elif not is_valid_username(username):
                errors[NUT_USERNAME] = "invalid_username"
            elif username in users:
                errors[NUT_USERNAME] = "username_taken"
            else:
                users[username] = {NUT_PASSWORD: password}
                self._nut_user = (username, password)
                self._pending_options = {
                    **self._entry.options,
                    CONF_NUT: {**nut, NUT_USERS: users},
                }
                return await self.async_step_nut_user_created()
        schema = probatio.Schema(
            {
                probatio.Optional(NUT_USERNAME): str,
                probatio.Required(NUT_PRESET, default=PRESET_NONE): SelectSelector(
                    SelectSelectorConfig(
                        options=[PRESET_NONE, *PRESETS],
                        translation_key="nut_preset",
                        mode=SelectSelectorMode.LIST,
                    )
                ),
                probatio.Optional(NUT_ACCEPT_PUBLIC, default=False): bool,
            }
        )
        return self.async_show_form(
            step_id="nut_add_user",
            data_schema=self.add_suggested_values_to_schema(schema, user_input),
            errors=errors,
        )

    async def async_step_nut_user_created(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the credentials once, with what to enter on the NAS."""
        if user_input is not None:
            return self.async_create_entry(data=self._pending_options)
        username, password = self._nut_user or ("", "")
        config = NutConfig.from_options(self._pending_options)
        names = ", ".join(
            name
            for station in config.stations.values()
            for name in (station.name, *station.aliases)
        )
        return self.async_show_form(
            step_id="nut_user_created",
            data_schema=probatio.Schema({}),
            description_placeholders={
                "username": username,
                "password": password,
                "port": str(config.port),
                "ups_names": names or "-",
            },
        )

    async def async_step_nut_remove_user(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        nut = self._nut_options()
        users = dict(nut.get(NUT_USERS) or {})
        if user_input is not None:
            for username in user_input[NUT_USERS]:
                users.pop(username, None)
            return self._save_nut({**nut, NUT_USERS: users})
        return self.async_show_form(
            step_id="nut_remove_user",
            data_schema=probatio.Schema(
                {
                    probatio.Required(NUT_USERS, default=[]): SelectSelector(
                        SelectSelectorConfig(options=sorted(users), multiple=True)
                    )
                }
            ),
        )
