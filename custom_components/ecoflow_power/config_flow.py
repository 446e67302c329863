"""Config flow: EcoFlow developer keys, device choice, reauth, reconfigure, options."""

from __future__ import annotations

from collections.abc import Mapping
import hashlib
import logging
import secrets
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import (
    SOURCE_REAUTH,
    SOURCE_RECONFIGURE,
    ConfigFlow,
    ConfigFlowResult,
    OptionsFlowWithReload,
)
from homeassistant.core import HomeAssistant, callback
from homeassistant.data_entry_flow import section
from homeassistant.helpers.aiohttp_client import async_get_clientsession
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio

from .agents import (
    AGENT_DELAY,
    AGENT_DEVICE,
    AGENT_FEED_RULE,
    AGENT_FEEDS,
    AGENT_INFRASTRUCTURE,
    AGENT_SECRET,
    AGENT_SOC_THRESHOLD,
)
from .const import (
    CONF_ACCESS_KEY,
    CONF_ADD_NEW_DEVICES,
    CONF_ADVANCED,
    CONF_AGENT_ID,
    CONF_AGENTS,
    CONF_BASE_URL,
    CONF_DEVICES,
    CONF_GRID_CONFIRM,
    CONF_NEW_SECRET,
    CONF_REGION,
    CONF_SECRET_KEY,
    CONF_STALE_AFTER,
    CONF_STATION,
    CONF_TOPIC_PREFIX,
    DEFAULT_GRID_CONFIRM,
    DEFAULT_STALE_AFTER,
    DEFAULT_TOPIC_PREFIX,
    DOMAIN,
)
from .device_selection import devices_to_manage, selection_options
from .ecoflow.api import DeviceInfo, EcoflowApiClient, Region
from .ecoflow.errors import (
    EcoflowAuthError,
    EcoflowConnectionError,
    EcoflowError,
    EcoflowRateLimitError,
)
from .options_nut import NutOptionsMixin
from .options_policy import PolicyOptionsMixin
from .options_restore import RestoreOptionsSteps, wake_hosts
from .options_sentinel import SentinelOptionsMixin
from .policy.protocol import is_valid_agent_id
from .selectors import (
    number_selector as _number,
    seconds_selector as _seconds,
    station_selector as _station_selector,
)

if TYPE_CHECKING:
    from .runtime import EcoflowConfigEntry

_LOGGER = logging.getLogger(__name__)

REGION_TITLES = {Region.EU: "Europe", Region.US: "Americas", Region.GLOBAL: "Global"}
SECRET_TEXT = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


def client_from_data(hass: HomeAssistant, data: Mapping[str, Any]) -> EcoflowApiClient:
    """An API client for entry data (keys, region, optional base URL)."""
    return EcoflowApiClient(
        async_get_clientsession(hass),
        data[CONF_ACCESS_KEY],
        data[CONF_SECRET_KEY],
        region=Region(data.get(CONF_REGION, Region.EU.value)),
        base_url=data.get(CONF_BASE_URL) or None,
    )


# Entries of minor version 1 were identified by a digest of the access key, which
# changes with every new key and says nothing about the account behind it.
# Minor version 2 identifies the account itself (see account_unique_id).
CONFIG_MINOR_VERSION = 2


def account_unique_id(certificate_account: str) -> str:
    """Identify the EcoFlow account by a digest of its certificate account.

    The certification endpoint names the account (``certificateAccount``, the
    MQTT user of every topic ``/open/{account}/...``); it stays the same when
    the developer keys are regenerated, and differs between accounts. Only a
    digest is kept, so the unique id reveals neither the account nor a key.
    """
    return hashlib.sha256(f"ecoflow-account:{certificate_account.strip()}".encode()).hexdigest()[
        :20
    ]


def legacy_unique_id(access_key: str) -> str:
    """The unique id of entries of minor version 1: a digest of the access key."""
    return hashlib.sha256(access_key.strip().encode()).hexdigest()[:20]


async def async_account_unique_id(hass: HomeAssistant, data: Mapping[str, Any]) -> str:
    """Ask the cloud which account the keys of ``data`` belong to (raises EcoflowError)."""
    credentials = await client_from_data(hass, data).certification()
    return account_unique_id(credentials.username)


class CannotValidate(Exception):
    """Validation failed; `error` is the form's translated error key."""

    def __init__(self, error: str, placeholders: dict[str, str] | None = None) -> None:
        super().__init__(error)
        self.error = error
        self.placeholders = placeholders or {}


