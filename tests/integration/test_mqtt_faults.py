"""HA's MQTT integration going away and coming back, and what the broker keeps, on a real broker."""

from __future__ import annotations

import asyncio
import json
import re
from typing import Any
from unittest.mock import AsyncMock, MagicMock, patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import mqtt
from homeassistant.config_entries import ConfigEntry, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError
from homeassistant.helpers import issue_registry as ir
import pytest

from custom_components.ecoflow_power.const import (
    CONF_AGENTS,
    DOMAIN,
)
from custom_components.ecoflow_power.nut.config import CONF_NUT
from custom_components.ecoflow_power.policy.lease import parse_lease
from custom_components.ecoflow_power.policy.protocol import sign_message
from tests.helpers.mosquitto import MosquittoBroker, free_port

from .conftest import AGENT_SECRET, DELTA2_SN, RIVER3_SN, policy_entry
from .helpers import advance, feed
from .mqtt_helpers import (
    SideSubscriber,
    entry_on_real_mqtt,
    publish_side,
    real_sleep,
    setup_real_mqtt,
    subscriptions,
    wait_for,
)
from .test_policy_mqtt import delta2_payload

AGENT_TOPICS = ["power-manager/+/ack", "power-manager/+/status"]
LEASES = "power-manager/+/power"


async def retained(broker: MosquittoBroker, topic: str = LEASES) -> dict[str, str]:
    """Every retained message under `topic` as a fresh subscriber gets it: {topic: payload}."""
    process = await asyncio.create_subprocess_exec(
        *("mosquitto_sub", "-h", broker.host, "-p", str(broker.port), "-t", topic),
        *("-v", "--retained-only", "-W", "1"),
        stdout=asyncio.subprocess.PIPE,
    )
    out, _ = await process.communicate()
    return dict(line.partition(" ")[::2] for line in out.decode().splitlines())


async def publish_raw(broker: MosquittoBroker, topic: str, payload: str) -> None:
    """A retained message that is not ours to read (not JSON, or not an object)."""
    process = await asyncio.create_subprocess_exec(
        *("mosquitto_pub", "-h", broker.host, "-p", str(broker.port), "-t", topic),
        *("-q", "1", "-r", "-m", payload),
    )
    assert await process.wait() == 0


def _mqtt_entry(hass: HomeAssistant) -> ConfigEntry:
    (entry,) = hass.config_entries.async_entries(mqtt.DOMAIN)
    return entry


async def resubscribed(
    hass: HomeAssistant, freezer: FrozenDateTimeFactory, broker: MosquittoBroker, before: dict
) -> None:
    """Tick HA's subscribe cooldown until the broker logged each topic once more than `before`."""
    for _ in range(100):
        await advance(hass, freezer, 1)
        if all(subscriptions(broker, topic) > count for topic, count in before.items()):
            return
        await real_sleep(0.05)
    raise AssertionError(f"the broker never registered {list(before)} again")


def held_subscriptions(broker: MosquittoBroker) -> set[str]:
    """The topic filters the broker holds for its connected clients, replayed from its log.

    Every client here uses a clean session: a new connection starts empty.
    """
    held: dict[str, set[str]] = {}
    for line in broker.log_path.read_text().splitlines():
        if m := re.match(r"\d+: New client connected from \S+ as (\S+) ", line):
            held[m[1]] = set()
        elif m := re.match(r"\d+: Client (\S+) (disconnected|closed its connection)", line):
            held.pop(m[1], None)
        elif (m := re.match(r"\d+: (\S+) \d (\S+)$", line)) and m[1] in held:
            held[m[1]].add(m[2])
        elif (m := re.match(r"\d+: (\S+) (\S+)$", line)) and m[1] in held:
            held[m[1]].discard(m[2])
    return set().union(*held.values())


def _signed_status(state: str) -> dict[str, Any]:
    status = {
        "v": 1,
        "agent": "nas",
        "state": state,
        "hostname": "nas",
        "platform": "linux",
        "agent_version": "1.0.0",
        "dry_run": True,
        "shutdown_sec": 30,
        "at": 1,
    }
    return status | {"sig": sign_message(status, AGENT_SECRET)}


