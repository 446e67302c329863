"""Acks and status from the host agents, as the policy coordinator receives them.

A mixin of PolicyCoordinator: each message is checked against its agent's
secret (forged or malformed ones are counted, never acted on), then handed to
the engine of the agent's station.
"""

from __future__ import annotations

import asyncio
import logging
from typing import TYPE_CHECKING, Any

from homeassistant.components import mqtt
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr

from .agents import AgentConfig, DiscoveredAgent, agent_device_identifier
from .clock import now_ts
from .lease_publisher import LeasePublisher
from .policy.effects import Effect
from .policy.engine import PolicyEngine
from .policy.protocol import (
    AckStatus,
    AgentState,
    AgentStatus,
    JobState,
    parse_ack,
    parse_status,
)

_LOGGER = logging.getLogger(__name__)


class AgentMessages:
    """The `ack` and `status` topics of the agents."""

    hass: HomeAssistant
    agents: dict[str, AgentConfig]
    agent_status: dict[str, AgentStatus]
    discovered: dict[str, DiscoveredAgent]
    engines: dict[str, PolicyEngine]
    leases: LeasePublisher
    rejected_messages: int
    _pong_waiters: dict[str, asyncio.Future[float]]

    if TYPE_CHECKING:

        def async_update_listeners(self) -> None: ...

        def _run_effects_and_reschedule(
            self, effects: list[Effect], sn: str | None = None
        ) -> None: ...

        def _fire_event(
            self,
            sn: str | None,
            event_type: str,
            data: dict[str, Any],
            *,
            agent: str | None = None,
        ) -> None: ...

        def _find_device(self, identifier: str) -> dr.DeviceEntry | dr.ChildDeviceEntry | None: ...

    def _agent_from_topic(self, topic: str) -> str | None:
        parts = topic.split("/")
        return parts[-2] if len(parts) >= 2 else None

    @callback
    def _handle_ack_message(self, message: mqtt.ReceiveMessage) -> None:
        agent_id = self._agent_from_topic(message.topic)
        agent = self.agents.get(agent_id or "")
        if agent is None:
            return
        ack = parse_ack(_payload(message), agent.secret)
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
        # protocol 2: the ack's own time against the command's gives the agent's clock offset
        self.leases.observe_ack(agent.agent_id, ack, engine.status(), now_ts())
        self._run_effects_and_reschedule(engine.handle_ack(agent.agent_id, ack), agent.device)

    @callback
    def _handle_status_message(self, message: mqtt.ReceiveMessage) -> None:
        agent_id = self._agent_from_topic(message.topic)
        if not agent_id:
            return
        agent = self.agents.get(agent_id)
        if agent is None:
            if discovered := DiscoveredAgent.from_payload(agent_id, _payload(message)):
                self.discovered[agent_id] = discovered
            return
        status = parse_status(_payload(message), agent.secret)
        if status is None:
            self.rejected_messages += 1
            return
        previous = self.agent_status.get(agent_id)
        self.agent_status[agent_id] = status
        self._update_agent_device(agent, status)
        self.async_update_listeners()
        if (
            status.state is AgentState.OFFLINE
            and previous is not None
            and previous.state is AgentState.ONLINE
        ):
            self._fire_event(agent.device, "agent_offline", {"agent": agent_id}, agent=agent_id)
        # An agent back online without having confirmed its shutdown gets it
        # again (the engine decides). Only a (re)connect is a return: a
        # protocol-2 agent also republishes its status while online when its
        # job changes, and one that says it holds a job needs nothing re-sent.
        online = status.state is AgentState.ONLINE
        reconnected = previous is None or previous.state is not AgentState.ONLINE
        holds_job = status.job in (JobState.PENDING, JobState.EXECUTING)
        engine = self.engines.get(agent.device)
        if engine is None or (online and holds_job):
            return
        self._run_effects_and_reschedule(
            engine.agent_online(agent_id, online, since=float(status.at) if reconnected else None),
            agent.device,
        )

    def _update_agent_device(self, agent: AgentConfig, status: AgentStatus) -> None:
        registry = dr.async_get(self.hass)
        device = self._find_device(agent_device_identifier(agent.agent_id))
        if not isinstance(device, dr.DeviceEntry):
            return
        model = f"Host agent ({status.platform})"
        if device.sw_version != status.agent_version or device.model != model:
            registry.async_update_device(device.id, sw_version=status.agent_version, model=model)


def _payload(message: mqtt.ReceiveMessage) -> str | bytes:
    payload = message.payload
    return payload if isinstance(payload, str) else bytes(payload)
