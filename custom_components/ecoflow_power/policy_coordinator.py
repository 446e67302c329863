"""Runs one policy engine per power station inside Home Assistant.

The engines decide; this module carries their effects out: it publishes through
HA's MQTT integration, fires bus events, raises repairs, persists the engines
so a restart resumes a pending shutdown, and routes agent acks and status
(policy_agent_messages.py).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import asdict
from datetime import datetime
import logging
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.event import (
    async_track_point_in_utc_time,
)
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .agents import (
    AgentConfig,
    DiscoveredAgent,
    agent_device_identifier,
    agents_from_options,
    bindings_for_station,
)
from .clock import now_ts
from .const import CONF_TOPIC_PREFIX, DEFAULT_TOPIC_PREFIX, DOMAIN, EVENT_POLICY
from .coordinator import EcoflowTelemetryCoordinator
from .ecoflow.state import PowerState
from .issues import (
    clear_repair,
    raise_repair,
)
from .lease_publisher import LeasePublisher
from .nut.consumer import nut_bindings
from .policy.audit import AuditRecord
from .policy.effects import (
    Effect,
    EmitEvent,
    PublishCommand,
    RepairChange,
)
from .policy.engine import PolicyEngine
from .policy.protocol import (
    AgentStatus,
    command_topic,
)
from .policy.status import PolicyStatus
from .policy.supply import SupplyBoard
from .policy_actions import PolicyActions
from .policy_agent_messages import AgentMessages
from .policy_inputs import telemetry_reading
from .policy_mqtt import PolicyMqtt
from .policy_repairs import PROTECTION_ISSUES, rendered
from .policy_setup import build_engine, load_settings, update_agent_repairs
from .sentinel import SentinelWatcher, sentinels_from_options
from .stored_options import valid_topic_prefix

_LOGGER = logging.getLogger(__name__)

STORAGE_VERSION = 1
# Writes are batched: a burst of effects costs one write, and a restart loses
# at most this much (the engine re-sends unacknowledged commands anyway).
STORAGE_SAVE_DELAY = 1
AUDIT_LOG_SIZE = 200


class PolicyCoordinator(
    PolicyActions, AgentMessages, DataUpdateCoordinator[dict[str, PolicyStatus]]
):
    """Engines per station, agent presence, and the MQTT side of the protocol."""

    config_entry: ConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        telemetry: EcoflowTelemetryCoordinator,
    ) -> None:
        super().__init__(
            hass, _LOGGER, config_entry=entry, name=f"{DOMAIN} policy", update_interval=None
        )
        self.telemetry = telemetry
        prefix = entry.options.get(CONF_TOPIC_PREFIX)
        self.prefix: str = prefix if valid_topic_prefix(prefix) else DEFAULT_TOPIC_PREFIX
        invalid_agents: list[str] = []
        self.agents: dict[str, AgentConfig] = agents_from_options(entry.options, invalid_agents)
        self._invalid_agents = invalid_agents
        self.agent_status: dict[str, AgentStatus] = {}
        self.discovered: dict[str, DiscoveredAgent] = {}
        self.engines: dict[str, PolicyEngine] = {}
        # Lets the owner of a multi-fed agent read the other stations' conditions.
        self.supply = SupplyBoard()
        self.rejected_messages = 0
        self.mqtt = PolicyMqtt(
            hass,
            entry,
            self.prefix,
            on_ack=self._handle_ack_message,
            on_status=self._handle_status_message,
            on_available=self._handle_mqtt_available,
        )
        self.sentinels = SentinelWatcher(
            hass, sentinels_from_options(entry.options), self._handle_mains
        )
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.policy"
        )
        self._unsubscribers: list[CALLBACK_TYPE] = []
        self._tick_unsub: CALLBACK_TYPE | None = None
        self._tick_at: float | None = None
        self._pong_waiters: dict[str, asyncio.Future[float]] = {}
        # What the engines were last told about the link, per station.
        self._link: dict[str, tuple[bool, bool | None]] = {}
        self._started = False
        # Answers commands to `local` agents (NUT clients) instead of MQTT: True = handled.
        self.local_router: Callable[[str | None, PublishCommand], bool] | None = None
        # protocol 2: each agent's retained power lease, from the engines' statuses
        self.leases = LeasePublisher(hass, self.prefix, self.agents, now_ts)
        # the agents' lease entities show the deadline each agent holds
        self.leases.on_published = self.async_update_listeners

    @property
    def mqtt_available(self) -> bool:
        return self.mqtt.available

    async def _async_update_data(self) -> dict[str, PolicyStatus]:
        """`homeassistant.update_entity`: the engines' statuses as they are now."""
        return {sn: engine.status() for sn, engine in self.engines.items()}

    # --- life cycle -------------------------------------------------------

    async def async_start(self) -> None:
        """Engines from the stored state, at once; nothing here waits for the cloud."""
        try:
            stored = await self._store.async_load() or {}
            engines_data: dict[str, Any] = dict(stored.get("engines", {}))
        except (ValueError, TypeError, AttributeError) as err:
            _LOGGER.warning("The stored policy state cannot be read: %s", err)
            engines_data = {sn: {"unreadable": True} for sn in self.telemetry.devices}
        for sn in self.telemetry.devices:
            name = self._station_name(sn)
            settings = load_settings(
                self.hass, self.config_entry.options, sn, self.telemetry.stale_after_sec, name
            )
            bindings = bindings_for_station(self.agents, sn)
            bindings += nut_bindings(self.config_entry.options, sn)
            self.engines[sn] = build_engine(
                self.hass, sn, settings, bindings, stored=engines_data.get(sn), station_name=name
            )
        for engine in self.engines.values():
            self.supply.attach(engine)
        update_agent_repairs(
            self.hass,
            self.config_entry.entry_id,
            self.agents.values(),
            self._invalid_agents,
            self.engines,
        )
        self.data = {sn: engine.status() for sn, engine in self.engines.items()}
        self._unsubscribers.append(
            self.telemetry.async_add_telemetry_listener(self._handle_telemetry)
        )
        self._unsubscribers.append(self.telemetry.async_add_link_listener(self._handle_link))
        await self.mqtt.async_start()
        self.sentinels.async_start()
        # Feed what is known now: a restart with the grid already lost must not
        # wait for the next message to resume.
        for sn, state in (self.telemetry.data or {}).items():
            if state.updated_at is not None:
                self._handle_telemetry(sn, state)
        self._handle_link(self.telemetry.cloud_connected)
        self._run_effects_and_reschedule([])
        self._started = True

    async def async_stop(self) -> None:
        while self._unsubscribers:
            self._unsubscribers.pop()()
        self.sentinels.async_stop()
        await self.mqtt.async_stop()
        if self._tick_unsub:
            self._tick_unsub()
            self._tick_unsub = None
        for waiter in self._pong_waiters.values():
            waiter.cancel()
        self.leases.async_stop()
        await self._store.async_save(self._storage_data())

    # --- inputs -----------------------------------------------------------

    @callback
    def _handle_mqtt_available(self, available: bool) -> None:
        """HA's MQTT integration loaded or unloading (policy_mqtt.py)."""
        if not available:
            self.leases.async_mqtt_lost()
            return
        # What changed while it was gone goes out now, not at the next reading
        # (at start, async_start publishes once the known telemetry is fed).
        if self._started:
            self.leases.async_update({sn: engine.status() for sn, engine in self.engines.items()})

    @callback
    def _handle_telemetry(self, sn: str, state: PowerState) -> None:
        engine = self.engines.get(sn)
        if engine is None:
            return
        effects: list[Effect] = []
        if state.online is not None:
            effects += self._link_effects(sn, engine, self.telemetry.cloud_connected, state.online)
        reading = telemetry_reading(state)
        if reading is not None:
            effects += engine.update(reading)
        self._run_effects_and_reschedule(effects, sn)

    @callback
    def _handle_link(self, cloud_connected: bool) -> None:
        """The cloud session connected or dropped: every station's engine hears it."""
        for sn, engine in self.engines.items():
            state = (self.telemetry.data or {}).get(sn)
            online = state.online if state is not None else None
            self._run_effects_and_reschedule(
                self._link_effects(sn, engine, cloud_connected, online), sn
            )

    def _link_effects(
        self, sn: str, engine: PolicyEngine, cloud_connected: bool, station_online: bool | None
    ) -> list[Effect]:
        link = (cloud_connected, station_online)
        update_link = getattr(engine, "update_link", None)
        if update_link is None or self._link.get(sn) == link:
            return []
        self._link[sn] = link
        return list(update_link(cloud_connected=cloud_connected, station_online=station_online))

    @callback
    def _handle_mains(self, sn: str, present: bool | None) -> None:
        """The station's sentinel changed its verdict: the engine hears it at once."""
        engine = self.engines.get(sn)
        update_mains = getattr(engine, "update_mains", None)
        if update_mains is None:
            return
        self._run_effects_and_reschedule(list(update_mains(present)), sn)

    def _find_device(self, identifier: str) -> dr.DeviceEntry | dr.ChildDeviceEntry | None:
        """A station or agent device of this entry (agents hang under their station)."""
        registry = dr.async_get(self.hass)
        key = (DOMAIN, identifier)
        entry_id = self.config_entry.entry_id
        return registry.async_get_device_by_identifier(
            key, entry_id
        ) or registry.async_get_child_device_by_identifier(key, entry_id)

    # --- effects ----------------------------------------------------------

    @callback
    def _run_effects_and_reschedule(self, effects: list[Effect], sn: str | None = None) -> None:
        for effect in effects:
            self._run_effect(effect, sn)
        acted = bool(effects)
        # Hosts fed by several stations: an input here may decide for an owner there.
        for owner in self.supply.dependents(sn) if sn is not None else ():
            for effect in (owner_effects := self.engines[owner].tick()):
                self._run_effect(effect, owner)
            acted = acted or bool(owner_effects)
        self._finish(acted)

    @callback
    def _finish(self, acted: bool) -> None:
        """Reschedule, persist and tell entities, but only when something changed.

        Steady telemetry reaches the engines every few seconds; rewriting 16
        states and the storage file for each message would be wasted work.
        """
        self._schedule_tick()
        statuses = {sn: engine.status() for sn, engine in self.engines.items()}
        changed = statuses != self.data
        if acted or changed:
            self._store.async_delay_save(self._storage_data, STORAGE_SAVE_DELAY)
        if changed:
            self.async_set_updated_data(statuses)
        if self.mqtt_available:
            self.leases.async_update(statuses)

    def _run_effect(self, effect: Effect, sn: str | None) -> None:
        if isinstance(effect, PublishCommand):
            if self.local_router is not None and self.local_router(sn, effect):
                return
            self.hass.async_create_task(self._async_publish_logged(effect), eager_start=True)
        elif isinstance(effect, EmitEvent):
            self._fire_event(sn, effect.event_type.value, effect.data)
        elif isinstance(effect, RepairChange):
            self._apply_repair(effect, sn)
        elif isinstance(effect, AuditRecord):
            _LOGGER.info("Policy %s: %s", self._station_name(sn), effect.as_dict())

    def _apply_repair(self, effect: RepairChange, sn: str | None) -> None:
        issue_id = f"{effect.issue_id}_{sn}"
        if not effect.active:
            clear_repair(self.hass, issue_id)
            return
        placeholders = {
            key: rendered(key, value) for key, value in dict(effect.placeholders or {}).items()
        }
        placeholders.setdefault("device", self._station_name(sn))
        severity = (
            ir.IssueSeverity.ERROR
            if effect.issue_id in PROTECTION_ISSUES
            else ir.IssueSeverity.WARNING
        )
        raise_repair(self.hass, issue_id, effect.issue_id, placeholders, severity=severity)

    async def _async_publish(self, effect: PublishCommand) -> None:
        """Send one command; raises HomeAssistantError when it could not go out."""
        await self.mqtt.async_publish(command_topic(self.prefix, effect.agent_id), effect.payload)

    async def _async_publish_logged(self, effect: PublishCommand) -> None:
        try:
            await self._async_publish(effect)
        except HomeAssistantError as err:
            # HA's MQTT client may still deliver it once the broker is back, and
            # the engine re-sends until the agent acknowledges (repeats are
            # answered `duplicate`), so this is a delay, not a lost command.
            _LOGGER.warning(
                "Publishing to %s is delayed (%s); it is re-sent until acknowledged",
                command_topic(self.prefix, effect.agent_id),
                err,
            )

    def fire_policy_event(
        self, sn: str | None, event_type: str, data: dict[str, Any], *, agent: str | None = None
    ) -> None:
        """Fire one `ecoflow_power_event` for a station (or one of its agents)."""
        self._fire_event(sn, event_type, data, agent=agent)

    def _fire_event(
        self, sn: str | None, event_type: str, data: dict[str, Any], *, agent: str | None = None
    ) -> None:
        identifier = agent_device_identifier(agent) if agent else sn
        device = self._find_device(identifier) if identifier else None
        # The engine names its station by serial as "device_id"; on the bus
        # device_id must be HA's device registry id, or device triggers miss it.
        details = {key: value for key, value in data.items() if key != "device_id"}
        self.hass.bus.async_fire(
            EVENT_POLICY,
            {
                **details,
                "type": event_type,
                "device_id": device.id if device else None,
                "station": self._station_name(sn),
            },
        )

    def _station_name(self, sn: str | None) -> str:
        if sn is None or sn not in self.telemetry.devices:
            return "unknown"
        info = self.telemetry.devices[sn]
        return info.device_name or self.telemetry.models[sn].name

    # --- timers and storage ----------------------------------------------

    @callback
    def _schedule_tick(self) -> None:
        deadlines = [d for engine in self.engines.values() if (d := engine.next_deadline())]
        tick_at = min(deadlines) if deadlines else None
        if tick_at == self._tick_at and (tick_at is None or self._tick_unsub):
            return
        if self._tick_unsub:
            self._tick_unsub()
            self._tick_unsub = None
        self._tick_at = tick_at
        if tick_at is None:
            return
        when = dt_util.utc_from_timestamp(max(tick_at, now_ts()))
        self._tick_unsub = async_track_point_in_utc_time(self.hass, self._async_tick, when)

    @callback
    def _async_tick(self, _now: datetime) -> None:
        self._tick_unsub = None
        self._tick_at = None
        acted = False
        for sn, engine in self.engines.items():
            for effect in engine.tick():
                self._run_effect(effect, sn)
                acted = True
        self._finish(acted)

    def _storage_data(self) -> dict[str, Any]:
        return {"engines": {sn: engine.to_dict() for sn, engine in self.engines.items()}}

    def diagnostics(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "mqtt_available": self.mqtt_available,
            "sentinels": {
                sn: {"kind": config.kind.value, "mains_present": self.sentinels.present.get(sn)}
                for sn, config in self.sentinels.sentinels.items()
            },
            "rejected_messages": self.rejected_messages,
            "agents": {
                agent_id: {
                    "device": agent.device,
                    "soc_threshold": agent.binding.soc_threshold,
                    "delay_sec": agent.binding.delay_sec,
                    "status": asdict(status)
                    if (status := self.agent_status.get(agent_id))
                    else None,
                }
                for agent_id, agent in self.agents.items()
            },
            "engines": {sn: engine.to_dict() for sn, engine in self.engines.items()},
        }
