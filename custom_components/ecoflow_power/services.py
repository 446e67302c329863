"""Services: shutdown, abort and ping agents by hand or from automations."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from homeassistant.core import (
    HomeAssistant,
    ServiceCall,
    ServiceResponse,
    SupportsResponse,
    callback,
)
from homeassistant.exceptions import ServiceValidationError
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.service import async_register_admin_service
from homeassistant.util.json import JsonValueType
import probatio

from .agents import agent_id_from_identifier
from .const import DOMAIN

if TYPE_CHECKING:
    from .policy_coordinator import PolicyCoordinator

ATTR_AGENTS = "agents"
ATTR_DEVICE_ID = "device_id"
ATTR_DELAY = "delay_sec"
ATTR_REASON = "reason"
ATTR_DRY_RUN = "dry_run"
ATTR_TIMEOUT = "timeout"

_TARGETS = {
    probatio.Optional(ATTR_AGENTS): probatio.All(cv.ensure_list, [cv.string]),
    probatio.Optional(ATTR_DEVICE_ID): probatio.All(cv.ensure_list, [cv.string]),
}
SHUTDOWN_SCHEMA = probatio.Schema(
    {
        **_TARGETS,
        probatio.Optional(ATTR_DELAY): probatio.All(
            probatio.Coerce(int), probatio.Range(min=0, max=3600)
        ),
        probatio.Optional(ATTR_REASON, default="manual shutdown from Home Assistant"): cv.string,
        probatio.Optional(ATTR_DRY_RUN, default=False): cv.boolean,
    }
)
ABORT_SCHEMA = probatio.Schema(_TARGETS)
PING_SCHEMA = probatio.Schema(
    {
        **_TARGETS,
        probatio.Optional(ATTR_TIMEOUT, default=5): probatio.All(
            probatio.Coerce(float), probatio.Range(min=0.5, max=60)
        ),
    }
)


def _policies(hass: HomeAssistant) -> list[PolicyCoordinator]:
    return [
        entry.runtime_data.policy
        for entry in hass.config_entries.async_loaded_entries(DOMAIN)
        if entry.runtime_data.policy is not None
    ]


def _resolve_agents(
    hass: HomeAssistant, call: ServiceCall, *, default_all: bool
) -> dict[PolicyCoordinator, list[str]]:
    """Agent ids from `agents` and `device_id` (a station means all its agents)."""
    policies = _policies(hass)
    if not policies:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="not_loaded")
    wanted: list[str] = list(call.data.get(ATTR_AGENTS, []))
    registry = dr.async_get(hass)
    for device_id in call.data.get(ATTR_DEVICE_ID, []):
        device = registry.async_get(device_id)
        identifiers = [i for d, i in device.identifiers if d == DOMAIN] if device else []
        if not identifiers:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="unknown_device",
                translation_placeholders={"device_id": device_id},
            )
        for identifier in identifiers:
            if (agent_id := agent_id_from_identifier(identifier)) is not None:
                wanted.append(agent_id)
            else:
                wanted += [a for p in policies for a in p.agents_of_station(identifier)]
    if not wanted and default_all:
        wanted = [agent for policy in policies for agent in policy.agents]
    if not wanted:
        raise ServiceValidationError(translation_domain=DOMAIN, translation_key="no_agents")
    grouped: dict[PolicyCoordinator, list[str]] = {}
    for agent_id in dict.fromkeys(wanted):
        owner = next((p for p in policies if agent_id in p.agents), None)
        if owner is None:
            raise ServiceValidationError(
                translation_domain=DOMAIN,
                translation_key="unknown_agent",
                translation_placeholders={"agent": agent_id},
            )
        grouped.setdefault(owner, []).append(agent_id)
    for policy in grouped:
        policy.require_mqtt()
    return grouped


async def _async_shutdown(call: ServiceCall) -> ServiceResponse:
    sent: list[str] = []
    for policy, agents in _resolve_agents(call.hass, call, default_all=False).items():
        sent += await policy.async_manual_shutdown(
            agents,
            delay_sec=call.data.get(ATTR_DELAY),
            reason=call.data[ATTR_REASON],
            dry_run=call.data[ATTR_DRY_RUN],
        )
    return {"sent": list[JsonValueType](sent)}


async def _async_abort(call: ServiceCall) -> ServiceResponse:
    sent: list[str] = []
    for policy, agents in _resolve_agents(call.hass, call, default_all=False).items():
        sent += await policy.async_manual_abort(agents)
    return {"sent": list[JsonValueType](sent)}


async def _async_ping(call: ServiceCall) -> ServiceResponse:
    answers: dict[str, Any] = {}
    for policy, agents in _resolve_agents(call.hass, call, default_all=True).items():
        answers |= await policy.async_ping(agents, call.data[ATTR_TIMEOUT])
    return {"agents": answers}


@callback
def async_setup_services(hass: HomeAssistant) -> None:
    # Shutting hosts down (or stopping a shutdown) is a privileged action:
    # admin users only, as the Platinum integrations do for theirs.
    async_register_admin_service(
        hass,
        DOMAIN,
        "shutdown",
        _async_shutdown,
        SHUTDOWN_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    async_register_admin_service(
        hass,
        DOMAIN,
        "abort",
        _async_abort,
        ABORT_SCHEMA,
        supports_response=SupportsResponse.OPTIONAL,
    )
    hass.services.async_register(
        DOMAIN, "ping_agents", _async_ping, PING_SCHEMA, supports_response=SupportsResponse.ONLY
    )