async def test_mqtt_integration_reloaded_mid_run_resubscribes_agent_topics_once(
    hass: HomeAssistant, broker: MosquittoBroker, loaded, freezer: FrozenDateTimeFactory
) -> None:
    """HA's MQTT integration unloaded and loaded again while ours keeps running."""
    entry = loaded
    policy = entry.runtime_data.policy
    issue_id = f"mqtt_missing_{entry.entry_id}"
    issues = ir.async_get(hass)
    assert issues.async_get_issue(DOMAIN, issue_id) is None
    mqtt_entry = _mqtt_entry(hass)

    assert await hass.config_entries.async_unload(mqtt_entry.entry_id)
    await hass.async_block_till_done()
    # While it is gone: the repair says so, and commands are refused plainly.
    assert issues.async_get_issue(DOMAIN, issue_id) is not None
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "abort", {"agents": ["nas"]}, blocking=True)
    assert err.value.translation_key == "mqtt_missing"

    before = {topic: subscriptions(broker, topic) for topic in AGENT_TOPICS}
    with patch("homeassistant.config.load_yaml_config_file", return_value={}):
        assert await hass.config_entries.async_setup(mqtt_entry.entry_id)
        await hass.async_block_till_done()
    assert mqtt_entry.state is ConfigEntryState.LOADED
    assert await mqtt.async_wait_for_mqtt_client(hass)
    await wait_for(hass, lambda: policy.mqtt_available)
    assert issues.async_get_issue(DOMAIN, issue_id) is None
    await resubscribed(hass, freezer, broker, before)

    # The agents' messages arrive again, each exactly once: a forged ack is
    # counted once, and the agent's status after it shows all were handled.
    forged = {"v": 1, "id": "x", "agent": "nas", "status": "received", "at": 1, "detail": ""}
    await publish_side(broker, "power-manager/nas/ack", forged | {"sig": "0" * 64})
    await publish_side(broker, "power-manager/nas/status", _signed_status("online"))
    await wait_for(hass, lambda: hass.states.get("binary_sensor.agent_nas_online").state == "on")
    assert policy.rejected_messages == 1

    # Unloaded, ours leaves nothing subscribed behind at the broker.
    assert set(AGENT_TOPICS) <= held_subscriptions(broker)
    assert await hass.config_entries.async_unload(entry.entry_id)
    for _ in range(30):
        await advance(hass, freezer, 1)  # HA's unsubscribe cooldown
        if not {*AGENT_TOPICS, LEASES} & held_subscriptions(broker):
            break
        await real_sleep(0.05)
    assert not {*AGENT_TOPICS, LEASES} & held_subscriptions(broker)


async def test_lease_decided_while_mqtt_was_reloading_goes_out_as_soon_as_it_is_back(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    loaded,
    fake_session,
    freezer: FrozenDateTimeFactory,
) -> None:
    """The grid fails while HA's MQTT is away: the agent's lease says so once it is back."""
    session = fake_session.instances[-1]
    await feed(hass, session, DELTA2_SN, delta2_payload(grid=True, soc=90))
    mqtt_entry = _mqtt_entry(hass)
    assert await hass.config_entries.async_unload(mqtt_entry.entry_id)
    await hass.async_block_till_done()
    await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=40))
    lease = parse_lease((await retained(broker))["power-manager/nas/power"], AGENT_SECRET, "nas")
    assert lease is not None
    assert lease.grid == "present"  # nothing could go out

    # A fresh subscriber first gets the retained lease of the grid, then the new one.
    async with SideSubscriber(broker, "power-manager/nas/power", count=2, wait=10) as subscriber:
        with patch("homeassistant.config.load_yaml_config_file", return_value={}):
            assert await hass.config_entries.async_setup(mqtt_entry.entry_id)
            await hass.async_block_till_done()
        # no reading since: the lease follows what the engine decided meanwhile
        *_, (_topic, payload) = await subscriber.messages()
    lease = parse_lease(json.dumps(payload), AGENT_SECRET, "nas")
    assert lease is not None
    assert lease.grid == "on_battery"
    assert lease.soc_min == 40.0


