"""Building a station's engine at start: settings, stored state, agents — never failing.

Whatever is stored and cannot be used gives a working default and a repair:
invalid settings run on the defaults, an unreadable state gives a fresh
engine, an agent whose options are broken or whose station is not managed
protects nothing and says so.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
import logging
from typing import Any
import uuid

from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir

from .agents import AgentConfig, policy_settings_for
from .clock import now_ts
from .issues import (
    ISSUE_AGENT_INVALID,
    ISSUE_AGENT_UNMANAGED_STATION,
    ISSUE_POLICY_SETTINGS_INVALID,
    ISSUE_POLICY_STATE_UNREADABLE,
    clear_repair,
    raise_repair,
)
from .policy.engine import PolicyEngine
from .policy.settings import AgentBinding, PolicySettings

_LOGGER = logging.getLogger(__name__)


def _new_id() -> str:
    return str(uuid.uuid4())


def load_settings(
    hass: HomeAssistant,
    options: Mapping[str, Any],
    sn: str,
    stale_after_sec: float,
    station_name: str,
) -> PolicySettings:
    """The stored settings, or the defaults with a repair when they are not valid."""
    issue_id = f"{ISSUE_POLICY_SETTINGS_INVALID}_{sn}"
    try:
        settings = policy_settings_for(options, sn, stale_after_sec)
    except (ValueError, TypeError) as err:
        _LOGGER.warning("Invalid policy settings for %s, using defaults: %s", sn, err)
        raise_repair(
            hass,
            issue_id,
            ISSUE_POLICY_SETTINGS_INVALID,
            {"device": station_name, "error": str(err)},
        )
        return PolicySettings(stale_after_sec=int(stale_after_sec))
    clear_repair(hass, issue_id)
    return settings


def build_engine(
    hass: HomeAssistant,
    sn: str,
    settings: PolicySettings,
    bindings: list[AgentBinding],
    *,
    stored: Any,
    station_name: str,
) -> PolicyEngine:
    """Resume the stored engine; an unreadable state gives a fresh engine and a repair."""
    issue_id = f"{ISSUE_POLICY_STATE_UNREADABLE}_{sn}"
    if stored is not None:
        try:
            engine = PolicyEngine.from_dict(
                stored, settings, bindings, clock=now_ts, id_factory=_new_id
            )
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            # PolicyStateError is a ValueError; the others guard any shape left.
            _LOGGER.warning("Stored policy state of %s is unreadable: %s", sn, err)
            raise_repair(
                hass,
                issue_id,
                ISSUE_POLICY_STATE_UNREADABLE,
                {"device": station_name, "error": str(err) or type(err).__name__},
            )
        else:
            clear_repair(hass, issue_id)
            return engine
    return PolicyEngine(sn, settings, bindings, clock=now_ts, id_factory=_new_id)


def update_agent_repairs(
    hass: HomeAssistant,
    entry_id: str,
    agents: Iterable[AgentConfig],
    invalid: list[str],
    managed: Iterable[str],
) -> None:
    """Agents that cannot protect anything: invalid options, or an unmanaged station."""
    invalid_issue = f"{ISSUE_AGENT_INVALID}_{entry_id}"
    if invalid:
        raise_repair(
            hass, invalid_issue, ISSUE_AGENT_INVALID, {"agents": ", ".join(sorted(invalid))}
        )
    else:
        clear_repair(hass, invalid_issue)
    stations = set(managed)
    unmanaged = sorted(a.agent_id for a in agents if a.device not in stations)
    unmanaged_issue = f"{ISSUE_AGENT_UNMANAGED_STATION}_{entry_id}"
    if unmanaged:
        raise_repair(
            hass,
            unmanaged_issue,
            ISSUE_AGENT_UNMANAGED_STATION,
            {"agents": ", ".join(unmanaged)},
            severity=ir.IssueSeverity.ERROR,
        )
    else:
        clear_repair(hass, unmanaged_issue)
