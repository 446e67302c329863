"""Setup never waits for the cloud: cache, stored policy state, repairs instead of failures."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest.mock import AsyncMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ecoflow_power.const import (
    CONF_AGENTS,
    CONF_DEVICES,
    CONF_GRID_CONFIRM,
    CONF_POLICY,
    DOMAIN,
)
from custom_components.ecoflow_power.ecoflow.errors import (
    EcoflowAuthError,
    EcoflowConnectionError,
)
from custom_components.ecoflow_power.policy.protocol import sign_message
from tests.helpers.mosquitto import MosquittoBroker

from .conftest import ACCOUNT, AGENT_SECRET, DELTA2_SN, NAS, RIVER3_SN, make_entry
from .helpers import advance, feed
from .mqtt_helpers import (
    SideSubscriber,
    flush_subscriptions,
    publish_side,
    setup_real_mqtt,
    wait_for,
)
from .test_policy_mqtt import delta2_payload


def _cached_account(hass_storage: dict[str, Any], entry: MockConfigEntry) -> None:
    """The device cache a previous run with the cloud reachable left behind."""
    hass_storage[f"{DOMAIN}.{entry.entry_id}.devices"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.{entry.entry_id}.devices",
        "data": {
            "devices": [
                {
                    "sn": d.sn,
                    "product_name": d.product_name,
                    "device_name": d.device_name,
                    "online": True,
                }
                for d in ACCOUNT
            ],
            "firmware": {DELTA2_SN: "1.0.1.40"},
        },
    }


def _cloud_down(mock_client: AsyncMock, fake_session: Any, error: Exception) -> None:
    mock_client.devices.side_effect = error
    mock_client.certification.side_effect = error
    fake_session.connects = False


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


async def test_start_with_the_cloud_refusing_connections_runs_from_the_cache(
    hass: HomeAssistant, hass_storage: dict[str, Any], mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry(**{CONF_AGENTS: {"nas": dict(NAS)}})
    _cached_account(hass_storage, entry)
    _cloud_down(mock_client, fake_session, EcoflowConnectionError("refused"))
    await _setup(hass, entry)

    assert entry.state is ConfigEntryState.LOADED
    # Entities and devices come from the cache, named as the cloud named them.
    assert hass.states.get("sensor.rack_shutdown_policy").state == "normal"
    assert hass.states.get("switch.study_ups_shutdown_policy_armed").state == "on"
    assert hass.states.get("binary_sensor.agent_nas_online") is not None
    # Not connected is a state, not a failed setup.
    assert hass.states.get("binary_sensor.rack_cloud_connection").state == "off"
    rack = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, DELTA2_SN), entry.entry_id)
    assert (rack.name, rack.model, rack.sw_version) == ("Rack", "Delta 2", "1.0.1.40")


async def test_refused_keys_start_reauth_while_the_policy_keeps_running(
    hass: HomeAssistant, hass_storage: dict[str, Any], mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry(**{CONF_AGENTS: {"nas": dict(NAS)}})
    _cached_account(hass_storage, entry)
    _cloud_down(mock_client, fake_session, EcoflowAuthError("8513"))
    await _setup(hass, entry)

    assert entry.state is ConfigEntryState.LOADED
    flows = hass.config_entries.flow.async_progress()
    assert [flow["context"]["source"] for flow in flows] == [SOURCE_REAUTH]
    assert set(entry.runtime_data.policy.engines) == {RIVER3_SN, DELTA2_SN}
    assert hass.states.get("sensor.rack_shutdown_policy").state == "normal"


async def test_first_start_knowing_no_device_raises_a_repair_and_retries(
    hass: HomeAssistant,
    mock_client: AsyncMock,
    fake_session,
    freezer: FrozenDateTimeFactory,
) -> None:
    entry = make_entry(**{CONF_DEVICES: []})
    _cloud_down(mock_client, fake_session, EcoflowConnectionError("no route"))
    await _setup(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    issue_id = f"devices_unknown_{entry.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    assert entry.runtime_data.telemetry.devices == {}

    # The cloud answers on a later background attempt: the entry reloads with the devices.
    mock_client.devices.side_effect = None
    mock_client.certification.side_effect = None
    fake_session.connects = True
    for _ in range(10):
        await advance(hass, freezer, 10)
    assert entry.state is ConfigEntryState.LOADED
    assert set(entry.runtime_data.telemetry.devices) == {RIVER3_SN, DELTA2_SN}
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    assert hass.states.get("sensor.rack_shutdown_policy") is not None


async def test_first_start_without_the_cloud_learns_names_once_it_answers(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session, freezer: FrozenDateTimeFactory
) -> None:
    entry = make_entry()
    _cloud_down(mock_client, fake_session, EcoflowConnectionError("no route"))
    await _setup(hass, entry)
    registry = dr.async_get(hass)
    rack = registry.async_get_device_by_identifier((DOMAIN, DELTA2_SN), entry.entry_id)
    # Known only by its serial so far: the model from the serial prefix.
    assert rack.name == "Delta 2"
    mock_client.devices.side_effect = None
    for _ in range(10):
        await advance(hass, freezer, 10)
    rack = registry.async_get_device_by_identifier((DOMAIN, DELTA2_SN), entry.entry_id)
    assert rack.name == "Rack"
    assert entry.runtime_data.device_cache.devices == ACCOUNT


async def test_unreadable_device_cache_starts_empty_and_warns(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mock_client: AsyncMock,
    fake_session: Any,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = make_entry()
    hass_storage[f"{DOMAIN}.{entry.entry_id}.devices"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.{entry.entry_id}.devices",
        # A device without its serial (a hand-edited or damaged file).
        "data": {"devices": [{"product_name": "DELTA 2", "device_name": "Rack"}]},
    }
    _cloud_down(mock_client, fake_session, EcoflowConnectionError("no route"))
    await _setup(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    assert "Ignoring an unreadable device cache" in caplog.text
    # Nothing from the damaged cache: the selected stations, known by serial only.
    assert entry.runtime_data.device_cache.devices == []
    rack = dr.async_get(hass).async_get_device_by_identifier((DOMAIN, DELTA2_SN), entry.entry_id)
    assert rack is not None
    assert rack.name == "Delta 2"
    policy = hass.states.get("sensor.delta_2_shutdown_policy")
    assert policy is not None
    assert policy.state == "normal"


async def test_unreadable_stored_policy_state_gives_a_fresh_engine_and_a_repair(
    hass: HomeAssistant, hass_storage: dict[str, Any], mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry(**{CONF_AGENTS: {"nas": dict(NAS)}})
    hass_storage[f"{DOMAIN}.{entry.entry_id}.policy"] = {
        "version": 1,
        "minor_version": 1,
        "key": f"{DOMAIN}.{entry.entry_id}.policy",
        "data": {"engines": {DELTA2_SN: {"version": 999, "grid": "sideways"}}},
    }
    await _setup(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"policy_state_unreadable_{DELTA2_SN}")
    assert issue is not None
    assert issue.translation_placeholders["device"] == "Rack"
    assert (
        ir.async_get(hass).async_get_issue(DOMAIN, f"policy_state_unreadable_{RIVER3_SN}") is None
    )
    assert hass.states.get("sensor.rack_shutdown_policy").state == "normal"


async def test_invalid_policy_settings_at_load_run_on_defaults_with_a_repair(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry(
        **{
            CONF_AGENTS: {"nas": dict(NAS)},
            CONF_POLICY: {DELTA2_SN: {"soc_threshold": 500, "debounce_sec": 30}},
        }
    )
    await _setup(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"policy_settings_invalid_{DELTA2_SN}")
    assert issue is not None
    assert "soc_threshold" in issue.translation_placeholders["error"]
    engine = entry.runtime_data.policy.engines[DELTA2_SN]
    assert engine.settings.soc_threshold == 20
    assert engine.settings.stale_after_sec == 120
    assert hass.states.get("sensor.rack_shutdown_policy").state == "normal"
    # Telemetry is untouched by the policy's trouble.
    assert hass.states.get("binary_sensor.rack_grid_power") is not None


async def test_agents_that_protect_nothing_raise_repairs(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry(
        **{
            CONF_AGENTS: {
                "nas": dict(NAS),
                "garage": NAS | {"device": "R631ZAB5GONE0001"},
                "bad id!": dict(NAS),
            }
        }
    )
    await _setup(hass, entry)
    issues = ir.async_get(hass)
    unmanaged = issues.async_get_issue(DOMAIN, f"agent_unmanaged_station_{entry.entry_id}")
    assert unmanaged.translation_placeholders["agents"] == "garage"
    invalid = issues.async_get_issue(DOMAIN, f"agent_options_invalid_{entry.entry_id}")
    assert invalid.translation_placeholders["agents"] == "bad id!"
    assert set(entry.runtime_data.policy.agents) == {"nas", "garage"}


async def test_restart_during_an_outage_with_the_cloud_refusing_still_shuts_down(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    mock_client: AsyncMock,
    fake_session,
    freezer: FrozenDateTimeFactory,
) -> None:
    freezer.move_to("2026-11-01T12:00:00+00:00")
    mqtt_entry = await setup_real_mqtt(hass, broker)
    entry = make_entry(
        **{
            CONF_GRID_CONFIRM: 0,
            CONF_AGENTS: {"nas": dict(NAS)},
            CONF_POLICY: {DELTA2_SN: {"soc_threshold": 20, "debounce_sec": 60, "delay_sec": 30}},
        }
    )
    await _setup(hass, entry)
    session = fake_session.instances[-1]

    await feed(hass, session, DELTA2_SN, delta2_payload(grid=True, soc=90))
    critical_at = dt_util.utcnow()
    await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=15))
    assert hass.states.get("sensor.rack_shutdown_policy").state == "critical_pending"

    # Home Assistant restarts while the cloud refuses every connection.
    assert await hass.config_entries.async_unload(entry.entry_id)
    _cloud_down(mock_client, fake_session, EcoflowConnectionError("refused"))
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert hass.states.get("sensor.rack_shutdown_policy").state == "critical_pending"
    # No fresh reading can come: the stored timer fires one stale window
    # (120 s) after the restart at the latest, never later.
    held_until = max(critical_at + timedelta(seconds=60), dt_util.utcnow() + timedelta(seconds=120))
    assert hass.states.get("sensor.rack_shutdown_fires_at").state == held_until.isoformat()

    async with SideSubscriber(broker, "power-manager/nas/cmd", count=1) as subscriber:
        await advance(hass, freezer, 121)
        messages = await subscriber.messages()
    assert [payload["action"] for _, payload in messages] == ["shutdown"]
    assert hass.states.get("sensor.rack_shutdown_policy").state == "shutdown_sent"
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.config_entries.async_unload(mqtt_entry.entry_id)
    await hass.async_block_till_done()


async def test_mqtt_set_up_after_us_gets_the_subscriptions(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    mock_client: AsyncMock,
    fake_session,
    freezer: FrozenDateTimeFactory,
) -> None:
    entry = make_entry(**{CONF_AGENTS: {"nas": dict(NAS)}})
    await _setup(hass, entry)
    issue_id = f"mqtt_missing_{entry.entry_id}"
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None

    mqtt_entry = await setup_real_mqtt(hass, broker)
    policy = entry.runtime_data.policy
    await wait_for(hass, lambda: policy.mqtt_available)
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    await flush_subscriptions(
        hass, freezer, broker, ["power-manager/+/ack", "power-manager/+/status"]
    )
    status = {
        "v": 1,
        "agent": "nas",
        "state": "online",
        "hostname": "nas",
        "platform": "linux",
        "agent_version": "1.0.0",
        "dry_run": True,
        "shutdown_sec": 30,
        "at": 1,
    }
    await publish_side(
        broker,
        "power-manager/nas/status",
        status | {"sig": sign_message(status, AGENT_SECRET)},
        retain=True,
    )
    await wait_for(hass, lambda: hass.states.get("binary_sensor.agent_nas_online").state == "on")

    # MQTT goes away again: the repair is back.
    assert await hass.config_entries.async_unload(mqtt_entry.entry_id)
    await hass.async_block_till_done()
    assert not policy.mqtt_available
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
