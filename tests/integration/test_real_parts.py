"""The whole telemetry path on real parts.

The cloud stand-in serves the signed Open API over real HTTP and publishes
real (obfuscated) protobuf and JSON telemetry to a real mosquitto; the
integration signs in, connects with the certificate credentials, decodes, and
HA entities show what the simulated stations report.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ecoflow_power.account import account_unique_id
from custom_components.ecoflow_power.const import (
    CONF_ACCESS_KEY,
    CONF_ADD_NEW_DEVICES,
    CONF_BASE_URL,
    CONF_GRID_CONFIRM,
    CONF_REGION,
    CONF_SECRET_KEY,
    DOMAIN,
)
from simulator.devices import DEFAULT_DELTA2_SN, DEFAULT_RIVER3_SN, default_devices
from simulator.standin import StandIn
from tests.helpers.mosquitto import MosquittoBroker

from .mqtt_helpers import wait_for

ACCESS_KEY = "real-parts-access-key"
SECRET_KEY = "real-parts-secret-key"
ACCOUNT = "open-real-parts-0001"


@pytest.fixture
async def standin(socket_enabled: None) -> AsyncIterator[StandIn]:
    broker = MosquittoBroker(users={ACCOUNT: "cloud-pass", "simulator": "sim-pass"})
    broker.start()
    standin = StandIn(
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        broker_host=broker.host,
        broker_port=broker.port,
        devices=default_devices(),
        account=ACCOUNT,
        mqtt_password="cloud-pass",
        publisher_username="simulator",
        publisher_password="sim-pass",
        time_scale=60,
        publish_interval=0.2,
    )
    await standin.start()
    try:
        yield standin
    finally:
        await standin.stop()
        broker.cleanup()


def _entry(base_url: str, secret_key: str = SECRET_KEY) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="EcoFlow (stand-in)",
        unique_id=account_unique_id(ACCESS_KEY),
        data={
            CONF_ACCESS_KEY: ACCESS_KEY,
            CONF_SECRET_KEY: secret_key,
            CONF_REGION: "eu",
            CONF_BASE_URL: base_url,
        },
        options={CONF_ADD_NEW_DEVICES: True, CONF_GRID_CONFIRM: 1},
    )


async def test_simulated_stations_show_up_as_entities(
    hass: HomeAssistant, standin: StandIn
) -> None:
    entry = _entry(standin.url)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    telemetry = entry.runtime_data.telemetry
    assert set(telemetry.devices) == {DEFAULT_RIVER3_SN, DEFAULT_DELTA2_SN}

    river_battery = "sensor.river_3_simulated_battery"
    await wait_for(hass, lambda: _number(hass, river_battery) is not None, seconds=20)
    await wait_for(
        hass, lambda: _number(hass, "sensor.delta_2_simulated_battery") is not None, seconds=20
    )
    simulated_soc = standin.device(DEFAULT_RIVER3_SN).state.combined_soc
    assert abs(_number(hass, river_battery) - simulated_soc) <= 2
    assert hass.states.get("binary_sensor.river_3_simulated_grid_power").state == "on"
    assert hass.states.get("binary_sensor.river_3_simulated_cloud_connection").state == "on"
    # The Delta 2 has an extra battery: a sensor per pack appears.
    await wait_for(
        hass, lambda: hass.states.get("sensor.delta_2_simulated_battery_pack_2") is not None
    )

    # The grid goes down at the stand-in: HA follows once the change is confirmed.
    standin.set_scenario(DEFAULT_RIVER3_SN, "outage", {"drain_pct_per_min": 2})
    await wait_for(
        hass,
        lambda: hass.states.get("binary_sensor.river_3_simulated_grid_power").state == "off",
        seconds=20,
    )
    assert hass.states.get("sensor.river_3_simulated_charge_state").state == "discharging"
    assert _number(hass, "sensor.river_3_simulated_battery_power") < 0

    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


async def test_wrong_secret_at_the_stand_in_starts_reauth(
    hass: HomeAssistant, standin: StandIn
) -> None:
    entry = _entry(standin.url, secret_key="not-the-secret")
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    # The stand-in checks signatures like the real cloud: 8513, so reauth;
    # the entry still loads so the policy keeps running meanwhile.
    assert entry.state is ConfigEntryState.LOADED
    assert [flow["context"]["source"] for flow in hass.config_entries.flow.async_progress()] == [
        "reauth"
    ]
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()


def _number(hass: HomeAssistant, entity_id: str) -> float | None:
    state = hass.states.get(entity_id)
    try:
        return float(state.state) if state else None
    except ValueError:
        return None