async def test_removing_an_agent_deletes_its_lease_and_clock_repair(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    loaded,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """The agent's host was retired: nothing of it is left on the broker or in Repairs."""
    entry = loaded
    # The agent answered with its clock 300 s fast: a repair names it.
    async with SideSubscriber(broker, "power-manager/nas/cmd", count=1) as subscriber:
        await hass.services.async_call(
            DOMAIN, "shutdown", {"agents": ["nas"], "delay_sec": 120}, blocking=True
        )
        (_topic, command), *_ = await subscriber.messages()
    ack = {"v": 1, "id": command["id"], "agent": "nas", "status": "received"}
    ack |= {"at": command["issued_at"] + 300, "detail": ""}
    await publish_side(
        broker, "power-manager/nas/ack", ack | {"sig": sign_message(ack, AGENT_SECRET)}
    )
    issues = ir.async_get(hass)
    await wait_for(hass, lambda: issues.async_get_issue(DOMAIN, "agent_clock_skew_nas") is not None)
    # Retained leases nobody here can read stay as they are.
    await publish_raw(broker, "power-manager/junk/power", "not json")
    await publish_raw(broker, "power-manager/list/power", "[1, 2]")
    assert "power-manager/nas/power" in await retained(broker)

    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "remove_agent"}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {CONF_AGENTS: ["nas"]}
    )
    await hass.async_block_till_done()  # the entry reloads without the agent
    assert entry.state is ConfigEntryState.LOADED
    for _ in range(30):
        await advance(hass, freezer, 1)  # HA's subscribe cooldown
        if "power-manager/nas/power" not in (left := await retained(broker)):
            break
    assert left == {"power-manager/junk/power": "not json", "power-manager/list/power": "[1, 2]"}
    assert issues.async_get_issue(DOMAIN, "agent_clock_skew_nas") is None
    assert "Clearing the lease of removed agent nas" in caplog.text


async def test_a_nut_consumer_gets_no_lease_on_the_broker(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    mock_client: AsyncMock,
    fake_session,
    freezer: FrozenDateTimeFactory,
) -> None:
    """A station served to NUT clients and to an agent: only the agent has a lease topic."""
    nut = {
        "enabled": True,
        "host": "127.0.0.1",
        "port": free_port(),
        "users": {"monuser": {"password": "nut-password-for-tests"}},
        "stations": {
            DELTA2_SN: {"name": "rack", "aliases": []},
            RIVER3_SN: {"name": "study", "aliases": []},
        },
    }
    entry = policy_entry(**{CONF_NUT: nut})
    async with entry_on_real_mqtt(hass, broker, freezer, entry):
        assert "nut-rack" in entry.runtime_data.policy.engines[DELTA2_SN].agents
        session = fake_session.instances[-1]
        async with SideSubscriber(broker, "power-manager/nas/power", count=1) as subscriber:
            await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=40))
            await subscriber.messages()
        assert set(await retained(broker)) == {"power-manager/nas/power"}


async def test_mqtt_refusing_the_agents_topics_at_start_is_a_repair_not_a_failed_setup(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    mock_client: AsyncMock,
    fake_session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    mqtt_entry = await setup_real_mqtt(hass, broker)
    real_subscribe = mqtt.async_subscribe
    made: list[MagicMock] = []

    async def refuse_status(hass: HomeAssistant, topic: str, *args: Any, **kwargs: Any) -> Any:
        if topic.endswith("/status"):
            raise HomeAssistantError("refused by a broken MQTT setup")
        unsubscribe = MagicMock(wraps=await real_subscribe(hass, topic, *args, **kwargs))
        made.append(unsubscribe)
        return unsubscribe

    entry = policy_entry()
    entry.add_to_hass(hass)
    with patch.object(mqtt, "async_subscribe", refuse_status):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    policy = entry.runtime_data.policy
    assert not policy.mqtt_available
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"mqtt_missing_{entry.entry_id}")
    assert "refused the agents' topics: refused by a broken MQTT setup" in caplog.text
    # The ack subscription made before the refusal was undone, not left half set up.
    assert [call.call_count for call in made] == [1]
    # The policy still decides (and shows it) while it cannot reach the agents.
    assert hass.states.get("sensor.rack_shutdown_policy") is not None
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.config_entries.async_unload(mqtt_entry.entry_id)
    await hass.async_block_till_done()
