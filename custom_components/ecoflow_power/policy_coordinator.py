"""Runs one policy engine per power station inside Home Assistant.

The engines decide; this module carries their effects out: it publishes through
HA's MQTT integration, fires bus events, raises repairs, persists the engines
so a restart resumes a pending shutdown, and routes agent acks and status.
"""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from datetime import datetime
import json
import logging
from typing import Any
import uuid

from homeassistant.components import mqtt
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import device_registry as dr
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.storage import Store
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .agents import (
    AgentConfig,
    DiscoveredAgent,
    agent_device_identifier,
    agents_from_options,
    policy_settings_for,
)
from .const import (
    CONF_TOPIC_PREFIX,
    DEFAULT_TOPIC_PREFIX,
    DOMAIN,
    EVENT_POLICY,
    ISSUE_MQTT_MISSING,
)
from .coordinator import EcoflowConfigEntry, EcoflowTelemetryCoordinator, now_ts
from .ecoflow.state import PowerState
from .issues import clear_repair, raise_repair
from .lease_publisher import LeasePublisher
from .policy.audit import AuditRecord
from .policy.effects import Effect, EmitEvent, PublishCommand, RepairChange
from .policy.engine import PolicyEngine
from .policy.protocol import (
    AckStatus,
    AgentState,
    AgentStatus,
    command_topic,
    parse_ack,
    parse_status,
)
from .policy.status import PolicyStatus
from .policy.telemetry import PolicyTelemetry

_LOGGER = logging.getLogger(__name__)

STORAGE_VERSION = 1
# Writes are batched: a burst of effects costs one write, and a restart loses
# at most this much (the engine re-sends unacknowledged commands anyway).
STORAGE_SAVE_DELAY = 1
AUDIT_LOG_SIZE = 200


