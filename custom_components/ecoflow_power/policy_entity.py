"""Entities of the shutdown policy: per station, and per host agent (its own device)."""

from __future__ import annotations

from homeassistant.helpers.device_registry import DeviceInfo
from homeassistant.helpers.entity import EntityDescription
from homeassistant.helpers.update_coordinator import CoordinatorEntity

from .agents import agent_device_identifier
from .const import DOMAIN
from .entity import station_device_info
from .policy.status import AgentView, PolicyStatus
from .policy_coordinator import PolicyCoordinator


class EcoflowPolicyEntity(CoordinatorEntity[PolicyCoordinator]):
    """An entity of one station's policy, shown on the station's device."""

    _attr_has_entity_name = True

    def __init__(self, coordinator: PolicyCoordinator, sn: str, description: EntityDescription):
        super().__init__(coordinator)
        self.entity_description = description
        self.sn = sn
        self._attr_unique_id = f"{sn}_{description.key}"
        self._attr_device_info = station_device_info(coordinator.telemetry, sn)

    @property
    def policy_status(self) -> PolicyStatus:
        return self.coordinator.data[self.sn]


class EcoflowAgentEntity(CoordinatorEntity[PolicyCoordinator]):
    """An entity of one host agent, on a device of its own under its station."""

    _attr_has_entity_name = True

    def __init__(
        self, coordinator: PolicyCoordinator, agent_id: str, description: EntityDescription
    ):
        super().__init__(coordinator)
        self.entity_description = description
        self.agent_id = agent_id
        agent = coordinator.agents[agent_id]
        self.sn = agent.device
        identifier = agent_device_identifier(agent_id)
        self._attr_unique_id = f"{identifier}_{description.key}"
        self._attr_device_info = DeviceInfo(
            identifiers={(DOMAIN, identifier)},
            manufacturer="EcoFlow Power Management",
            model="Host agent",
            name=f"Agent {agent_id}",
        )
        if (station_id := coordinator.telemetry.device_ids.get(agent.device)) is not None:
            self._attr_device_info["via_device_id"] = station_id

    @property
    def agent_view(self) -> AgentView | None:
        status = (self.coordinator.data or {}).get(self.sn)
        return status.agents.get(self.agent_id) if status else None
