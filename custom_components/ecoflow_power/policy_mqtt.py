"""The MQTT side of the policy: subscriptions that follow HA's MQTT integration, and publishing.

HA's MQTT integration may come up after ours (a broker down at boot, or the
integration added later), or reload: the subscriptions are made whenever its
entry is loaded, and the mqtt_missing repair is shown only while it is not.
"""

from __future__ import annotations

from collections.abc import Callable
import json
import logging
from typing import Any

from homeassistant.components import mqtt
from homeassistant.config_entries import (
    SIGNAL_CONFIG_ENTRY_CHANGED,
    ConfigEntry,
    ConfigEntryChange,
    ConfigEntryState,
)
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.dispatcher import async_dispatcher_connect

from .const import ISSUE_MQTT_MISSING
from .issues import clear_repair, raise_repair

_LOGGER = logging.getLogger(__name__)

type MessageHandler = Callable[[mqtt.ReceiveMessage], None]


class PolicyMqtt:
    """Subscribes to agents' acks and status while HA's MQTT integration is loaded."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        prefix: str,
        *,
        on_ack: MessageHandler,
        on_status: MessageHandler,
        on_available: Callable[[bool], None] | None = None,
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.prefix = prefix
        self._on_ack = on_ack
        self._on_status = on_status
        self._on_available = on_available
        self._subscriptions: list[CALLBACK_TYPE] = []
        self._unsub_entries: CALLBACK_TYPE | None = None
        self.available = False

    @property
    def _issue_id(self) -> str:
        return f"{ISSUE_MQTT_MISSING}_{self.entry.entry_id}"

    async def async_start(self) -> None:
        self._unsub_entries = async_dispatcher_connect(
            self.hass, SIGNAL_CONFIG_ENTRY_CHANGED, self._handle_entry_change
        )
        await self._async_subscribe()

    async def async_stop(self) -> None:
        if self._unsub_entries is not None:
            self._unsub_entries()
            self._unsub_entries = None
        self._unsubscribe()

    @callback
    def _handle_entry_change(self, change: ConfigEntryChange, entry: ConfigEntry) -> None:
        if entry.domain != mqtt.DOMAIN:
            return
        if entry.state is ConfigEntryState.LOADED and not self.available:
            # Runs eagerly, and HA's async_subscribe does not suspend: the
            # subscriptions are made (and `available` set) before this returns.
            self.entry.async_create_background_task(
                self.hass, self._async_subscribe(), "ecoflow policy mqtt subscribe"
            )
        elif entry.state is not ConfigEntryState.LOADED and self.available:
            # Told as its unload begins: HA's MQTT keeps the subscriptions left
            # at its unload and restores them when it loads again, beside the
            # ones made then (every message would be handled twice, and the
            # restored ones could not be unsubscribed any more).
            self._unsubscribe()
            self._set_available(False)

    async def _async_subscribe(self) -> None:
        if not self.hass.config_entries.async_loaded_entries(mqtt.DOMAIN):
            self._set_available(False)
            return
        # With its entry loaded, HA's MQTT accepts every subscription (it
        # raises only when it was never set up or its entry is disabled). If
        # it refuses anyway, that is MQTT missing (a repair), not a failed setup.
        topics = (
            (f"{self.prefix}/+/ack", self._on_ack),
            (f"{self.prefix}/+/status", self._on_status),
        )
        try:
            for topic, handler in topics:
                self._subscriptions.append(
                    await mqtt.async_subscribe(self.hass, topic, handler, qos=1)
                )
        except Exception as err:
            _LOGGER.warning("Home Assistant's MQTT refused the agents' topics: %s", err)
            self._unsubscribe()
            self._set_available(False)
            return
        self._set_available(True)

    def _unsubscribe(self) -> None:
        while self._subscriptions:
            self._subscriptions.pop()()

    def _set_available(self, available: bool) -> None:
        if available:
            clear_repair(self.hass, self._issue_id)
        else:
            raise_repair(self.hass, self._issue_id, ISSUE_MQTT_MISSING)
        changed = available != self.available
        self.available = available
        if changed and self._on_available is not None:
            self._on_available(available)

    async def async_publish(self, topic: str, payload: dict[str, Any]) -> None:
        """Publish QoS 1, not retained; raises HomeAssistantError when it could not go out."""
        await mqtt.async_publish(self.hass, topic, json.dumps(payload), qos=1, retain=False)
