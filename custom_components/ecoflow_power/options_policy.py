"""Options: the shutdown policy of one station (a mixin of the options flow).

Settings are checked by building PolicySettings, the same class the engine
trusts: a value it refuses is an error in the form, never a saved option.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from homeassistant.config_entries import ConfigFlowResult
import probatio

from .const import (
    CONF_POLICY,
    CONF_TOPIC_PREFIX,
    DEFAULT_TOPIC_PREFIX,
)
from .options_base import StationOptionsFlow
from .policy.settings import PolicySettings
from .selectors import number_selector, seconds_selector
from .stored_options import mapping, mapping_option, valid_topic_prefix
from .telemetry_settings import TelemetrySettings


def stored_policy_settings(stored: Mapping[str, Any]) -> PolicySettings:
    """What to show as current: the stored settings, or the defaults if they are not valid."""
    try:
        return PolicySettings.from_mapping(stored)
    except ValueError, TypeError:
        return PolicySettings()


def _error_of(settings: Mapping[str, Any]) -> str | None:
    """Why the engine would refuse these settings; None when it accepts them."""
    try:
        PolicySettings.from_mapping(settings)
    except (ValueError, TypeError) as err:
        return str(err)
    return None


def settings_from_form(user_input: Mapping[str, Any]) -> dict[str, Any]:
    """The form's values as stored options (only settings this engine knows)."""
    settings: dict[str, Any] = {
        "soc_threshold": float(user_input["soc_threshold"]),
        "runtime_threshold_min": int(user_input["runtime_threshold_min"]) or None,
        "debounce_sec": int(user_input["debounce_sec"]),
        "delay_sec": int(user_input["delay_sec"]),
        "ttl_sec": int(user_input["ttl_sec"]),
        "cooldown_sec": int(user_input["cooldown_sec"]),
        "dry_run": bool(user_input["dry_run"]),
    }
    for name in ("restore_confirm_sec", "estimate_margin_sec"):
        if name in user_input:
            settings[name] = int(user_input[name])
    if "blind_mode" in user_input:
        settings["blind_mode"] = bool(user_input["blind_mode"])
    return settings


def policy_schema(current: PolicySettings, prefix: str) -> probatio.Schema:
    fields_: dict[Any, Any] = {
        probatio.Required("soc_threshold", default=current.soc_threshold): number_selector(
            1, 95, "%"
        ),
        probatio.Required(
            "runtime_threshold_min", default=current.runtime_threshold_min or 0
        ): number_selector(0, 600, "min"),
        probatio.Required("debounce_sec", default=current.debounce_sec): seconds_selector(0, 3600),
        probatio.Required("delay_sec", default=current.delay_sec): seconds_selector(0, 3600),
        probatio.Required("ttl_sec", default=current.ttl_sec): seconds_selector(30, 7200),
        probatio.Required("cooldown_sec", default=current.cooldown_sec): seconds_selector(0, 86400),
    }
    fields_[probatio.Required("restore_confirm_sec", default=current.restore_confirm_sec)] = (
        seconds_selector(0, 3600)
    )
    fields_[probatio.Required("estimate_margin_sec", default=current.estimate_margin_sec)] = (
        seconds_selector(0, 3600)
    )
    fields_[probatio.Required("blind_mode", default=current.blind_mode)] = bool
    fields_[probatio.Required("dry_run", default=current.dry_run)] = bool
    fields_[probatio.Required(CONF_TOPIC_PREFIX, default=prefix)] = str
    return probatio.Schema(fields_)


class PolicyOptionsMixin(StationOptionsFlow):
    """The "policy" and "policy_settings" steps of the options flow."""

    async def async_step_policy(self, user_input: dict[str, Any] | None = None) -> ConfigFlowResult:
        """Choose the station whose policy to edit."""
        station = self._chosen_station("policy", user_input)
        if not isinstance(station, str):
            return station
        self._station = station
        return await self.async_step_policy_settings()

    async def async_step_policy_settings(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        assert self._station is not None
        options = self.config_entry.options
        policies: dict[str, Any] = dict(mapping_option(options, CONF_POLICY))
        stored = dict(mapping(policies.get(self._station)))
        errors: dict[str, str] = {}
        placeholders = {"station": self._stations()[self._station], "error": ""}
        if user_input is not None:
            stale = TelemetrySettings.from_options(options).stale_after_sec
            form = settings_from_form(user_input)
            # Stored settings the form does not show are kept, unless they are
            # what makes the stored settings invalid (then they are dropped).
            settings = {**stored, **form}
            if _error_of({**settings, "stale_after_sec": stale}) is not None:
                settings = form
            prefix = user_input[CONF_TOPIC_PREFIX].strip().strip("/")
            if (error := _error_of({**settings, "stale_after_sec": stale})) is not None:
                errors["base"] = "invalid_policy_settings"
                placeholders["error"] = error
            elif not valid_topic_prefix(prefix):
                # A wildcard would make every command unpublishable.
                errors[CONF_TOPIC_PREFIX] = "invalid_topic_prefix"
            else:
                policies[self._station] = settings
                return self.async_create_entry(
                    data={
                        **options,
                        CONF_POLICY: policies,
                        CONF_TOPIC_PREFIX: prefix,
                    }
                )
        schema = policy_schema(
            stored_policy_settings(stored), options.get(CONF_TOPIC_PREFIX, DEFAULT_TOPIC_PREFIX)
        )
        if user_input is not None:
            schema = self.add_suggested_values_to_schema(schema, user_input)
        return self.async_show_form(
            step_id="policy_settings",
            data_schema=schema,
            errors=errors,
            description_placeholders=placeholders,
        )
