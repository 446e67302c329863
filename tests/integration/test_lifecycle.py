"""Setup errors, unload, repairs, device triggers, and devices joining or leaving."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import AsyncMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.components import automation
from homeassistant.components.device_automation import DeviceAutomationType
from homeassistant.config_entries import SOURCE_REAUTH, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.setup import async_setup_component
import pytest
from pytest_homeassistant_custom_component.common import (
    MockConfigEntry,
    async_fire_time_changed,
    async_get_device_automations,
    async_mock_service,
)

from custom_components.ecoflow_power.const import CONF_AGENTS, DOMAIN, EVENT_POLICY
from custom_components.ecoflow_power.ecoflow.api import DeviceInfo
from custom_components.ecoflow_power.ecoflow.errors import (
    EcoflowAuthError,
    EcoflowConnectionError,
)

from .conftest import ACCOUNT, DELTA2_SN, RIVER3_SN, make_entry
from .helpers import feed


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


@pytest.mark.parametrize(
    "error", [EcoflowConnectionError("down"), EcoflowAuthError("8513")], ids=["down", "refused"]
)
async def test_first_start_without_the_cloud_still_loads(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session, error: Exception
) -> None:
    """No cache yet and the cloud fails: the entry loads from the selected serials."""
    mock_client.devices.side_effect = error
    entry = make_entry()
    await _setup(hass, entry)
    assert entry.state is ConfigEntryState.LOADED
    assert set(entry.runtime_data.telemetry.devices) == {RIVER3_SN, DELTA2_SN}
    flows = hass.config_entries.flow.async_progress()
    sources = [flow["context"]["source"] for flow in flows]
    assert sources == ([SOURCE_REAUTH] if isinstance(error, EcoflowAuthError) else [])


async def test_unload_stops_the_cloud_session(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry()
    await _setup(hass, entry)
    session = fake_session.instances[-1]
    assert session.started
    assert not session.stopped
    assert session.client_id.startswith("HomeAssistant-ecoflow_power-")
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert session.stopped
    assert entry.state is ConfigEntryState.NOT_LOADED


async def test_undecodable_device_raises_a_repair_and_clears_it(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry()
    await _setup(hass, entry)
    session = fake_session.instances[-1]
    for _ in range(20):
        await feed(hass, session, RIVER3_SN, b"\x0a\x03\xff\xff")
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"undecodable_device_{RIVER3_SN}")
    assert issue is not None
    assert issue.translation_placeholders["model"] == "River 3"
    from .helpers import capture_bytes

    await feed(hass, session, RIVER3_SN, capture_bytes("pb01_river3_getreply_maodijim.bin"))
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"undecodable_device_{RIVER3_SN}") is None


async def test_cloud_unreachable_for_long_raises_a_repair(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session, freezer: FrozenDateTimeFactory
) -> None:
    entry = make_entry()
    await _setup(hass, entry)
    session = fake_session.instances[-1]
    session.on_connection_change(False)
    issue_id = f"cloud_unreachable_{entry.entry_id}"
    freezer.tick(timedelta(minutes=10))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None
    freezer.tick(timedelta(minutes=25))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is not None
    session.on_connection_change(True)
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_new_device_on_the_account_is_picked_up(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session, freezer: FrozenDateTimeFactory
) -> None:
    entry = make_entry()
    await _setup(hass, entry)
    new = DeviceInfo(
        sn="R631ZAB5XXXX0009", product_name="RIVER 3 Plus", device_name="Garage", online=True
    )
    mock_client.devices.return_value = [*ACCOUNT, new]
    freezer.tick(timedelta(minutes=16))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert new.sn in entry.runtime_data.telemetry.devices
    assert entry.runtime_data.telemetry.models[new.sn].name == "River 3 Plus"


async def test_only_a_device_no_longer_managed_can_be_deleted_from_the_ui(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry()
    await _setup(hass, entry)
    registry = dr.async_get(hass)
    delta = registry.async_get_device_by_identifier((DOMAIN, DELTA2_SN), entry.entry_id)
    river = registry.async_get_device_by_identifier((DOMAIN, RIVER3_SN), entry.entry_id)
    # While managed, a station cannot be deleted.
    assert await async_remove_device(hass, entry, delta.id) is False
    assert await async_remove_device(hass, entry, river.id) is False
    # A device of ours the entry does not manage (one left by another version, say).
    leftover = registry.async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, "R631ZAB5XXXX0009")}
    )
    assert await async_remove_device(hass, entry, leftover.id) is True


async def async_remove_device(hass: HomeAssistant, entry: MockConfigEntry, device_id: str) -> bool:
    from custom_components.ecoflow_power import async_remove_config_entry_device

    device = dr.async_get(hass).async_get(device_id)
    return await async_remove_config_entry_device(hass, entry, device)


async def test_device_triggers_fire_automations(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
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
    await _setup(hass, entry)
    registry = dr.async_get(hass)
    station = registry.async_get_device_by_identifier((DOMAIN, RIVER3_SN), entry.entry_id)
    triggers = await async_get_device_automations(hass, DeviceAutomationType.TRIGGER, station.id)
    types = {trigger["type"] for trigger in triggers if trigger["domain"] == DOMAIN}
    assert types == {
        "grid_lost",
        "grid_restored",
        "battery_critical",
        "shutdown_sent",
        "shutdown_aborted",
        "power_restored",
        "nut_client_left",
    }

    calls = async_mock_service(hass, "test", "grid_lost")
    assert await async_setup_component(
        hass,
        automation.DOMAIN,
        {
            automation.DOMAIN: [
                {
                    "trigger": {
                        "platform": "device",
                        "domain": DOMAIN,
                        "device_id": station.id,
                        "type": "grid_lost",
                    },
                    "action": {"service": "test.grid_lost"},
                }
            ]
        },
    )
    hass.bus.async_fire(EVENT_POLICY, {"type": "grid_restored", "device_id": station.id})
    hass.bus.async_fire(EVENT_POLICY, {"type": "grid_lost", "device_id": "another"})
    await hass.async_block_till_done()
    assert calls == []
    hass.bus.async_fire(EVENT_POLICY, {"type": "grid_lost", "device_id": station.id})
    await hass.async_block_till_done()
    assert len(calls) == 1
