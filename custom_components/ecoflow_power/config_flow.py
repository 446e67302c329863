"""Config flow: EcoFlow developer keys, device choice, reauth, reconfigure.

The options flow lives in options_flow.py and its step mixins.
"""

from __future__ import annotations

from collections.abc import Mapping
import logging
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import (
    SOURCE_REAUTH,
    SOURCE_RECONFIGURE,
    ConfigFlow,
    ConfigFlowResult,
)
from homeassistant.core import callback
from homeassistant.data_entry_flow import section
from homeassistant.helpers.selector import (
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
    TextSelector,
    TextSelectorConfig,
    TextSelectorType,
)
import probatio

from .account import (
    CONFIG_MINOR_VERSION,
    account_unique_id,
    async_account_unique_id,
    client_from_data,
    legacy_unique_id,
)
from .const import (
    CONF_ACCESS_KEY,
    CONF_ADD_NEW_DEVICES,
    CONF_ADVANCED,
    CONF_BASE_URL,
    CONF_DEVICES,
    CONF_GRID_CONFIRM,
    CONF_REGION,
    CONF_SECRET_KEY,
    CONF_STALE_AFTER,
    DEFAULT_GRID_CONFIRM,
    DEFAULT_STALE_AFTER,
    DOMAIN,
)
from .device_selection import selection_options
from .ecoflow.api import DeviceInfo, Region
from .ecoflow.errors import (
    EcoflowAuthError,
    EcoflowConnectionError,
    EcoflowError,
    EcoflowRateLimitError,
)
from .options_flow import EcoflowOptionsFlow
from .selectors import devices_schema

if TYPE_CHECKING:
    from .runtime import EcoflowConfigEntry

_LOGGER = logging.getLogger(__name__)

REGION_TITLES = {Region.EU: "Europe", Region.US: "Americas", Region.GLOBAL: "Global"}
SECRET_TEXT = TextSelector(TextSelectorConfig(type=TextSelectorType.PASSWORD))


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
            data_schema=devices_schema(self._account, [d.sn for d in self._account], True),
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
