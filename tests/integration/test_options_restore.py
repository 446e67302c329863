"""Options flow: the restore rule of a station and the Wake-on-LAN address of a host."""

from __future__ import annotations

from unittest.mock import AsyncMock

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ecoflow_power.const import CONF_AGENTS, CONF_RESTORE, CONF_WAKE_TARGETS

from .conftest import DELTA2_SN, RIVER3_SN, make_entry

NAS = {"device": RIVER3_SN, "secret": "nas-secret", "soc_threshold": None, "delay_sec": None}


@pytest.fixture
async def entry(hass: HomeAssistant, mock_client: AsyncMock, fake_session) -> MockConfigEntry:
    entry = make_entry(**{CONF_AGENTS: {"nas": dict(NAS)}})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def _open(hass: HomeAssistant, entry: MockConfigEntry, step: str) -> dict:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    return await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": step}
    )


async def test_turning_on_the_restore_rule_of_a_station(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    result = await _open(hass, entry, "restore")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"station": RIVER3_SN}
    )
    assert result["step_id"] == "restore_settings"
    defaults = {str(key): key.default() for key in result["data_schema"].schema}
    assert defaults == {"enabled": False, "stable_min": 5, "restart_soc": 30.0, "gap_sec": 30}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"enabled": True, "stable_min": 10, "restart_soc": 40, "gap_sec": 60}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options[CONF_RESTORE][RIVER3_SN] == {
        "enabled": True,
        "stable_sec": 600,
        "restart_soc": 40.0,
        "gap_sec": 60,
    }
    # The reloaded entry runs the rule with them; the other station keeps it off.
    planners = entry.runtime_data.wake.planners
    assert planners[RIVER3_SN].settings.stable_sec == 600
    assert planners[DELTA2_SN].settings.enabled is False
    assert hass.services.has_service("wake_on_lan", "send_magic_packet")


async def test_setting_and_clearing_the_wake_address_of_a_host(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    result = await _open(hass, entry, "wake_target")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"agent_id": "nas", "mac": "AA:BB:CC:DD:EE:01", "broadcast": "192.168.1.255", "port": 9},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options[CONF_WAKE_TARGETS]["nas"] == {
        "mac": "AA:BB:CC:DD:EE:01",
        "broadcast": "192.168.1.255",
        "port": 9,
    }

    result = await _open(hass, entry, "wake_target")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"agent_id": "nas", "port": 9}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert "nas" not in entry.options[CONF_WAKE_TARGETS]


@pytest.mark.parametrize(
    ("typed", "field", "error"),
    [
        ({"mac": "aa:bb:cc"}, "mac", "invalid_mac"),
        ({"mac": "aa:bb:cc:dd:ee:ff", "broadcast": "lab.local"}, "broadcast", "invalid_broadcast"),
    ],
)
async def test_a_bad_wake_address_is_refused_in_the_form(
    hass: HomeAssistant, entry: MockConfigEntry, typed: dict, field: str, error: str
) -> None:
    result = await _open(hass, entry, "wake_target")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"agent_id": "nas", "port": 9, **typed}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {field: error}
    assert CONF_WAKE_TARGETS not in entry.options
