"""Whatever the stored options hold, the entry sets up: protection never dies of a bad file.

The options forms only store valid values; these come from hand-edited or
foreign storage files. Each bad value must cost at most its own feature
(with a repair or a log line), never the entry.
"""

from __future__ import annotations

from typing import Any
from unittest.mock import AsyncMock

from homeassistant.config_entries import ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
from homeassistant.helpers import issue_registry as ir
import pytest

from custom_components.ecoflow_power.const import (
    CONF_ADD_NEW_DEVICES,
    CONF_AGENTS,
    CONF_DEVICES,
    CONF_EXCLUDED_DEVICES,
    CONF_GRID_CONFIRM,
    CONF_POLICY,
    CONF_RESTORE,
    CONF_STALE_AFTER,
    CONF_TOPIC_PREFIX,
    CONF_WAKE_TARGETS,
    DOMAIN,
)
from custom_components.ecoflow_power.nut.config import CONF_NUT
from custom_components.ecoflow_power.policy.settings import PolicySettings
from custom_components.ecoflow_power.sentinel import CONF_SENTINELS

from .conftest import DELTA2_SN, NAS, make_entry

KEYS = [
    CONF_DEVICES,
    CONF_ADD_NEW_DEVICES,
    CONF_EXCLUDED_DEVICES,
    CONF_STALE_AFTER,
    CONF_GRID_CONFIRM,
    CONF_AGENTS,
    CONF_POLICY,
    CONF_TOPIC_PREFIX,
    CONF_RESTORE,
    CONF_WAKE_TARGETS,
    CONF_SENTINELS,
    CONF_NUT,
]
GARBAGE: list[Any] = [
    "x",
    -1,
    None,
    [],
    [1, None],
    {"x": 1},
    {DELTA2_SN: "x"},
    {DELTA2_SN: {"x": None}},
    {"nas": {"device": 5}},
    # Nested values of the wrong type, per feature.
    {DELTA2_SN: {"enabled": True, "restart_soc": "x", "stable_sec": -5}},
    {"nas": {"mac": 5, "port": "x", "broadcast": []}},
    {DELTA2_SN: {"entity_id": None, "kind": "x"}},
    {"enabled": "yes", "port": "x", "users": {"u": "x"}, "stations": {DELTA2_SN: {"name": 5}}},
    {"stations": {DELTA2_SN: {"name": "ups", "soc_threshold": "x", "aliases": 7}}},
]


@pytest.mark.parametrize("key", KEYS)
async def test_a_stored_option_holding_garbage_still_sets_the_entry_up(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session, key: str
) -> None:
    for value in GARBAGE:
        options = {CONF_AGENTS: {"nas": dict(NAS)}} | {key: value}
        entry = make_entry(**options)
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id), (key, value)
        await hass.async_block_till_done()
        assert entry.state is ConfigEntryState.LOADED, (key, value)
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()
        await hass.config_entries.async_remove(entry.entry_id)


async def test_the_repair_names_the_options_that_were_ignored_and_protection_goes_on(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry(**{CONF_AGENTS: {"nas": dict(NAS)}, CONF_POLICY: "x", CONF_SENTINELS: 5})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    issue = ir.async_get(hass).async_get_issue(DOMAIN, f"options_invalid_{entry.entry_id}")
    assert issue is not None
    assert issue.translation_placeholders == {"options": "policy, sentinels"}
    # The agent still guards its station, under the default policy.
    policy = entry.runtime_data.policy
    assert set(policy.agents) == {"nas"}
    assert policy.engines[DELTA2_SN].settings.soc_threshold == PolicySettings().soc_threshold
    # Options saved again by the forms are well formed: the repair goes.
    hass.config_entries.async_update_entry(
        entry,
        options={k: v for k, v in entry.options.items() if k != CONF_SENTINELS} | {CONF_POLICY: {}},
    )
    assert await hass.config_entries.async_reload(entry.entry_id)  # as a saved form does
    await hass.async_block_till_done()
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"options_invalid_{entry.entry_id}") is None


@pytest.mark.parametrize(
    ("step", "key", "opens"),
    [
        ("policy", CONF_POLICY, "policy_settings"),
        ("sentinel", CONF_SENTINELS, "sentinel_settings"),
        ("restore", CONF_RESTORE, "restore_settings"),
        ("add_agent", CONF_AGENTS, "add_agent"),
        ("nut", CONF_NUT, "nut"),
    ],
)
async def test_the_options_form_that_mends_a_bad_option_opens(
    hass: HomeAssistant, *, mock_client: AsyncMock, fake_session, step: str, key: str, opens: str
) -> None:
    """The repair says "set them again": the form for it must open, not fail."""
    entry = make_entry(**{key: [1, None], CONF_TOPIC_PREFIX: "lab/#"})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.runtime_data.policy.prefix == "power-manager"  # not the wildcard
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": step}
    )
    if result["step_id"] == step and opens != step:  # choose the station first
        result = await hass.config_entries.options.async_configure(
            result["flow_id"], {"station": DELTA2_SN}
        )
    assert result["type"] in (FlowResultType.FORM, FlowResultType.MENU)
    assert result["step_id"] == opens
