"""Odd traffic on the agents' topics, through a real mosquitto broker.

Strangers, forgeries, agents of a station this entry does not manage, and a
topic without an agent id: each is ignored (and counted where it is an
attack), nothing crashes, and the agents that matter keep working.
"""

from __future__ import annotations

from typing import Any
from unittest.mock import AsyncMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ecoflow_power.agents import agent_device_identifier
from custom_components.ecoflow_power.const import CONF_AGENTS, DOMAIN
from custom_components.ecoflow_power.policy.protocol import sign_message
from tests.helpers.mosquitto import MosquittoBroker

from .conftest import AGENT_SECRET, NAS, policy_entry
from .helpers import advance
from .mqtt_helpers import entry_on_real_mqtt, publish_side, real_sleep, wait_for

GARAGE_SECRET = "garage-secret-for-tests"
GONE_STATION = "R631ZAB5GONE0001"  # a station no longer in this entry


def status(agent: str, secret: str, state: str = "online", **changes: Any) -> dict[str, Any]:
    body = {
        "v": 1,
        "agent": agent,
        "hostname": agent,
        "platform": "linux",
        "agent_version": "2.0.0",
        "dry_run": False,
        "shutdown_sec": 30,
        "at": 1,
        "state": state,
    } | changes
    return body | {"sig": sign_message(body, secret)}


def ack(agent: str, secret: str, command_id: str = "cmd-1") -> dict[str, Any]:
    body = {"v": 1, "id": command_id, "agent": agent, "status": "received", "at": 1, "detail": ""}
    return body | {"sig": sign_message(body, secret)}


def agent_device(hass: HomeAssistant, entry: MockConfigEntry, agent_id: str) -> dr.DeviceEntry:
    key = (DOMAIN, agent_device_identifier(agent_id))
    device = dr.async_get(hass).async_get_device_by_identifier(key, entry.entry_id)
    assert isinstance(device, dr.DeviceEntry)
    return device


def garage_device(hass: HomeAssistant, entry: MockConfigEntry) -> dr.DeviceEntry:
    return agent_device(hass, entry, "garage")


@pytest.fixture
async def loaded(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    mock_client: AsyncMock,
    fake_session,
    freezer: FrozenDateTimeFactory,
) -> Any:
    garage = NAS | {"device": GONE_STATION, "secret": GARAGE_SECRET}
    entry = policy_entry(**{CONF_AGENTS: {"nas": dict(NAS), "garage": garage}})
    async with entry_on_real_mqtt(hass, broker, freezer, entry):
        yield entry


async def test_an_agent_of_a_station_no_longer_managed_is_heard_but_commands_nothing(
    hass: HomeAssistant, broker: MosquittoBroker, loaded
) -> None:
    policy = loaded.runtime_data.policy
    await publish_side(broker, "power-manager/garage/status", status("garage", GARAGE_SECRET))
    await publish_side(broker, "power-manager/garage/ack", ack("garage", GARAGE_SECRET))
    await wait_for(hass, lambda: "garage" in policy.agent_status)
    # Its station has no engine and no device here: nothing to update or decide.
    assert policy.rejected_messages == 0
    assert GONE_STATION not in policy.engines
    registry = dr.async_get(hass)
    key = (DOMAIN, GONE_STATION)
    assert registry.async_get_device_by_identifier(key, loaded.entry_id) is None
    # Its own device says what it reported, and hangs under no station.
    key = (DOMAIN, agent_device_identifier("garage"))
    garage = registry.async_get_device_by_identifier(key, loaded.entry_id)
    assert garage is not None
    await wait_for(hass, lambda: garage_device(hass, loaded).sw_version == "2.0.0")
    assert garage_device(hass, loaded).model == "Host agent (linux)"
    assert garage_device(hass, loaded).via_device_id is None
    # The agent of a managed station is unaffected.
    await publish_side(broker, "power-manager/nas/status", status("nas", AGENT_SECRET))
    await wait_for(hass, lambda: hass.states.get("binary_sensor.agent_nas_online").state == "on")


async def test_forged_status_and_strangers_change_nothing(
    hass: HomeAssistant, broker: MosquittoBroker, loaded
) -> None:
    policy = loaded.runtime_data.policy
    # A status signed with the wrong secret: counted, never believed.
    await publish_side(broker, "power-manager/nas/status", status("nas", "not-the-nas-secret"))
    await wait_for(hass, lambda: policy.rejected_messages == 1)
    assert "nas" not in policy.agent_status
    assert hass.states.get("binary_sensor.agent_nas_online").state != "on"
    # An ack from an agent this entry does not know, and a status on a topic
    # with an empty agent level: ignored, not counted as attacks on our agents.
    await publish_side(broker, "power-manager/stranger/ack", ack("stranger", "whatever"))
    await publish_side(broker, "power-manager//status", status("", "whatever"))
    # A genuine status after them is still taken: the stream goes on.
    await publish_side(broker, "power-manager/nas/status", status("nas", AGENT_SECRET))
    await wait_for(hass, lambda: hass.states.get("binary_sensor.agent_nas_online").state == "on")
    assert policy.rejected_messages == 1
    assert set(policy.agent_status) == {"nas"}
    assert "" not in policy.discovered


async def test_an_agent_running_before_it_was_added_shows_its_platform_and_version(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    mock_client: AsyncMock,
    fake_session,
    freezer: FrozenDateTimeFactory,
) -> None:
    # The agent was installed first: its retained status waits on the broker
    # and reaches Home Assistant when it subscribes.
    await publish_side(
        broker,
        "power-manager/nas/status",
        status("nas", AGENT_SECRET, platform="macos", agent_version="2.1.0"),
        retain=True,
    )
    entry = policy_entry()
    async with entry_on_real_mqtt(hass, broker, freezer, entry):
        policy = entry.runtime_data.policy
        await wait_for(hass, lambda: "nas" in policy.agent_status)
        await hass.async_block_till_done()
        device = agent_device(hass, entry, "nas")
        assert (device.model, device.sw_version) == ("Host agent (macos)", "2.1.0")
        # A restart keeps it so: setting the entities up again does not reset
        # what the agent said of itself.
        assert await hass.config_entries.async_reload(entry.entry_id)
        await hass.async_block_till_done()
        # HA batches the new subscriptions behind a timer of the frozen clock.
        for _ in range(50):
            if "nas" in entry.runtime_data.policy.agent_status:
                break
            await advance(hass, freezer, 1)
            await real_sleep(0.05)
        assert "nas" in entry.runtime_data.policy.agent_status
        device = agent_device(hass, entry, "nas")
        assert (device.model, device.sw_version) == ("Host agent (macos)", "2.1.0")
