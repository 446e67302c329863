"""Options: map host agents to stations, edit or remove them (a mixin of the options flow)."""

from __future__ import annotations

from collections.abc import Mapping
import secrets
from typing import Any

from homeassistant.config_entries import ConfigFlowResult
from homeassistant.helpers.selector import (
    SelectOptionDict,
    SelectSelector,
    SelectSelectorConfig,
    SelectSelectorMode,
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
    CONF_AGENT_ID,
    CONF_AGENTS,
    CONF_NEW_SECRET,
    CONF_STATION,
    CONF_TOPIC_PREFIX,
    DEFAULT_TOPIC_PREFIX,
)
from .options_base import StationOptionsFlow
from .policy.protocol import is_valid_agent_id
from .selectors import (
    number_selector as _number,
    seconds_selector as _seconds,
    station_selector as _station_selector,
)
from .stored_options import mapping_option


class AgentOptionsMixin(StationOptionsFlow):
    """Steps `add_agent`, `agent_secret`, `edit_agent`, `agent_settings`, `remove_agent`."""

    _agent_id: str | None = None
    _new_secret: str = ""

    async def async_step_add_agent(
        self, user_input: dict[str, Any] | None = None
    ) -> ConfigFlowResult:
        """Map a host agent to a station; agents that announced themselves are offered."""
        errors: dict[str, str] = {}
        agents: dict[str, Any] = dict(mapping_option(self._entry.options, CONF_AGENTS))
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
        agents = sorted(mapping_option(self._entry.options, CONF_AGENTS))
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
        agents: dict[str, Any] = dict(mapping_option(self._entry.options, CONF_AGENTS))
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
        agents: dict[str, Any] = dict(mapping_option(self._entry.options, CONF_AGENTS))
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
