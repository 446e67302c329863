"""Device triggers: grid lost/restored, battery critical, shutdown sent/aborted, agent offline."""

from __future__ import annotations

from homeassistant.components.device_automation import DEVICE_TRIGGER_BASE_SCHEMA
from homeassistant.components.homeassistant.triggers import event as event_trigger
from homeassistant.const import CONF_DEVICE_ID, CONF_DOMAIN, CONF_PLATFORM, CONF_TYPE
from homeassistant.core import CALLBACK_TYPE, HomeAssistant
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.trigger import TriggerActionType, TriggerInfo
from homeassistant.helpers.typing import ConfigType
import probatio

from .agents import agent_id_from_identifier
from .const import DOMAIN, EVENT_POLICY, POLICY_EVENT_TYPES

# Events about one host carry that agent's device; the others the station's.
AGENT_TRIGGERS = (
    "agent_offline",
    "shutdown_sent",
    "shutdown_aborted",
    "host_woken",
    "host_wake_failed",
)
STATION_TRIGGERS = tuple(
    t for t in POLICY_EVENT_TYPES if t not in {"agent_offline", "host_woken", "host_wake_failed"}
)

TRIGGER_SCHEMA = DEVICE_TRIGGER_BASE_SCHEMA.extend(
    {probatio.Required(CONF_TYPE): probatio.In(POLICY_EVENT_TYPES)}
)


async def async_get_triggers(hass: HomeAssistant, device_id: str) -> list[dict[str, str]]:
    device = dr.async_get(hass).async_get(device_id)
    if device is None:
        return []
    identifiers = [identifier for domain, identifier in device.identifiers if domain == DOMAIN]
    if not identifiers:
        return []
    is_agent = agent_id_from_identifier(identifiers[0]) is not None
    types = AGENT_TRIGGERS if is_agent else STATION_TRIGGERS
    return [
        {CONF_PLATFORM: "device", CONF_DOMAIN: DOMAIN, CONF_DEVICE_ID: device_id, CONF_TYPE: kind}
        for kind in types
    ]


async def async_attach_trigger(
    hass: HomeAssistant,
    config: ConfigType,
    action: TriggerActionType,
    trigger_info: TriggerInfo,
) -> CALLBACK_TYPE:
    event_config = event_trigger.TRIGGER_SCHEMA(
        {
            event_trigger.CONF_PLATFORM: "event",
            event_trigger.CONF_EVENT_TYPE: EVENT_POLICY,
            event_trigger.CONF_EVENT_DATA: {
                CONF_TYPE: config[CONF_TYPE],
                CONF_DEVICE_ID: config[CONF_DEVICE_ID],
            },
        }
    )
    return await event_trigger.async_attach_trigger(
        hass, event_config, action, trigger_info, platform_type="device"
    )
