"""Devices, repairs and files that outlive what they belong to are removed."""

from __future__ import annotations

from datetime import timedelta
from typing import Any
from unittest.mock import AsyncMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import device_registry as dr, entity_registry as er, issue_registry as ir
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.ecoflow_power.agents import agent_device_identifier
from custom_components.ecoflow_power.const import (
    CONF_ADD_NEW_DEVICES,
    CONF_AGENTS,
    CONF_DEVICES,
    CONF_EXCLUDED_DEVICES,
    DOMAIN,
)
from custom_components.ecoflow_power.ecoflow.errors import EcoflowConnectionError
from custom_components.ecoflow_power.issues import raise_repair

from .conftest import ACCOUNT, DELTA2_SN, RIVER3_SN, make_entry
from .helpers import feed

NAS = {"device": RIVER3_SN, "secret": "s", "soc_threshold": None, "delay_sec": None}
DESKTOP = {"device": DELTA2_SN, "secret": "t", "soc_threshold": None, "delay_sec": None}


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


def _device(hass: HomeAssistant, entry: MockConfigEntry, identifier: str) -> dr.DeviceEntry | None:
    return dr.async_get(hass).async_get_device_by_identifier((DOMAIN, identifier), entry.entry_id)


async def test_a_station_removed_from_the_account_leaves_the_device_list(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session, freezer: FrozenDateTimeFactory
) -> None:
    entry = make_entry()
    await _setup(hass, entry)
    delta = _device(hass, entry, DELTA2_SN)
    assert delta is not None
    entities = er.async_entries_for_device(er.async_get(hass), delta.id)
    assert entities
    mock_client.devices.return_value = [ACCOUNT[0]]
    freezer.tick(timedelta(minutes=16))  # the periodic account listing sees it gone
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    assert DELTA2_SN not in entry.runtime_data.telemetry.devices
    assert _device(hass, entry, DELTA2_SN) is None
    assert all(er.async_get(hass).async_get(e.entity_id) is None for e in entities)
    assert _device(hass, entry, RIVER3_SN) is not None


async def test_a_station_deselected_in_the_options_leaves_the_device_list(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry()
    await _setup(hass, entry)
    hass.config_entries.async_update_entry(
        entry,
        options={
            **entry.options,
            CONF_DEVICES: [RIVER3_SN],
            CONF_EXCLUDED_DEVICES: [DELTA2_SN],
            CONF_ADD_NEW_DEVICES: False,
        },
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert _device(hass, entry, DELTA2_SN) is None
    assert _device(hass, entry, RIVER3_SN) is not None


async def test_an_agent_removed_in_the_options_leaves_the_device_list(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry(**{CONF_AGENTS: {"nas": NAS, "desktop": DESKTOP}})
    await _setup(hass, entry)
    assert _device(hass, entry, agent_device_identifier("desktop")) is not None
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_AGENTS: {"nas": NAS}}
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert _device(hass, entry, agent_device_identifier("desktop")) is None
    assert _device(hass, entry, agent_device_identifier("nas")) is not None
    assert _device(hass, entry, DELTA2_SN) is not None


async def test_an_agent_with_broken_options_keeps_its_device_until_removed(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    """Fixing the options brings the agent back with its names and areas."""
    entry = make_entry(**{CONF_AGENTS: {"nas": NAS}})
    await _setup(hass, entry)
    hass.config_entries.async_update_entry(
        entry, options={**entry.options, CONF_AGENTS: {"nas": {"secret": "no device"}}}
    )
    assert await hass.config_entries.async_reload(entry.entry_id)
    await hass.async_block_till_done()
    assert _device(hass, entry, agent_device_identifier("nas")) is not None


async def test_with_the_account_unknown_no_station_is_judged_stale(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    """First start, no cache, cloud down: the selection says nothing of the account."""
    mock_client.devices.side_effect = EcoflowConnectionError("down")
    entry = make_entry(**{CONF_DEVICES: [RIVER3_SN]})
    entry.add_to_hass(hass)
    garage = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, "R631ZAB5XXXX0009")}
    )
    gone_agent = dr.async_get(hass).async_get_or_create(
        config_entry_id=entry.entry_id, identifiers={(DOMAIN, agent_device_identifier("old"))}
    )
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert dr.async_get(hass).async_get(garage.id) is not None
    assert dr.async_get(hass).async_get(gone_agent.id) is None


async def test_a_deleted_entry_takes_its_repairs_and_files_with_it(
    hass: HomeAssistant,
    hass_storage: dict[str, Any],
    mock_client: AsyncMock,
    fake_session,
    freezer: FrozenDateTimeFactory,
) -> None:
    entry = make_entry(**{CONF_AGENTS: {"nas": NAS, "broken": {"secret": "x"}}})
    await _setup(hass, entry)
    session = fake_session.instances[-1]
    for _ in range(20):
        await feed(hass, session, RIVER3_SN, b"\x0a\x03\xff\xff")
    session.on_connection_change(False)
    freezer.tick(timedelta(minutes=35))
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    ours = {issue_id for domain, issue_id in ir.async_get(hass).issues if domain == DOMAIN}
    assert {
        f"undecodable_device_{RIVER3_SN}",
        f"cloud_unreachable_{entry.entry_id}",
        f"agent_options_invalid_{entry.entry_id}",
    } <= ours
    assert await hass.config_entries.async_unload(entry.entry_id)
    await hass.async_block_till_done()
    files = {key for key in hass_storage if key.startswith(f"{DOMAIN}.{entry.entry_id}.")}
    assert {f"{DOMAIN}.{entry.entry_id}.{kind}" for kind in ("policy", "wake", "devices")} <= files

    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    assert not [issue for domain, issue in ir.async_get(hass).issues if domain == DOMAIN]
    assert not [key for key in hass_storage if key.startswith(f"{DOMAIN}.{entry.entry_id}.")]


async def test_deleting_one_entry_leaves_the_other_entrys_repairs(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry(**{CONF_AGENTS: {"nas": NAS}})
    await _setup(hass, entry)
    other = MockConfigEntry(
        domain=DOMAIN,
        unique_id="another-account",
        options={CONF_DEVICES: ["P351ZAHAPH000001"], CONF_AGENTS: {"nas": NAS}},
    )
    other.add_to_hass(hass)
    raise_repair(hass, f"cloud_unreachable_{entry.entry_id}", "cloud_unreachable")
    raise_repair(hass, f"undecodable_device_{RIVER3_SN}", "undecodable_device")
    raise_repair(hass, f"cloud_unreachable_{other.entry_id}", "cloud_unreachable")
    raise_repair(hass, "undecodable_device_P351ZAHAPH000001", "undecodable_device")
    # An agent id both entries use: the repair may be the other's, so it stays.
    raise_repair(hass, "agent_clock_skew_nas", "agent_clock_skew")

    await hass.config_entries.async_remove(entry.entry_id)
    await hass.async_block_till_done()
    left = {issue_id for domain, issue_id in ir.async_get(hass).issues if domain == DOMAIN}
    assert left == {
        f"cloud_unreachable_{other.entry_id}",
        "undecodable_device_P351ZAHAPH000001",
        "agent_clock_skew_nas",
    }
