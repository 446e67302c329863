"""The shutdown policy in Home Assistant against a real mosquitto broker."""

from __future__ import annotations

import copy
from datetime import timedelta
from typing import Any
from unittest.mock import AsyncMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.util import dt as dt_util
import pytest

from custom_components.ecoflow_power.const import (
    CONF_AGENTS,
    DOMAIN,
    EVENT_POLICY,
)
from custom_components.ecoflow_power.policy.protocol import sign_message, verify_message
from tests.helpers.mosquitto import MosquittoBroker

from .conftest import AGENT_SECRET, DELTA2_SN, RIVER3_SN, make_entry, policy_entry
from .helpers import advance, capture_json, feed
from .mqtt_helpers import (
    SideSubscriber,
    entry_on_real_mqtt,
    publish_side,
    real_sleep,
    wait_for,
)


def delta2_payload(*, grid: bool, soc: int) -> dict[str, Any]:
    """The real Delta 2 capture, with the grid and battery level set."""
    capture = copy.deepcopy(capture_json("js01_delta2_getreply_latestQuotas_iobroker.json"))
    quota = capture["data"]["quotaMap"]
    for key in ("bms_emsStatus.lcdShowSoc", "bms_bmsStatus.soc", "pd.soc"):
        quota[key] = soc
    for key in ("bms_emsStatus.f32LcdShowSoc", "bms_bmsStatus.f32ShowSoc"):
        quota[key] = float(soc)
    if not grid:
        quota.update({"inv.acInVol": 0, "inv.inputWatts": 0, "pd.wattsInSum": 0, "inv.acInFreq": 0})
    return capture


@pytest.fixture
async def loaded(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    mock_client: AsyncMock,
    fake_session,
    freezer: FrozenDateTimeFactory,
):
    # Setup ticks the clock until HA's subscriptions are in, so expected times
    # below are taken from the clock, not written as constants.
    entry = policy_entry()
    async with entry_on_real_mqtt(hass, broker, freezer, entry):
        yield entry, fake_session.instances[-1]


async def test_outage_sends_signed_shutdown_on_the_agent_topic(
    hass: HomeAssistant, broker: MosquittoBroker, loaded, freezer: FrozenDateTimeFactory
) -> None:
    entry, session = loaded
    events: list[dict[str, Any]] = []
    hass.bus.async_listen(EVENT_POLICY, lambda event: events.append(dict(event.data)))
    await feed(hass, session, DELTA2_SN, delta2_payload(grid=True, soc=90))
    assert hass.states.get("sensor.rack_shutdown_policy").state == "normal"

    critical_at = dt_util.utcnow()
    await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=15))
    assert hass.states.get("sensor.rack_shutdown_policy").state == "critical_pending"
    fires_at = (critical_at + timedelta(seconds=60)).isoformat()
    assert hass.states.get("sensor.rack_shutdown_fires_at").state == fires_at

    async with SideSubscriber(broker, "power-manager/nas/cmd", count=1) as subscriber:
        await advance(hass, freezer, 30)
        await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=15))
        await advance(hass, freezer, 31)
        messages = await subscriber.messages()
    assert len(messages) == 1
    topic, command = messages[0]
    assert topic == "power-manager/nas/cmd"
    assert command["action"] == "shutdown"
    assert command["delay_sec"] == 30
    assert command["device"] == DELTA2_SN
    assert verify_message(command, AGENT_SECRET)
    assert not verify_message(command, "another-secret")
    assert hass.states.get("sensor.rack_shutdown_policy").state == "shutdown_sent"
    # Once sent, the countdown shows the host's commit point (issued_at + delay).
    commit_at = dt_util.utc_from_timestamp(command["issued_at"] + 30).isoformat()
    assert hass.states.get("sensor.rack_shutdown_fires_at").state == commit_at
    assert {"grid_lost", "battery_critical", "shutdown_sent"} <= {e["type"] for e in events}
    # Real engine events carry HA's device id, so device triggers match them.
    from homeassistant.helpers import device_registry as dr

    station = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, DELTA2_SN), entry.entry_id)
    assert {e["device_id"] for e in events} == {station.id}
    assert all(e["station"] == "Rack" for e in events)