def _keys_schema(defaults: Mapping[str, Any], *, with_region: bool) -> probatio.Schema:
    fields: dict[Any, Any] = {
        probatio.Required(CONF_ACCESS_KEY, default=defaults.get(CONF_ACCESS_KEY, "")): str,
        probatio.Required(CONF_SECRET_KEY): SECRET_TEXT,
    }
    if with_region:
        fields[
            probatio.Required(CONF_REGION, default=defaults.get(CONF_REGION, Region.EU.value))
        ] = SelectSelector(
            SelectSelectorConfig(
                options=[region.value for region in Region],
                translation_key=CONF_REGION,
                mode=SelectSelectorMode.DROPDOWN,
            )
        )
        fields[probatio.Required(CONF_ADVANCED)] = section(
            probatio.Schema(
                {
                    probatio.Optional(
                        CONF_BASE_URL,
                        description={"suggested_value": defaults.get(CONF_BASE_URL)},
                    ): TextSelector(TextSelectorConfig(type=TextSelectorType.URL)),
                }
            ),
            {"collapsed": not defaults.get(CONF_BASE_URL)},
        )
    return probatio.Schema(fields)


class EcoflowConfigFlow(ConfigFlow, domain=DOMAIN):
    """Sign in with developer keys, then choose devices."""

    VERSION = 1
    MINOR_VERSION = CONFIG_MINOR_VERSION

    def __init__(self) -> None:
        self._data: dict[str, Any] = {}
        self._account: list[DeviceInfo] = []

    @staticmethod
    @callback
    def async_get_options_flow(config_entry: EcoflowConfigEntry) -> EcoflowOptionsFlow:
        return EcoflowOptionsFlow()

    async def _validate(self, data: Mapping[str, Any]) -> tuple[str, list[DeviceInfo]]:
        """Sign in and list devices: (account unique id, devices), or raise CannotValidate."""
        base_url = data.get(CONF_BASE_URL) or None
        region = Region(data.get(CONF_REGION, Region.EU.value))
        client = client_from_data(self.hass, data)
        try:
            credentials = await client.certification()
            devices = await client.devices()
        except EcoflowAuthError as err:
            if base_url is None and (other := await self._region_accepting(data, region)):
                # A wrong region answers exactly like wrong keys: say which works.
                raise CannotValidate("wrong_region", {"region": REGION_TITLES[other]}) from err
            raise CannotValidate("invalid_auth") from err
        except EcoflowConnectionError as err:
            raise CannotValidate("cannot_connect") from err
        except EcoflowRateLimitError as err:
            raise CannotValidate("rate_limited") from err
        except EcoflowError as err:
            # The form says what to do; EcoFlow's answer (codes, no secrets) is for the log.
            _LOGGER.warning("EcoFlow could not complete the sign-in: %s", err)
            raise CannotValidate("service_error") from err
        if not devices:
            raise CannotValidate("no_devices")
        return account_unique_id(credentials.username), devices

    async def _entry_account(self, entry: EcoflowConfigEntry) -> str | None:
        """The account unique id of an entry; None when it cannot be known.

        A migrated entry carries it. An entry still on the access-key digest
        (the cloud was unreachable at every start since the update) is asked
        with its stored keys; during a reauth those are refused, and then the
        account is unknown.
        """
        if entry.minor_version >= CONFIG_MINOR_VERSION:
            return entry.unique_id
        try:
            return await async_account_unique_id(self.hass, entry.data)
        except EcoflowError:
            return None

    async def _region_accepting(self, data: Mapping[str, Any], tried: Region) -> Region | None:
        for region in Region:
            if region is tried:
                continue
            client = client_from_data(self.hass, {**data, CONF_REGION: region.value})
            try:
                await client.certification()
            except EcoflowError:
                continue
            return region
        return None

    async def async_step_user(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Developer keys and region."""
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {}
        if user_input is not None:
            data = _flatten_input(user_input)
            if self.hass.config_entries.async_entry_for_domain_unique_id(
                DOMAIN, legacy_unique_id(data[CONF_ACCESS_KEY])
            ):
                return self.async_abort(reason="already_configured")
            try:
                unique_id, self._account = await self._validate(data)
            except CannotValidate as err:
                errors["base"] = err.error
                placeholders = err.placeholders
            else:
                await self.async_set_unique_id(unique_id)
                self._abort_if_unique_id_configured()
                self._data = data
                return await self.async_step_devices()
        return self.async_show_form(
            step_id="user",
            data_schema=self.add_suggested_values_to_schema(
                _keys_schema({}, with_region=True), _values_to_show_again(user_input)
            ),
            errors=errors,
            description_placeholders=placeholders,
        )

    async def async_step_devices(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose which of the account's devices to manage (all by default)."""
        errors: dict[str, str] = {}
        if user_input is not None:
            if not user_input[CONF_DEVICES]:
                errors["base"] = "no_devices_selected"
            else:
                options = {
                    **selection_options(user_input[CONF_DEVICES], self._account),
                    CONF_ADD_NEW_DEVICES: user_input[CONF_ADD_NEW_DEVICES],
                    CONF_STALE_AFTER: DEFAULT_STALE_AFTER,
                    CONF_GRID_CONFIRM: DEFAULT_GRID_CONFIRM,
                }
                region = Region(self._data[CONF_REGION])
                title = f"EcoFlow Cloud ({REGION_TITLES[region]})"
                if self._data.get(CONF_BASE_URL):
                    title = f"EcoFlow ({self._data[CONF_BASE_URL]})"
                return self.async_create_entry(title=title, data=self._data, options=options)
        return self.async_show_form(
            step_id="devices",
            data_schema=_devices_schema(self._account, [d.sn for d in self._account], True),
            errors=errors,
        )

    async def async_step_reauth(self, entry_data: Mapping[str, Any]) -> ConfigFlowResult:
        """The cloud refused the stored keys."""
        return await self.async_step_reauth_confirm()

    async def async_step_reauth_confirm(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Ask for new keys (the account's keys may have been regenerated)."""
        return await self._async_update_keys(user_input, step_id="reauth_confirm")

    async def async_step_reconfigure(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Change keys, region or API base URL."""
        return await self._async_update_keys(user_input, step_id="reconfigure")

    async def _async_update_keys(
        self, user_input: dict[str, Any] | None, *, step_id: str
    ) -> ConfigFlowResult:
        entry = (
            self._get_reauth_entry()
            if self.source == SOURCE_REAUTH
            else self._get_reconfigure_entry()
        )
        with_region = self.source == SOURCE_RECONFIGURE
        errors: dict[str, str] = {}
        placeholders: dict[str, str] = {"title": entry.title}
        if user_input is not None:
            data = {**entry.data, **_flatten_input(user_input)}
            if with_region and not _flatten_input(user_input).get(CONF_BASE_URL):
                data.pop(CONF_BASE_URL, None)
            try:
                unique_id, _devices = await self._validate(data)
            except CannotValidate as err:
                errors["base"] = err.error
                placeholders |= err.placeholders
            else:
                known = await self._entry_account(entry)
                if known is not None and unique_id != known:
                    # Keys of another account would silently swap every
                    # station, agent mapping and policy of this entry.
                    return self.async_abort(reason="wrong_account")
                other = self.hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, unique_id)
                if other is not None and other.entry_id != entry.entry_id:
                    return self.async_abort(reason="already_configured")
                if entry.minor_version < CONFIG_MINOR_VERSION:
                    self.hass.config_entries.async_update_entry(
                        entry, minor_version=CONFIG_MINOR_VERSION
                    )
                return self.async_update_reload_and_abort(entry, unique_id=unique_id, data=data)
        defaults = dict(entry.data) if user_input is None else _flatten_input(user_input)
        return self.async_show_form(
            step_id=step_id,
            data_schema=self.add_suggested_values_to_schema(
                _keys_schema(defaults, with_region=with_region), _values_to_show_again(user_input)
            ),
            errors=errors,
            description_placeholders=placeholders,
        )


class EcoflowOptionsFlow(
    PolicyOptionsMixin,
    SentinelOptionsMixin,
    RestoreOptionsSteps,
    NutOptionsMixin,
    OptionsFlowWithReload,
):
    """Devices and telemetry; per station its policy, sentinel, restore rule and NUT; agents."""

    def __init__(self) -> None:
        self._station: str | None = None
        self._agent_id: str | None = None
        self._pending_options: dict[str, Any] = {}
        self._new_secret: str = ""

    @property
    def _entry(self) -> EcoflowConfigEntry:
        return self.config_entry

    def _stations(self) -> dict[str, str]:
        """Managed stations (sn -> name) of the loaded entry."""
        runtime = getattr(self._entry, "runtime_data", None)
        if runtime is None:
            return {}
        telemetry = runtime.telemetry
        return {
            sn: f"{info.device_name or telemetry.models[sn].name} ({sn})"
            for sn, info in telemetry.devices.items()
        }

    async def async_step_init(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        menu = ["telemetry"]
        stations = bool(self._stations())
        agents = bool(self._entry.options.get(CONF_AGENTS))
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
        schema = _devices_schema(
            account, managed, entry.options.get(CONF_ADD_NEW_DEVICES, True)
        ).extend(
            {
                probatio.Required(
                    CONF_STALE_AFTER,
                    default=entry.options.get(CONF_STALE_AFTER, DEFAULT_STALE_AFTER),
                ): _seconds(30, 3600),
                probatio.Required(
                    CONF_GRID_CONFIRM,
                    default=entry.options.get(CONF_GRID_CONFIRM, DEFAULT_GRID_CONFIRM),
                ): _seconds(0, 300),
            }
        )
        return self.async_show_form(step_id="telemetry", data_schema=schema, errors=errors)

    async def async_step_add_agent(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Map a host agent to a station; agents that announced themselves are offered."""
        errors: dict[str, str] = {}
        agents: dict[str, Any] = dict(self._entry.options.get(CONF_AGENTS, {}))
        if user_input is not None:
            agent_id = user_input[CONF_AGENT_ID].strip()
            if not is_valid_agent_id(agent_id):
                errors[CONF_AGENT_ID] = "invalid_agent_id"
            elif agent_id in agents:
                errors[CONF_AGENT_ID] = "agent_exists"
            else:
                self._new_secret = secrets.token_urlsafe(32)
                agents[agent_id] = _agent_options(user_input, self._new_secret)
                self._agent_id = agent_id
                self._pending_options = {**self._entry.options, CONF_AGENTS: agents}
                return await self.async_step_agent_secret()
        runtime = getattr(self._entry, "runtime_data", None)
        discovered = sorted(runtime.policy.discovered) if runtime and runtime.policy else []
        return self.async_show_form(
            step_id="add_agent",
            data_schema=self.add_suggested_values_to_schema(
                _agent_schema(self._stations(), discovered, with_id=True), user_input or {}
            ),
            errors=errors,
        )

    async def async_step_agent_secret(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Show the new secret once: the agent's config needs it, HA never shows it again."""
        if user_input is not None:
            return self.async_create_entry(data=self._pending_options)
        return self.async_show_form(
            step_id="agent_secret",
            data_schema=probatio.Schema({}),
            description_placeholders={
                "agent": self._agent_id or "",
                "secret": self._new_secret,
                "prefix": self._entry.options.get(CONF_TOPIC_PREFIX, DEFAULT_TOPIC_PREFIX),
            },
        )

    async def async_step_edit_agent(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Choose the agent to edit."""
        agents = sorted(self._entry.options.get(CONF_AGENTS, {}))
        if user_input is not None:
            self._agent_id = user_input[CONF_AGENT_ID]
            return await self.async_step_agent_settings()
        return self.async_show_form(
            step_id="edit_agent",
            data_schema=probatio.Schema(
                {
                    probatio.Required(CONF_AGENT_ID): SelectSelector(
                        SelectSelectorConfig(options=agents, mode=SelectSelectorMode.DROPDOWN)
                    )
                }
            ),
        )

    async def async_step_agent_settings(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Station, threshold and delay of one agent; optionally a new secret."""
        assert self._agent_id is not None
        agents: dict[str, Any] = dict(self._entry.options.get(CONF_AGENTS, {}))
        current = agents[self._agent_id]
        if user_input is not None:
            secret = current[AGENT_SECRET]
            if user_input.get(CONF_NEW_SECRET):
                secret = self._new_secret = secrets.token_urlsafe(32)
            agents[self._agent_id] = _agent_options(user_input, secret)
            self._pending_options = {**self._entry.options, CONF_AGENTS: agents}
            if self._new_secret:
                return await self.async_step_agent_secret()
            return self.async_create_entry(data=self._pending_options)
        suggested = {
            CONF_STATION: current[AGENT_DEVICE],
            AGENT_SOC_THRESHOLD: current.get(AGENT_SOC_THRESHOLD),
            AGENT_DELAY: current.get(AGENT_DELAY),
            AGENT_FEEDS: current.get(AGENT_FEEDS, []),
            AGENT_FEED_RULE: current.get(AGENT_FEED_RULE, "all"),
            AGENT_INFRASTRUCTURE: current.get(AGENT_INFRASTRUCTURE, False),
        }
        return self.async_show_form(
            step_id="agent_settings",
            data_schema=self.add_suggested_values_to_schema(
                _agent_schema(self._stations(), [], with_id=False), suggested
            ),
            description_placeholders={"agent": self._agent_id},
        )

    async def async_step_remove_agent(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        agents: dict[str, Any] = dict(self._entry.options.get(CONF_AGENTS, {}))
        if user_input is not None:
            for agent_id in user_input[CONF_AGENTS]:
                agents.pop(agent_id, None)
            return self.async_create_entry(data={**self._entry.options, CONF_AGENTS: agents})
        return self.async_show_form(
            step_id="remove_agent",
            data_schema=probatio.Schema(
                {
                    probatio.Required(CONF_AGENTS, default=[]): SelectSelector(
                        SelectSelectorConfig(options=sorted(agents), multiple=True)
                    )
                }
            ),
        )


def _agent_options(user_input: Mapping[str, Any], secret: str) -> dict[str, Any]:
    threshold = user_input.get(AGENT_SOC_THRESHOLD)
    delay = user_input.get(AGENT_DELAY)
    options: dict[str, Any] = {
        AGENT_DEVICE: user_input[CONF_STATION],
        AGENT_SECRET: secret,
        AGENT_SOC_THRESHOLD: None if threshold is None else float(threshold),
        AGENT_DELAY: None if delay is None else int(delay),
    }
    feeds = [sn for sn in user_input.get(AGENT_FEEDS) or [] if sn != user_input[CONF_STATION]]
    if feeds:
        # Only hosts with several supplies store these: others keep their shape.
        options[AGENT_FEEDS] = sorted(feeds)
        options[AGENT_FEED_RULE] = user_input.get(AGENT_FEED_RULE) or "all"
    if user_input.get(AGENT_INFRASTRUCTURE):
        # Like feeds: only infrastructure hosts store it, others keep their shape.
        options[AGENT_INFRASTRUCTURE] = True
    return options


def _agent_schema(
    stations: dict[str, str], discovered: list[str], *, with_id: bool
) -> probatio.Schema:
    fields: dict[Any, Any] = {}
    if with_id:
        fields[probatio.Required(CONF_AGENT_ID)] = SelectSelector(
            SelectSelectorConfig(
                options=discovered, custom_value=True, mode=SelectSelectorMode.DROPDOWN
            )
        )
    fields[probatio.Required(CONF_STATION)] = _station_selector(stations)
    fields[probatio.Optional(AGENT_SOC_THRESHOLD)] = _number(1, 95, "%")
    fields[probatio.Optional(AGENT_DELAY)] = _seconds(0, 3600)
    fields[probatio.Optional(AGENT_INFRASTRUCTURE, default=False)] = bool
    if len(stations) > 1:
        fields[probatio.Optional(AGENT_FEEDS)] = SelectSelector(
            SelectSelectorConfig(
                options=[SelectOptionDict(value=sn, label=label) for sn, label in stations.items()],
                multiple=True,
                mode=SelectSelectorMode.DROPDOWN,
            )
        )
        fields[probatio.Optional(AGENT_FEED_RULE, default="all")] = SelectSelector(
            SelectSelectorConfig(
                options=["all", "any"],
                translation_key=AGENT_FEED_RULE,
                mode=SelectSelectorMode.LIST,
            )
        )
    if not with_id:
        fields[probatio.Optional(CONF_NEW_SECRET, default=False)] = bool
    return probatio.Schema(fields)


def _devices_schema(
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


def _flatten_input(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """Form input to entry data: stripped keys, the advanced section folded in."""
    data = {key: value for key, value in user_input.items() if key != CONF_ADVANCED}
    for key in (CONF_ACCESS_KEY, CONF_SECRET_KEY):
        if key in data:
            data[key] = data[key].strip()
    base_url = (user_input.get(CONF_ADVANCED) or {}).get(CONF_BASE_URL)
    if base_url:
        data[CONF_BASE_URL] = base_url.strip().rstrip("/")
    return data


def _values_to_show_again(user_input: Mapping[str, Any] | None) -> dict[str, Any]:
    """What to show again after an error: never the secret key."""
    if not user_input:
        return {}
    return {key: value for key, value in user_input.items() if key != CONF_SECRET_KEY}