class PolicyCoordinator(DataUpdateCoordinator[dict[str, PolicyStatus]]):
    """Engines per station, agent presence, and the MQTT side of the protocol."""

    config_entry: EcoflowConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: EcoflowConfigEntry,
        telemetry: EcoflowTelemetryCoordinator,
    ) -> None:
        super().__init__(
            hass, _LOGGER, config_entry=entry, name=f"{DOMAIN} policy", update_interval=None
        )
        self.telemetry = telemetry
        self.prefix: str = entry.options.get(CONF_TOPIC_PREFIX, DEFAULT_TOPIC_PREFIX)
        self.agents: dict[str, AgentConfig] = agents_from_options(entry.options)
        self.agent_status: dict[str, AgentStatus] = {}
        self.discovered: dict[str, DiscoveredAgent] = {}
        self.engines: dict[str, PolicyEngine] = {}
        self.rejected_messages = 0
        self.mqtt_available = False
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.policy"
        )
        self._unsubscribers: list[CALLBACK_TYPE] = []
        self._tick_unsub: CALLBACK_TYPE | None = None
        self._tick_at: float | None = None
        self._pong_waiters: dict[str, asyncio.Future[float]] = {}
        # protocol 2: each agent's retained power lease, from the statuses below
        self.leases = LeasePublisher(hass, self.prefix, self.agents, now_ts)

    # --- life cycle -------------------------------------------------------

    async def async_start(self) -> None:
        stored = await self._store.async_load() or {}
        engines_data: dict[str, Any] = stored.get("engines", {})
        for sn in self.telemetry.devices:
            settings = policy_settings_for(self.config_entry.options, sn, self.telemetry)
            bindings = [agent.binding for agent in self.agents.values() if agent.device == sn]
            if sn in engines_data:
                engine = PolicyEngine.from_dict(
                    engines_data[sn],
                    settings,
                    bindings,
                    clock=now_ts,
                    id_factory=lambda: str(uuid.uuid4()),
                )
            else:
                engine = PolicyEngine(
                    sn, settings, bindings, clock=now_ts, id_factory=lambda: str(uuid.uuid4())
                )
            self.engines[sn] = engine
        self._unsubscribers.append(
            self.telemetry.async_add_telemetry_listener(self._handle_telemetry)
        )
        await self._async_subscribe_mqtt()
        # Feed what is known now: a restart with the grid already lost must not
        # wait for the next message to resume.
        for sn, state in (self.telemetry.data or {}).items():
            if state.updated_at is not None:
                self._handle_telemetry(sn, state)
        self._run_effects_and_reschedule([])

    async def async_stop(self) -> None:
        while self._unsubscribers:
            self._unsubscribers.pop()()
        if self._tick_unsub:
            self._tick_unsub()
            self._tick_unsub = None
        for waiter in self._pong_waiters.values():
            waiter.cancel()
        self.leases.async_stop()
        await self._store.async_save(self._storage_data())

    async def _async_subscribe_mqtt(self) -> None:
        """Listen for acks and status; without MQTT, say so in a repair."""
        issue_id = f"{ISSUE_MQTT_MISSING}_{self.config_entry.entry_id}"
        if not self.hass.config_entries.async_loaded_entries(mqtt.DOMAIN):
            self.mqtt_available = False
            raise_repair(self.hass, issue_id, ISSUE_MQTT_MISSING)
            return
        clear_repair(self.hass, issue_id)
        self.mqtt_available = True
        self._unsubscribers.append(
            await mqtt.async_subscribe(
                self.hass, f"{self.prefix}/+/ack", self._handle_ack_message, qos=1
            )
        )
        self._unsubscribers.append(
            await mqtt.async_subscribe(
                self.hass, f"{self.prefix}/+/status", self._handle_status_message, qos=1
            )
        )

    # --- inputs -----------------------------------------------------------

    @callback
    def _handle_telemetry(self, sn: str, state: PowerState) -> None:
        engine = self.engines.get(sn)
        if engine is None or state.updated_at is None:
            return
        reading = PolicyTelemetry(
            grid=state.grid,
            soc_min=state.soc_min,
            remaining_discharge_min=state.remaining_discharge_min,
            at=state.updated_at,
        )
        self._run_effects_and_reschedule(engine.update(reading), sn)

    def _agent_from_topic(self, topic: str) -> str | None:
        parts = topic.split("/")
        return parts[-2] if len(parts) >= 2 else None

    @callback
    def _handle_ack_message(self, message: mqtt.ReceiveMessage) -> None:
        agent_id = self._agent_from_topic(message.topic)
        agent = self.agents.get(agent_id or "")
        if agent is None:
            return
        ack = parse_ack(message.payload, agent.secret)
        if ack is None or ack.agent != agent.agent_id:
            # Forged, tampered or malformed: counted, never acted on.
            self.rejected_messages += 1
            _LOGGER.warning("Ignored an ack on %s that failed its signature check", message.topic)
            return
        waiter = self._pong_waiters.get(ack.id)
        if ack.status is AckStatus.PONG and waiter is not None and not waiter.done():
            waiter.set_result(now_ts())
        engine = self.engines.get(agent.device)
        if engine is None:
            return
        self._run_effects_and_reschedule(engine.handle_ack(agent.agent_id, ack), agent.device)

    @callback
    def _handle_status_message(self, message: mqtt.ReceiveMessage) -> None:
        agent_id = self._agent_from_topic(message.topic)
        if not agent_id:
            return
        agent = self.agents.get(agent_id)
        if agent is None:
            if discovered := DiscoveredAgent.from_payload(agent_id, message.payload):
                self.discovered[agent_id] = discovered
            return
        status = parse_status(message.payload, agent.secret)
        if status is None:
            self.rejected_messages += 1
            return
        previous = self.agent_status.get(agent_id)
        self.agent_status[agent_id] = status
        self._update_agent_device(agent, status)
        if (
            status.state is AgentState.OFFLINE
            and previous is not None
            and previous.state is AgentState.ONLINE
        ):
            self._fire_event(agent.device, "agent_offline", {"agent": agent_id}, agent=agent_id)
        self.async_update_listeners()

    def _find_device(self, identifier: str) -> dr.DeviceEntry | None:
        """A station or agent device of this entry (agents hang under their station)."""
        registry = dr.async_get(self.hass)
        key = (DOMAIN, identifier)
        entry_id = self.config_entry.entry_id
        return registry.async_get_device_by_identifier(
            key, entry_id
        ) or registry.async_get_child_device_by_identifier(key, entry_id)

    def _update_agent_device(self, agent: AgentConfig, status: AgentStatus) -> None:
        registry = dr.async_get(self.hass)
        device = self._find_device(agent_device_identifier(agent.agent_id))
        if device is None:
            return
        model = f"Host agent ({status.platform})"
        if device.sw_version != status.agent_version or device.model != model:
            registry.async_update_device(device.id, sw_version=status.agent_version, model=model)

    # --- effects ----------------------------------------------------------

    @callback
    def _run_effects_and_reschedule(self, effects: list[Effect], sn: str | None = None) -> None:
        for effect in effects:
            self._run_effect(effect, sn)
        self._finish(bool(effects))

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
            self.hass.async_create_task(self._async_publish(effect), eager_start=True)
        elif isinstance(effect, EmitEvent):
            self._fire_event(sn, effect.event_type.value, effect.data)
        elif isinstance(effect, RepairChange):
            issue_id = f"{effect.issue_id}_{sn}"
            if effect.active:
                raise_repair(
                    self.hass, issue_id, effect.issue_id, {"device": self._station_name(sn)}
                )
            else:
                clear_repair(self.hass, issue_id)
        elif isinstance(effect, AuditRecord):
            _LOGGER.info("Policy %s: %s", self._station_name(sn), effect.as_dict())

    async def _async_publish(self, effect: PublishCommand) -> None:
        topic = command_topic(self.prefix, effect.agent_id)
        try:
            await mqtt.async_publish(
                self.hass, topic, json.dumps(effect.payload), qos=1, retain=False
            )
        except HomeAssistantError as err:
            # HA's MQTT client may still deliver it once the broker is back, and
            # the engine re-sends until the agent acknowledges (repeats are
            # answered `duplicate`), so this is a delay, not a lost command.
            _LOGGER.warning(
                "Publishing to %s is delayed (%s); it is re-sent until acknowledged", topic, err
            )

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

    # --- actions for services and entities --------------------------------

    def require_mqtt(self) -> None:
        if not self.mqtt_available:
            raise ServiceValidationError(translation_domain=DOMAIN, translation_key="mqtt_missing")

    @callback
    def set_armed(self, sn: str, armed: bool) -> None:
        engine = self.engines[sn]
        self._run_effects_and_reschedule(engine.set_armed(armed) or [], sn)

    @callback
    def manual_shutdown(
        self, agent_ids: list[str], *, delay_sec: int | None, reason: str, dry_run: bool
    ) -> list[str]:
        sent: list[str] = []
        for sn, ids in self._group_by_station(agent_ids).items():
            effects = self.engines[sn].manual_shutdown(
                ids, delay_sec=delay_sec, reason=reason, dry_run=dry_run
            )
            sent += [e.agent_id for e in effects if isinstance(e, PublishCommand)]
            self._run_effects_and_reschedule(effects, sn)
        return sent

    @callback
    def manual_abort(self, agent_ids: list[str]) -> list[str]:
        sent: list[str] = []
        for sn, ids in self._group_by_station(agent_ids).items():
            effects = self.engines[sn].manual_abort(ids)
            sent += [e.agent_id for e in effects if isinstance(e, PublishCommand)]
            self._run_effects_and_reschedule(effects, sn)
        return sent

    async def async_ping(self, agent_ids: list[str], wait_sec: float) -> dict[str, Any]:
        """Ping agents and wait for their pongs; report who answered and how fast."""
        started = now_ts()
        waiters: dict[str, asyncio.Future[float]] = {}
        command_ids: list[str] = []
        for sn, ids in self._group_by_station(agent_ids).items():
            effects = self.engines[sn].ping(ids)
            for effect in effects:
                if isinstance(effect, PublishCommand):
                    future: asyncio.Future[float] = self.hass.loop.create_future()
                    command_ids.append(effect.payload["id"])
                    self._pong_waiters[effect.payload["id"]] = future
                    waiters[effect.agent_id] = future
            self._run_effects_and_reschedule(effects, sn)
        try:
            if waiters:
                await asyncio.wait(list(waiters.values()), timeout=wait_sec)
        finally:
            for command_id in command_ids:
                self._pong_waiters.pop(command_id, None)
        result: dict[str, Any] = {}
        for agent_id in agent_ids:
            future = waiters.get(agent_id)
            answered = future is not None and future.done() and not future.cancelled()
            result[agent_id] = {
                "answered": answered,
                "latency_ms": round((future.result() - started) * 1000)
                if future is not None and answered
                else None,
            }
        return result

    def _group_by_station(self, agent_ids: list[str]) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for agent_id in agent_ids:
            agent = self.agents.get(agent_id)
            if agent is None or agent.device not in self.engines:
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="unknown_agent",
                    translation_placeholders={"agent": agent_id},
                )
            grouped.setdefault(agent.device, []).append(agent_id)
        return grouped

    def agents_of_station(self, sn: str) -> list[str]:
        return [agent.agent_id for agent in self.agents.values() if agent.device == sn]

    def diagnostics(self) -> dict[str, Any]:
        return {
            "prefix": self.prefix,
            "mqtt_available": self.mqtt_available,
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