async def test_forged_ack_is_ignored_and_a_valid_one_updates_the_agent(
    hass: HomeAssistant, broker: MosquittoBroker, loaded, freezer: FrozenDateTimeFactory
) -> None:
    entry, _session = loaded
    policy = entry.runtime_data.policy
    async with SideSubscriber(broker, "power-manager/nas/cmd", count=1) as subscriber:
        response = await hass.services.async_call(
            DOMAIN,
            "shutdown",
            {"agents": ["nas"], "delay_sec": 120},
            blocking=True,
            return_response=True,
        )
        command = (await subscriber.messages())[0][1]
    assert response == {"sent": ["nas"]}
    ack = {
        "v": 1,
        "id": command["id"],
        "agent": "nas",
        "status": "received",
        "at": int(freezer().timestamp()),
        "detail": "",
    }

    forged = ack | {"sig": sign_message(ack, "not-the-agent-secret")}
    await publish_side(broker, "power-manager/nas/ack", forged)
    await wait_for(hass, lambda: policy.rejected_messages == 1)
    assert hass.states.get("sensor.agent_nas_last_acknowledgement").state == "unknown"

    await publish_side(
        broker, "power-manager/nas/ack", ack | {"sig": sign_message(ack, AGENT_SECRET)}
    )
    await wait_for(
        hass, lambda: hass.states.get("sensor.agent_nas_last_acknowledgement").state == "received"
    )
    assert hass.states.get("sensor.agent_nas_last_command").state == "shutdown"


async def test_agent_status_and_last_will(
    hass: HomeAssistant, broker: MosquittoBroker, loaded
) -> None:
    events: list[dict[str, Any]] = []
    hass.bus.async_listen(EVENT_POLICY, lambda event: events.append(dict(event.data)))
    base = {
        "v": 1,
        "agent": "nas",
        "hostname": "nas",
        "platform": "linux",
        "agent_version": "1.0.0",
        "dry_run": True,
        "shutdown_sec": 30,
        "at": 1,
    }
    online = base | {"state": "online"}
    await publish_side(
        broker,
        "power-manager/nas/status",
        online | {"sig": sign_message(online, AGENT_SECRET)},
        retain=True,
    )
    await wait_for(hass, lambda: hass.states.get("binary_sensor.agent_nas_online").state == "on")
    offline = base | {"state": "offline"}
    await publish_side(
        broker,
        "power-manager/nas/status",
        offline | {"sig": sign_message(offline, AGENT_SECRET)},
        retain=True,
    )
    await wait_for(hass, lambda: hass.states.get("binary_sensor.agent_nas_online").state == "off")
    assert [e["type"] for e in events] == ["agent_offline"]


async def test_restart_in_the_middle_of_a_pending_shutdown_resumes_it(
    hass: HomeAssistant, broker: MosquittoBroker, loaded, freezer: FrozenDateTimeFactory
) -> None:
    entry, session = loaded
    await feed(hass, session, DELTA2_SN, delta2_payload(grid=True, soc=90))
    critical_at = dt_util.utcnow()
    await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=15))
    assert hass.states.get("sensor.rack_shutdown_policy").state == "critical_pending"

    # Home Assistant restarts: the entry unloads (state stored) and loads again.
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    session = type(session).instances[-1]
    assert hass.states.get("sensor.rack_shutdown_policy").state == "critical_pending"
    # Nothing fires on stored evidence alone: a fresh reading first, or one
    # stale window (120 s) after the restart.
    held_until = (dt_util.utcnow() + timedelta(seconds=120)).isoformat()
    assert hass.states.get("sensor.rack_shutdown_fires_at").state == held_until

    async with SideSubscriber(broker, "power-manager/nas/cmd", count=2, wait=4) as subscriber:
        await advance(hass, freezer, 20)
        await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=15))
        # Confirmed by a fresh reading: the timer fires at its original time.
        fires_at = (critical_at + timedelta(seconds=60)).isoformat()
        assert hass.states.get("sensor.rack_shutdown_fires_at").state == fires_at
        await advance(hass, freezer, 41)
        messages = await subscriber.messages()
    # Exactly one shutdown: resumed, not duplicated.
    assert [m[1]["action"] for m in messages] == ["shutdown"]


