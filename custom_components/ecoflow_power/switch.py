"""The "armed" switch of each station's shutdown policy."""

from __future__ import annotations

from typing import Any

from homeassistant.components.switch import SwitchEntity, SwitchEntityDescription
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers.entity_platform import AddConfigEntryEntitiesCallback

from .policy_entity import EcoflowPolicyEntity
from .runtime import EcoflowConfigEntry

PARALLEL_UPDATES = 0

ARMED = SwitchEntityDescription(
    key="policy_armed", translation_key="policy_armed", entity_category=EntityCategory.CONFIG
)


class EcoflowArmedSwitch(EcoflowPolicyEntity, SwitchEntity):
    """Off: the policy still decides and records, but publishes nothing."""

    @property
    def is_on(self) -> bool:
        return self.policy_status.armed

    async def async_turn_on(self, **kwargs: Any) -> None:
        self.coordinator.set_armed(self.sn, True)

    async def async_turn_off(self, **kwargs: Any) -> None:
        self.coordinator.set_armed(self.sn, False)


async def async_setup_entry(
    hass: HomeAssistant,
    entry: EcoflowConfigEntry,
    async_add_entities: AddConfigEntryEntitiesCallback,
) -> None:
    policy = entry.runtime_data.policy
    if policy is None:
        return
    async_add_entities(EcoflowArmedSwitch(policy, sn, ARMED) for sn in policy.engines)
