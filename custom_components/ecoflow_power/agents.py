"""Host agents as the options store them, and agents that announce themselves."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
import json
from typing import Any

from .const import CONF_AGENTS, CONF_POLICY
from .policy.protocol import is_valid_agent_id, sanitize_text
from .policy.settings import AgentBinding, PolicySettings
from .stored_options import mapping_option

# Agents' devices sit beside stations' in the registry: a prefix tells them apart.
_AGENT_IDENTIFIER_PREFIX = "agent_"

AGENT_DEVICE = "device"
AGENT_SECRET = "secret"
AGENT_SOC_THRESHOLD = "soc_threshold"
AGENT_DELAY = "delay_sec"
# Further stations feeding the same host (redundant supplies), and whether all
# of them ("all", default) or any one must be critical for its shutdown.
AGENT_FEEDS = "feeds"
AGENT_FEED_RULE = "feed_rule"
# The host runs Home Assistant or the broker: it shuts down last, and every
# other host of its station gets fsd first (stored only when set).
AGENT_INFRASTRUCTURE = "infrastructure"


def agent_device_identifier(agent_id: str) -> str:
    """The device registry identifier (under our domain) of an agent's device."""
    return f"{_AGENT_IDENTIFIER_PREFIX}{agent_id}"


def agent_id_from_identifier(identifier: str) -> str | None:
    """The agent id of an agent's device identifier; None for a station's."""
    if identifier.startswith(_AGENT_IDENTIFIER_PREFIX):
        return identifier.removeprefix(_AGENT_IDENTIFIER_PREFIX)
    return None


@dataclass(frozen=True, slots=True)
class AgentConfig:
    """One agent mapped to the power station that feeds its host."""

    agent_id: str
    device: str
    binding: AgentBinding

    @property
    def secret(self) -> str:
        return self.binding.secret

    @property
    def stations(self) -> tuple[str, ...]:
        """Every station that feeds the host: its own first, then the others."""
        return (self.device, *self.binding.feeds)

    def observer(self) -> AgentBinding:
        """The binding a feeding (not owning) station's engine gets: decide, never send."""
        return replace(self.binding, feeds=(), observe_only=True)


def agents_from_options(
    options: Mapping[str, Any], invalid: list[str] | None = None
) -> dict[str, AgentConfig]:
    """The configured agents; ones whose stored options are not valid are left out.

    Their ids go to `invalid` (for a repair): one bad agent must not take the
    policy of every other host down with it.
    """
    agents: dict[str, AgentConfig] = {}
    for agent_id, data in mapping_option(options, CONF_AGENTS).items():
        try:
            agents[agent_id] = AgentConfig(
                agent_id=agent_id,
                device=data[AGENT_DEVICE],
                binding=AgentBinding(
                    agent_id=agent_id,
                    secret=data[AGENT_SECRET],
                    soc_threshold=data.get(AGENT_SOC_THRESHOLD),
                    delay_sec=data.get(AGENT_DELAY),
                    infrastructure=data.get(AGENT_INFRASTRUCTURE) is True,
                    feeds=tuple(
                        sn for sn in data.get(AGENT_FEEDS) or () if sn != data[AGENT_DEVICE]
                    ),
                    feed_rule=data.get(AGENT_FEED_RULE) or "all",
                ),
            )
        except KeyError, TypeError, ValueError, AttributeError:
            if invalid is not None:
                invalid.append(str(agent_id))
    return agents


def bindings_for_station(agents: Mapping[str, AgentConfig], sn: str) -> list[AgentBinding]:
    """A station's engine: the agents it owns, and observers of those it also feeds."""
    owned = [agent.binding for agent in agents.values() if agent.device == sn]
    fed = [agent.observer() for agent in agents.values() if sn in agent.binding.feeds]
    return owned + fed


def policy_settings_for(
    options: Mapping[str, Any], sn: str, stale_after_sec: float
) -> PolicySettings:
    """A station's policy settings; its staleness is the telemetry stale timeout.

    Raises ValueError or TypeError when the stored settings are not valid.
    """
    station = mapping_option(options, CONF_POLICY).get(sn, {})
    if not isinstance(station, Mapping):
        raise TypeError(f"the stored policy of {sn} is not a mapping")
    stored = dict(station)
    stored["stale_after_sec"] = int(stale_after_sec)
    return PolicySettings.from_mapping(stored)


@dataclass(frozen=True, slots=True)
class DiscoveredAgent:
    """An agent that published a status but is not configured yet (offered in options)."""

    agent_id: str
    hostname: str
    platform: str

    @classmethod
    def from_payload(cls, agent_id: str, payload: str | bytes) -> DiscoveredAgent | None:
        if not is_valid_agent_id(agent_id):
            return None
        try:
            data = json.loads(payload)
        except ValueError:
            return None
        if not isinstance(data, dict) or data.get("agent") != agent_id:
            return None
        return cls(
            agent_id=agent_id,
            hostname=sanitize_text(data.get("hostname", ""), 64),
            platform=sanitize_text(data.get("platform", ""), 16),
        )