async def test_services_without_mqtt_raise_a_translated_error(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    from homeassistant.exceptions import ServiceValidationError

    entry = make_entry(
        **{
            CONF_AGENTS: {
                "nas": {
                    "device": RIVER3_SN,
                    "secret": "s",
                    "soc_threshold": None,
                    "delay_sec": None,
                }
            }
        }
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "abort", {"agents": ["nas"]}, blocking=True)
    assert err.value.translation_key == "mqtt_missing"
    from homeassistant.helpers import issue_registry as ir

    assert ir.async_get(hass).async_get_issue(DOMAIN, f"mqtt_missing_{entry.entry_id}")
    # Telemetry still works without MQTT.
    assert hass.states.get("binary_sensor.study_ups_grid_power") is not None


async def test_shutdown_and_abort_by_device_target(
    hass: HomeAssistant, broker: MosquittoBroker, loaded
) -> None:
    from homeassistant.helpers import device_registry as dr

    entry, _session = loaded
    registry = dr.async_get(hass)
    station = registry.async_get_device_by_identifier((DOMAIN, DELTA2_SN), entry.entry_id)
    async with SideSubscriber(broker, "power-manager/nas/cmd", count=2) as subscriber:
        await hass.services.async_call(
            DOMAIN,
            "shutdown",
            {"device_id": [station.id], "delay_sec": 300, "reason": "maintenance"},
            blocking=True,
        )
        response = await hass.services.async_call(
            DOMAIN, "abort", {"device_id": [station.id]}, blocking=True, return_response=True
        )
        messages = await subscriber.messages()
    assert response == {"sent": ["nas"]}
    shutdown, abort = (message for _, message in messages)
    assert (shutdown["action"], shutdown["reason"], shutdown["delay_sec"]) == (
        "shutdown",
        "maintenance",
        300,
    )
    assert abort["action"] == "abort"
    assert verify_message(abort, AGENT_SECRET)


async def test_service_target_errors(hass: HomeAssistant, loaded) -> None:
    from homeassistant.exceptions import ServiceValidationError

    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "shutdown", {"agents": ["ghost"]}, blocking=True)
    assert err.value.translation_key == "unknown_agent"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "abort", {"device_id": ["nope"]}, blocking=True)
    assert err.value.translation_key == "unknown_device"
    with pytest.raises(ServiceValidationError) as err:
        await hass.services.async_call(DOMAIN, "abort", {}, blocking=True)
    assert err.value.translation_key == "no_agents"


async def test_ping_agents_reports_who_answered(
    hass: HomeAssistant, broker: MosquittoBroker, loaded, freezer: FrozenDateTimeFactory
) -> None:
    import asyncio

    async def answer_like_an_agent() -> None:
        async with SideSubscriber(broker, "power-manager/nas/cmd", count=1) as subscriber:
            ping = (await subscriber.messages())[0][1]
        pong = {
            "v": 1,
            "id": ping["id"],
            "agent": "nas",
            "status": "pong",
            "at": ping["issued_at"],
            "detail": "",
        }
        await publish_side(
            broker, "power-manager/nas/ack", pong | {"sig": sign_message(pong, AGENT_SECRET)}
        )

    agent = asyncio.create_task(answer_like_an_agent())
    await real_sleep(0.7)
    response = await hass.services.async_call(
        DOMAIN, "ping_agents", {"timeout": 10}, blocking=True, return_response=True
    )
    await agent
    assert response["agents"]["nas"]["answered"] is True
    assert hass.states.get("sensor.agent_nas_last_acknowledgement").state == "pong"


async def test_disarmed_policy_decides_but_publishes_nothing(
    hass: HomeAssistant, broker: MosquittoBroker, loaded, freezer: FrozenDateTimeFactory
) -> None:
    _entry, session = loaded
    await hass.services.async_call(
        "switch", "turn_off", {"entity_id": "switch.rack_shutdown_policy_armed"}, blocking=True
    )
    assert hass.states.get("sensor.rack_shutdown_policy").state == "disarmed"
    async with SideSubscriber(broker, "power-manager/nas/cmd", count=1, wait=3) as subscriber:
        await feed(hass, session, DELTA2_SN, delta2_payload(grid=True, soc=90))
        await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=15))
        await advance(hass, freezer, 61)
        await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=15))
        messages = await subscriber.messages()
    assert messages == []
    await hass.services.async_call(
        "switch", "turn_on", {"entity_id": "switch.rack_shutdown_policy_armed"}, blocking=True
    )
    assert hass.states.get("switch.rack_shutdown_policy_armed").state == "on"


async def test_an_agent_announcing_itself_is_offered_in_the_options(
    hass: HomeAssistant, broker: MosquittoBroker, loaded
) -> None:
    entry, _session = loaded
    policy = entry.runtime_data.policy
    status = {
        "v": 1,
        "agent": "lab-vm",
        "state": "online",
        "hostname": "lab-vm",
        "platform": "linux",
        "agent_version": "1.0.0",
        "dry_run": True,
        "shutdown_sec": 20,
        "at": 1,
    }
    # Not configured yet, so HA holds no secret for it: it is offered, never trusted.
    await publish_side(broker, "power-manager/lab-vm/status", status, retain=True)
    await wait_for(hass, lambda: "lab-vm" in policy.discovered)
    assert policy.discovered["lab-vm"].platform == "linux"

    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "add_agent"}
    )
    selector = result["data_schema"].schema["agent_id"]
    assert selector.config["options"] == ["lab-vm"]
    assert hass.states.get("binary_sensor.agent_lab_vm_online") is None
