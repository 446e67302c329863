"""Sensors and binary sensors of the policy and the host agents."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime

from homeassistant.components.binary_sensor import (
    BinarySensorDeviceClass,
    BinarySensorEntity,
    BinarySensorEntityDescription,
)
from homeassistant.components.sensor import (
    SensorDeviceClass,
    SensorEntity,
    SensorEntityDescription,
    SensorStateClass,
)
from homeassistant.const import EntityCategory, UnitOfTime

from .entity import utc_datetime
from .lease_publisher import LeasePublisher
from .policy.protocol import AckStatus, AgentState, CommandAction
from .policy.status import AgentView, PolicyState, PolicyStatus
from .policy_coordinator import PolicyCoordinator
from .policy_entity import EcoflowAgentEntity, EcoflowPolicyEntity


def _next_shutdown_step(status: PolicyStatus) -> float | None:
    """A host's commit point once a shutdown is out; before that, when it is sent.

    After a shutdown is sent the engine's next automatic fire is a re-send
    after the cooldown, which is not what a user watching a countdown means.
    """
    return status.next_commit_at or status.pending_fire_at


@dataclass(frozen=True, kw_only=True)
class PolicySensorDescription(SensorEntityDescription):
    value_fn: Callable[[PolicyStatus], str | datetime | None]


@dataclass(frozen=True, kw_only=True)
class AgentSensorDescription(SensorEntityDescription):
    value_fn: Callable[[AgentView], str | datetime | None]


POLICY_SENSORS = (
    PolicySensorDescription(
        key="policy_state",
        translation_key="policy_state",
        device_class=SensorDeviceClass.ENUM,
        options=[state.value for state in PolicyState],
        value_fn=lambda status: status.state.value,
    ),
    PolicySensorDescription(
        key="shutdown_at",
        translation_key="shutdown_at",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda status: utc_datetime(_next_shutdown_step(status)),
    ),
)

AGENT_SENSORS = (
    AgentSensorDescription(
        key="last_ack",
        translation_key="last_ack",
        device_class=SensorDeviceClass.ENUM,
        options=[status.value for status in AckStatus],
        value_fn=lambda view: view.last_ack_status.value if view.last_ack_status else None,
    ),
    AgentSensorDescription(
        key="last_ack_at",
        translation_key="last_ack_at",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda view: utc_datetime(view.last_ack_at),
    ),
    AgentSensorDescription(
        key="last_command",
        translation_key="last_command",
        device_class=SensorDeviceClass.ENUM,
        options=[action.value for action in CommandAction],
        value_fn=lambda view: view.last_command_action.value if view.last_command_action else None,
    ),
    AgentSensorDescription(
        key="last_command_at",
        translation_key="last_command_at",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda view: utc_datetime(view.last_command_at),
    ),
)


@dataclass(frozen=True, kw_only=True)
class AgentLeaseSensorDescription(SensorEntityDescription):
    """From the lease publisher: what the agent holds, not what the engine would say now."""

    value_fn: Callable[[LeasePublisher, str], float | datetime | None]


AGENT_LEASE_SENSORS = (
    # protocol 2: when the host starts its own shutdown if no newer lease
    # reaches it. The deadline of the lease last published, not the engine's
    # current figure: that one moves later with every reading on battery,
    # while the host acts on the one it holds (renewed every 30 s).
    AgentLeaseSensorDescription(
        key="lease_deadline",
        translation_key="lease_deadline",
        device_class=SensorDeviceClass.TIMESTAMP,
        value_fn=lambda leases, agent_id: utc_datetime(leases.lease_deadline(agent_id)),
    ),
    # The agent's clock minus Home Assistant's, from its last prompt answer:
    # unknown until it has answered.
    AgentLeaseSensorDescription(
        key="clock_offset",
        translation_key="clock_offset",
        device_class=SensorDeviceClass.DURATION,
        state_class=SensorStateClass.MEASUREMENT,
        native_unit_of_measurement=UnitOfTime.SECONDS,
        suggested_display_precision=0,
        entity_category=EntityCategory.DIAGNOSTIC,
        value_fn=lambda leases, agent_id: leases.clock_offsets.get(agent_id),
    ),
)

AGENT_ONLINE = BinarySensorEntityDescription(
    key="online", translation_key="agent_online", device_class=BinarySensorDeviceClass.CONNECTIVITY
)


class PolicySensor(EcoflowPolicyEntity, SensorEntity):
    entity_description: PolicySensorDescription

    @property
    def native_value(self) -> str | datetime | None:
        return self.entity_description.value_fn(self.policy_status)


class AgentSensor(EcoflowAgentEntity, SensorEntity):
    entity_description: AgentSensorDescription

    @property
    def native_value(self) -> str | datetime | None:
        view = self.agent_view
        return None if view is None else self.entity_description.value_fn(view)

    @property
    def extra_state_attributes(self) -> dict[str, str] | None:
        view = self.agent_view
        if view is None or self.entity_description.key != "last_ack":
            return None
        return {"command_id": view.last_command_id or "", "detail": view.last_ack_detail}


class AgentLeaseSensor(EcoflowAgentEntity, SensorEntity):
    entity_description: AgentLeaseSensorDescription

    @property
    def native_value(self) -> float | datetime | None:
        return self.entity_description.value_fn(self.coordinator.leases, self.agent_id)


class AgentOnlineBinarySensor(EcoflowAgentEntity, BinarySensorEntity):
    """From the agent's retained status and its last will; unknown until it speaks."""

    @property
    def is_on(self) -> bool | None:
        status = self.coordinator.agent_status.get(self.agent_id)
        return None if status is None else status.state is AgentState.ONLINE


def policy_sensors(policy: PolicyCoordinator) -> list[SensorEntity]:
    entities: list[SensorEntity] = [
        PolicySensor(policy, sn, description)
        for sn in policy.engines
        for description in POLICY_SENSORS
    ]
    entities += [
        AgentSensor(policy, agent_id, description)
        for agent_id in policy.agents
        for description in AGENT_SENSORS
    ]
    entities += [
        AgentLeaseSensor(policy, agent_id, description)
        for agent_id in policy.agents
        for description in AGENT_LEASE_SENSORS
    ]
    return entities


def policy_binary_sensors(policy: PolicyCoordinator) -> list[BinarySensorEntity]:
    return [AgentOnlineBinarySensor(policy, agent_id, AGENT_ONLINE) for agent_id in policy.agents]
