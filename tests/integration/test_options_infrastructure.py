"""Options flow: marking the host that runs Home Assistant or the broker as infrastructure."""

from __future__ import annotations

from datetime import timedelta
import json
from pathlib import Path
from unittest.mock import AsyncMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry, async_fire_time_changed

from custom_components.ecoflow_power.const import CONF_AGENTS, CONF_GRID_CONFIRM, CONF_POLICY

from .conftest import DELTA2_SN, make_entry
from .helpers import feed
from .test_policy_mqtt import delta2_payload

EN = json.loads(
    (
        Path(__file__).resolve().parents[2]
        / "custom_components"
        / "ecoflow_power"
        / "translations"
        / "en.json"
    ).read_text()
)
# A NAS on the rack's station, at the station's threshold. The captured
# Delta 2 cuts its output at 40 %, so every effective threshold is 45 % or more.
NAS = {"device": DELTA2_SN, "secret": "nas-secret", "soc_threshold": None, "delay_sec": None}


@pytest.fixture
async def entry(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session, freezer: FrozenDateTimeFactory
) -> MockConfigEntry:
    freezer.move_to("2026-11-01T12:00:00+00:00")
    entry = make_entry(
        **{
            CONF_GRID_CONFIRM: 0,
            CONF_AGENTS: {"nas": dict(NAS)},
            CONF_POLICY: {DELTA2_SN: {"soc_threshold": 20, "debounce_sec": 10, "delay_sec": 30}},
        }
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def _step(hass: HomeAssistant, entry: MockConfigEntry, step: str) -> dict:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    return await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": step}
    )


def _described(step: str) -> bool:
    texts = EN["options"]["step"][step]
    return bool(texts["data"]["infrastructure"] and texts["data_description"]["infrastructure"])


async def _add_ha_host(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    result = await _step(hass, entry, "add_agent")
    assert "infrastructure" in result["data_schema"].schema
    assert _described("add_agent")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "agent_id": "ha-vm",
            "station": DELTA2_SN,
            "soc_threshold": 60,
            "infrastructure": True,
        },
    )
    assert result["step_id"] == "agent_secret"
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()


async def test_the_infrastructure_flag_is_saved_and_reaches_the_engine(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    await _add_ha_host(hass, entry)
    stored = entry.options[CONF_AGENTS]
    assert stored["ha-vm"]["infrastructure"] is True
    assert "infrastructure" not in stored["nas"]  # other hosts keep their shape
    engine = entry.runtime_data.policy.engines[DELTA2_SN]
    assert engine.agents["ha-vm"].infrastructure is True
    assert engine.agents["nas"].infrastructure is False

    # Editing the host shows the flag as set; clearing it reaches the engine too.
    result = await _step(hass, entry, "edit_agent")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"agent_id": "ha-vm"}
    )
    assert result["step_id"] == "agent_settings"
    assert _described("agent_settings")
    marker = next(m for m in result["data_schema"].schema if str(m) == "infrastructure")
    assert marker.description == {"suggested_value": True}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"station": DELTA2_SN, "soc_threshold": 60, "infrastructure": False}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert "infrastructure" not in entry.options[CONF_AGENTS]["ha-vm"]
    engine = entry.runtime_data.policy.engines[DELTA2_SN]
    assert engine.agents["ha-vm"].infrastructure is False


async def test_when_the_ha_host_is_due_every_other_host_of_the_station_goes_first(
    hass: HomeAssistant, entry: MockConfigEntry, fake_session, freezer: FrozenDateTimeFactory
) -> None:
    await _add_ha_host(hass, entry)
    session = fake_session.instances[-1]
    # On battery at 55 %: under the HA host's own 60 %, above the NAS's 45 %.
    await feed(hass, session, DELTA2_SN, delta2_payload(grid=True, soc=90))
    await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=55))
    freezer.tick(timedelta(seconds=11))  # past the debounce
    async_fire_time_changed(hass)
    await hass.async_block_till_done()
    views = entry.runtime_data.policy.data[DELTA2_SN].agents
    assert views["nas"].soc_threshold < 55 < views["ha-vm"].soc_threshold
    assert views["ha-vm"].fsd is True
    # the NAS is told to shut down although its own threshold is not reached
    assert views["nas"].fsd is True
