"""Entities of a power station, from real captured payloads."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import AsyncMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
)
from syrupy.assertion import SnapshotAssertion

from custom_components.ecoflow_power.const import DOMAIN

from .conftest import DELTA2_SN, RIVER3_SN
from .helpers import capture_bytes, capture_json, feed


@pytest.fixture
async def loaded(
    hass: HomeAssistant,
    mock_client: AsyncMock,
    config_entry: MockConfigEntry,
    fake_session,
    freezer: FrozenDateTimeFactory,
):
    freezer.move_to("2026-11-01T12:00:00+00:00")
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    return fake_session.instances[-1]


def _states(hass: HomeAssistant, entry: MockConfigEntry) -> dict[str, str]:
    registry = er.async_get(hass)
    result = {}
    for entity in er.async_entries_for_config_entry(registry, entry.entry_id):
        state = hass.states.get(entity.entity_id)
        result[entity.entity_id] = state.state if state else "disabled"
    return dict(sorted(result.items()))


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_river3_capture_entities(
    hass: HomeAssistant,
    loaded,
    config_entry: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    await feed(hass, loaded, RIVER3_SN, capture_bytes("pb01_river3_getreply_maodijim.bin"))
    states = {k: v for k, v in _states(hass, config_entry).items() if "study_ups" in k}
    assert states == snapshot
    # Values the capture's source states (maodijim's decoded log).
    assert hass.states.get("sensor.study_ups_ac_input_power").state == "51"
    assert hass.states.get("sensor.study_ups_input_power").state == "50"
    # flow_info_ac_in 2 with 50 W AC in: the grid is present.
    assert hass.states.get("binary_sensor.study_ups_grid_power").state == "on"


@pytest.mark.usefixtures("entity_registry_enabled_by_default")
async def test_delta2_capture_entities(
    hass: HomeAssistant,
    loaded,
    config_entry: MockConfigEntry,
    snapshot: SnapshotAssertion,
) -> None:
    payload = capture_json("js01_delta2_getreply_latestQuotas_iobroker.json")
    await feed(hass, loaded, DELTA2_SN, payload)
    states = {k: v for k, v in _states(hass, config_entry).items() if "rack" in k}
    assert states == snapshot
    # Source: lcdShowSoc 87, wattsOutSum 344, acInVol 230226 mV, dsgRemainTime 139.
    assert hass.states.get("sensor.rack_battery").state == "87"
    assert hass.states.get("sensor.rack_output_power").state == "344"
    assert hass.states.get("sensor.rack_ac_input_voltage").state == "230"
    # AC voltage present while not charging (maxChargeSoc 50 < 87): grid present.
    assert hass.states.get("binary_sensor.rack_grid_power").state == "on"


async def test_device_registry_entry(
    hass: HomeAssistant, loaded, config_entry: MockConfigEntry
) -> None:
    device = dr.async_get(hass).async_get_device_by_identifier(
        (DOMAIN, RIVER3_SN), config_entry.entry_id
    )
    assert device is not None
    assert device.manufacturer == "EcoFlow"
    assert device.model == "River 3"
    assert device.serial_number == RIVER3_SN
    assert device.name == "Study UPS"
    assert device.sw_version is None
    # Firmware is learned from telemetry (RuntimePropertyUpload pd_firm_ver).
    await feed(hass, loaded, RIVER3_SN, capture_bytes("pb01_river3_getreply_maodijim.bin"))
    device = dr.async_get(hass).async_get(device.id)
    assert device.sw_version == "2.0.1.11"


async def test_before_any_telemetry_measurements_unavailable_grid_unknown(
    hass: HomeAssistant, loaded
) -> None:
    assert hass.states.get("sensor.study_ups_battery").state == STATE_UNAVAILABLE
    assert hass.states.get("binary_sensor.study_ups_grid_power").state == STATE_UNKNOWN


async def test_stale_telemetry_goes_unavailable_and_recovers(
    hass: HomeAssistant, loaded, freezer: FrozenDateTimeFactory
) -> None:
    payload = capture_bytes("pb01_river3_getreply_maodijim.bin")
    await feed(hass, loaded, RIVER3_SN, payload)
    assert hass.states.get("sensor.study_ups_battery").state != STATE_UNAVAILABLE
    assert hass.states.get("binary_sensor.study_ups_grid_power").state == "on"
    assert hass.states.get("binary_sensor.study_ups_cloud_connection").state == "on"

    freezer.tick(timedelta(seconds=130))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    # Stale: measurements unavailable; the grid says it does not know, not a stale "on".
    assert hass.states.get("sensor.study_ups_battery").state == STATE_UNAVAILABLE
    assert hass.states.get("binary_sensor.study_ups_grid_power").state == STATE_UNKNOWN
    assert hass.states.get("binary_sensor.study_ups_cloud_connection").state == "off"

    await feed(hass, loaded, RIVER3_SN, payload)
    assert hass.states.get("sensor.study_ups_battery").state != STATE_UNAVAILABLE
    assert hass.states.get("binary_sensor.study_ups_grid_power").state == "on"


async def test_flood_of_identical_and_jittering_messages_writes_no_state(
    hass: HomeAssistant, loaded, freezer: FrozenDateTimeFactory
) -> None:
    base = capture_json("js01_delta2_getreply_latestQuotas_iobroker.json")
    await feed(hass, loaded, DELTA2_SN, base)
    changes: list[str] = []
    hass.bus.async_listen("state_changed", lambda event: changes.append(event.data["entity_id"]))
    quota_map = base["data"]["quotaMap"]
    for index in range(50):
        freezer.tick(timedelta(seconds=1))
        jittered = dict(quota_map)
        # Below display precision: 230.226 V -> 230.3 V, 344 W -> 344.2 W.
        jittered["inv.acInVol"] = 230226 + (index % 3) * 40
        jittered["pd.wattsOutSum"] = 344 + (index % 2) * 0.2
        await feed(
            hass, loaded, DELTA2_SN, {**base, "data": {**base["data"], "quotaMap": jittered}}
        )
    # Only the diagnostic "last telemetry" sensor may change (it is disabled by default).
    assert [c for c in changes if "last_telemetry" not in c] == []
