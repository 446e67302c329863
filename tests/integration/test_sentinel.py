"""The mains sentinel: how each kind of entity is read, and setting one in the options."""

from __future__ import annotations

from unittest.mock import AsyncMock

from homeassistant.core import HomeAssistant, State
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ecoflow_power.sentinel import (
    CONF_SENTINELS,
    SentinelKind,
    mains_present,
    sentinels_from_options,
)

from .conftest import DELTA2_SN, make_entry


@pytest.mark.parametrize(
    ("kind", "state", "present"),
    [
        (SentinelKind.BINARY_SENSOR, "on", True),
        (SentinelKind.BINARY_SENSOR, "off", False),
        (SentinelKind.BINARY_SENSOR, "unavailable", None),
        (SentinelKind.VOLTAGE, "231.4", True),
        (SentinelKind.VOLTAGE, "80", True),
        (SentinelKind.VOLTAGE, "12.0", False),
        (SentinelKind.VOLTAGE, "0", False),
        (SentinelKind.VOLTAGE, "unknown", None),
        (SentinelKind.VOLTAGE, "n/a", None),
        (SentinelKind.NUT_STATUS, "OL", True),
        (SentinelKind.NUT_STATUS, "OL CHRG", True),
        (SentinelKind.NUT_STATUS, "OB DISCHRG", False),
        (SentinelKind.NUT_STATUS, "OB LB", False),
        (SentinelKind.NUT_STATUS, "Online", True),
        (SentinelKind.NUT_STATUS, "On Battery", False),
        (SentinelKind.NUT_STATUS, "unavailable", None),
        (SentinelKind.UNAVAILABLE_MEANS_LOST, "unavailable", False),
        (SentinelKind.UNAVAILABLE_MEANS_LOST, "on", True),
        (SentinelKind.UNAVAILABLE_MEANS_LOST, "off", True),
        (SentinelKind.UNAVAILABLE_MEANS_LOST, "unknown", None),
    ],
)
def test_each_kind_of_sentinel_reads_mains(kind: SentinelKind, state: str, present: bool) -> None:
    assert mains_present(kind, State("sensor.mains", state)) is present


def test_a_missing_entity_says_nothing() -> None:
    for kind in SentinelKind:
        assert mains_present(kind, None) is None


def test_a_placeholder_restored_at_start_is_not_mains_lost() -> None:
    """Until a Zigbee integration loads, HA shows its entities restored as unavailable."""
    restored = State("light.router_plug", "unavailable", {"restored": True})
    assert mains_present(SentinelKind.UNAVAILABLE_MEANS_LOST, restored) is None
    assert mains_present(SentinelKind.BINARY_SENSOR, restored) is None


def test_sentinel_options_that_cannot_be_read_are_left_out() -> None:
    options = {
        CONF_SENTINELS: {
            "A": {"entity_id": "binary_sensor.mains", "kind": "binary_sensor"},
            "B": {"entity_id": "sensor.x", "kind": "no-such-kind"},
            "C": {"kind": "voltage"},
        }
    }
    assert set(sentinels_from_options(options)) == {"A"}


@pytest.fixture
async def entry(hass: HomeAssistant, mock_client: AsyncMock, fake_session) -> MockConfigEntry:
    entry = make_entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def _sentinel_form(hass: HomeAssistant, entry: MockConfigEntry) -> dict:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "sentinel"}
    )
    assert result["step_id"] == "sentinel"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"station": DELTA2_SN}
    )
    assert result["step_id"] == "sentinel_settings"
    assert "Rack" in result["description_placeholders"]["station"]
    return result


async def test_set_and_remove_a_sentinel_in_the_options(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    hass.states.async_set("binary_sensor.rack_mains", "on")
    hass.states.async_set("sensor.rack_voltage", "230")
    result = await _sentinel_form(hass, entry)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"entity_id": "binary_sensor.ghost", "kind": "binary_sensor"}
    )
    assert result["errors"] == {"entity_id": "sentinel_not_found"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"entity_id": "sensor.rack_voltage", "kind": "binary_sensor"}
    )
    assert result["errors"] == {"kind": "sentinel_wrong_kind"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"entity_id": "sensor.rack_voltage", "kind": "voltage"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options[CONF_SENTINELS] == {
        DELTA2_SN: {"entity_id": "sensor.rack_voltage", "kind": "voltage"}
    }
    policy = entry.runtime_data.policy
    assert policy.sentinels.present == {DELTA2_SN: True}
    # The station's engine hears the verdict at once (and keeps it across restarts).
    assert policy.engines[DELTA2_SN].to_dict()["mains"] is True
    hass.states.async_set("sensor.rack_voltage", "0")
    await hass.async_block_till_done()
    assert policy.sentinels.present == {DELTA2_SN: False}
    assert policy.engines[DELTA2_SN].to_dict()["mains"] is False
    hass.states.async_set("sensor.rack_voltage", "unavailable")
    await hass.async_block_till_done()
    assert policy.engines[DELTA2_SN].to_dict()["mains"] is None

    result = await _sentinel_form(hass, entry)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"kind": "voltage"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options[CONF_SENTINELS] == {}
    assert entry.runtime_data.policy.sentinels.present == {}
