"""Host agents as devices: their triggers, and announcements of agents not yet added."""

from __future__ import annotations

from unittest.mock import AsyncMock

from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_get_device_automations,
)

from custom_components.ecoflow_power.agents import (
    DiscoveredAgent,
    agent_device_identifier,
    agent_id_from_identifier,
)
from custom_components.ecoflow_power.const import CONF_AGENTS, DOMAIN
from custom_components.ecoflow_power.device_trigger import AGENT_TRIGGERS, async_get_triggers

from .conftest import RIVER3_SN, make_entry

NAS = {"device": RIVER3_SN, "secret": "s", "soc_threshold": None, "delay_sec": None}


async def test_an_agent_device_offers_the_agent_triggers(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry(**{CONF_AGENTS: {"nas": NAS}})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    registry = dr.async_get(hass)
    agent = registry.async_get_device_by_identifier(
        (DOMAIN, agent_device_identifier("nas")), entry.entry_id
    )
    assert agent is not None
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, agent.id)
    types = {t["type"] for t in triggers if t["domain"] == DOMAIN}
    # What happens to this host, not to the station: no grid or battery triggers.
    assert types == set(AGENT_TRIGGERS)
    assert {"agent_offline", "shutdown_sent", "shutdown_aborted"} <= types
    assert not types & {"grid_lost", "grid_restored", "battery_critical"}


async def test_devices_that_are_not_ours_or_gone_have_no_triggers(
    hass: HomeAssistant,
) -> None:
    other_entry = MockConfigEntry(domain="other")
    other_entry.add_to_hass(hass)
    other = dr.async_get(hass).async_get_or_create(
        config_entry_id=other_entry.entry_id, identifiers={("other", "x")}
    )
    assert await async_get_triggers(hass, other.id) == []
    assert await async_get_triggers(hass, "no-such-device") == []


def test_agent_and_station_identifiers_are_told_apart() -> None:
    assert agent_id_from_identifier(agent_device_identifier("nas-01")) == "nas-01"
    assert agent_id_from_identifier(RIVER3_SN) is None


@pytest.mark.parametrize(
    ("agent_id", "payload"),
    [
        ("nas", b"not json"),
        ("nas", b'["a list"]'),
        ("nas", b'{"agent": "someone-else", "hostname": "x"}'),
        ("bad id with spaces", b'{"agent": "bad id with spaces"}'),
    ],
)
def test_an_announcement_that_does_not_fit_is_not_offered(agent_id: str, payload: bytes) -> None:
    assert DiscoveredAgent.from_payload(agent_id, payload) is None


def test_an_announcement_is_offered_with_clean_short_texts() -> None:
    payload = (
        '{"agent": "nas", "hostname": "nas\\u0007.local  ' + "x" * 100 + '", "platform": "linux"}'
    )
    discovered = DiscoveredAgent.from_payload("nas", payload)
    assert discovered is not None
    assert discovered.agent_id == "nas"
    assert discovered.platform == "linux"
    assert discovered.hostname.startswith("nas.local x")
    assert len(discovered.hostname) == 64
    assert "\u0007" not in discovered.hostname
