"""Options flow: the shutdown policy of a station, and adding, editing, removing agents."""

from __future__ import annotations

from unittest.mock import AsyncMock

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ecoflow_power.const import (
    CONF_AGENTS,
    CONF_GRID_CONFIRM,
    CONF_POLICY,
    CONF_STALE_AFTER,
    CONF_TOPIC_PREFIX,
    DEFAULT_GRID_CONFIRM,
    DEFAULT_STALE_AFTER,
)

from .conftest import DELTA2_SN, RIVER3_SN, make_entry

NAS = {"device": RIVER3_SN, "secret": "old-secret", "soc_threshold": 15.0, "delay_sec": None}


@pytest.fixture
async def entry(hass: HomeAssistant, mock_client: AsyncMock, fake_session) -> MockConfigEntry:
    entry = make_entry(**{CONF_AGENTS: {"nas": dict(NAS)}})
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    return entry


async def _menu(hass: HomeAssistant, entry: MockConfigEntry, step: str) -> dict:
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    assert set(result["menu_options"]) == {
        "telemetry",
        "policy",
        "sentinel",
        "add_agent",
        "edit_agent",
        "remove_agent",
        "restore",
        "wake_target",
        "nut",
    }
    return await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": step}
    )


async def test_policy_settings_of_a_station(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    result = await _menu(hass, entry, "policy")
    assert result["step_id"] == "policy"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"station": DELTA2_SN}
    )
    assert result["step_id"] == "policy_settings"
    assert "Rack" in result["description_placeholders"]["station"]
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "soc_threshold": 30,
            "runtime_threshold_min": 0,
            "debounce_sec": 90,
            "delay_sec": 45,
            "ttl_sec": 600,
            "cooldown_sec": 900,
            "dry_run": True,
            CONF_TOPIC_PREFIX: " lab/ups/ ",
        },
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options[CONF_POLICY][DELTA2_SN] == {
        "soc_threshold": 30.0,
        "runtime_threshold_min": None,
        "debounce_sec": 90,
        "delay_sec": 45,
        "ttl_sec": 600,
        "cooldown_sec": 900,
        "dry_run": True,
        # Not in the submitted form: the defaults the form showed.
        "restore_confirm_sec": 60,
        "estimate_margin_sec": 120,
        "blind_mode": True,
    }
    assert entry.options[CONF_TOPIC_PREFIX] == "lab/ups"
    # The reloaded engine runs with them.
    engine = entry.runtime_data.policy.engines[DELTA2_SN]
    assert engine.settings.soc_threshold == 30
    assert engine.settings.dry_run is True
    assert entry.runtime_data.policy.prefix == "lab/ups"


async def test_add_agent_shows_its_secret_once(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    result = await _menu(hass, entry, "add_agent")
    assert result["step_id"] == "add_agent"
    base = {"station": DELTA2_SN, "soc_threshold": 40}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], base | {"agent_id": "bad id!"}
    )
    assert result["errors"] == {"agent_id": "invalid_agent_id"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], base | {"agent_id": "nas"}
    )
    assert result["errors"] == {"agent_id": "agent_exists"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], base | {"agent_id": "vm-low-priority"}
    )
    assert result["step_id"] == "agent_secret"
    secret = result["description_placeholders"]["secret"]
    assert len(secret) >= 40
    assert result["description_placeholders"]["prefix"] == "power-manager"
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    agent = entry.options[CONF_AGENTS]["vm-low-priority"]
    assert agent == {
        "device": DELTA2_SN,
        "secret": secret,
        "soc_threshold": 40.0,
        "delay_sec": None,
    }
    assert "vm-low-priority" in entry.runtime_data.policy.agents
    assert hass.states.get("binary_sensor.agent_vm_low_priority_online") is not None


async def test_edit_agent_keeps_or_regenerates_the_secret(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    result = await _menu(hass, entry, "edit_agent")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"agent_id": "nas"}
    )
    assert result["step_id"] == "agent_settings"
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"station": DELTA2_SN, "delay_sec": 10}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options[CONF_AGENTS]["nas"] == {
        "device": DELTA2_SN,
        "secret": "old-secret",
        "soc_threshold": None,
        "delay_sec": 10,
    }

    result = await _menu(hass, entry, "edit_agent")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"agent_id": "nas"}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"station": DELTA2_SN, "new_secret": True}
    )
    assert result["step_id"] == "agent_secret"
    new_secret = result["description_placeholders"]["secret"]
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()
    assert entry.options[CONF_AGENTS]["nas"]["secret"] == new_secret != "old-secret"


async def test_remove_agent(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    result = await _menu(hass, entry, "remove_agent")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"agents": ["nas"]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options[CONF_AGENTS] == {}
    assert entry.runtime_data.policy.agents == {}


async def test_menu_of_an_entry_without_agents(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["menu_options"] == [
        "telemetry",
        "policy",
        "sentinel",
        "add_agent",
        "restore",
        "nut",
    ]


async def test_policy_step_skips_the_station_choice_with_one_station(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry(devices=[RIVER3_SN], excluded_devices=[DELTA2_SN])
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "policy"}
    )
    assert result["step_id"] == "policy_settings"


async def test_menu_of_an_unloaded_entry_offers_telemetry_only(
    hass: HomeAssistant, mock_client: AsyncMock
) -> None:
    entry = make_entry()
    entry.add_to_hass(hass)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    assert result["menu_options"] == ["telemetry"]


async def _policy_form(hass: HomeAssistant, entry: MockConfigEntry) -> dict:
    result = await _menu(hass, entry, "policy")
    return await hass.config_entries.options.async_configure(
        result["flow_id"], {"station": DELTA2_SN}
    )


FORM = {
    "soc_threshold": 25,
    "runtime_threshold_min": 0,
    "debounce_sec": 30,
    "delay_sec": 30,
    "ttl_sec": 300,
    "cooldown_sec": 0,
    "restore_confirm_sec": 60,
    "estimate_margin_sec": 120,
    "blind_mode": True,
    "dry_run": False,
    CONF_TOPIC_PREFIX: "power-manager",
}


async def test_cooldown_zero_is_a_valid_setting(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    result = await _policy_form(hass, entry)
    result = await hass.config_entries.options.async_configure(result["flow_id"], FORM)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.options[CONF_POLICY][DELTA2_SN]["cooldown_sec"] == 0
    assert entry.runtime_data.policy.engines[DELTA2_SN].settings.cooldown_sec == 0
    from homeassistant.helpers import issue_registry as ir

    assert not ir.async_get(hass).async_get_issue(
        "ecoflow_power", f"policy_settings_invalid_{DELTA2_SN}"
    )


async def test_out_of_range_values_are_refused_in_the_form(
    hass: HomeAssistant, entry: MockConfigEntry
) -> None:
    from homeassistant.data_entry_flow import InvalidData

    result = await _policy_form(hass, entry)
    with pytest.raises(InvalidData):
        await hass.config_entries.options.async_configure(result["flow_id"], FORM | {"ttl_sec": 0})
    assert CONF_POLICY not in entry.options


async def test_saving_the_form_repairs_invalid_stored_settings(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    from homeassistant.helpers import issue_registry as ir

    entry = make_entry(
        **{CONF_POLICY: {DELTA2_SN: {"resend_interval_sec": 0, "hysteresis_pct": 3.0}}}
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    issue_id = f"policy_settings_invalid_{DELTA2_SN}"
    assert ir.async_get(hass).async_get_issue("ecoflow_power", issue_id)
    result = await hass.config_entries.options.async_init(entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "policy"}
    )
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"station": DELTA2_SN}
    )
    result = await hass.config_entries.options.async_configure(result["flow_id"], FORM)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert "resend_interval_sec" not in entry.options[CONF_POLICY][DELTA2_SN]
    assert not ir.async_get(hass).async_get_issue("ecoflow_power", issue_id)


async def test_an_agent_fed_by_two_stations(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    result = await _menu(hass, entry, "add_agent")
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {
            "agent_id": "rack-server",
            "station": DELTA2_SN,
            "feeds": [RIVER3_SN, DELTA2_SN],
            "feed_rule": "any",
        },
    )
    result = await hass.config_entries.options.async_configure(result["flow_id"], {})
    await hass.async_block_till_done()
    stored = entry.options[CONF_AGENTS]["rack-server"]
    # Its own station is not a feed of its own.
    assert (stored["feeds"], stored["feed_rule"]) == ([RIVER3_SN], "any")
    policy = entry.runtime_data.policy
    assert policy.engines[DELTA2_SN].agents["rack-server"].feeds == (RIVER3_SN,)
    assert policy.engines[RIVER3_SN].agents["rack-server"].observe_only


async def test_a_hand_edited_stale_time_still_protects_with_the_default_and_a_repair(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    from homeassistant.helpers import issue_registry as ir

    # A stale time of 0 and a grid confirmation that is no number (a hand-edited
    # storage file): the entry must still set up and protect.
    entry = make_entry(
        **{CONF_AGENTS: {"nas": dict(NAS)}, CONF_STALE_AFTER: 0, CONF_GRID_CONFIRM: "ten"}
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    runtime = entry.runtime_data
    assert runtime.telemetry.stale_after_sec == DEFAULT_STALE_AFTER
    assert runtime.policy.engines[RIVER3_SN].settings.stale_after_sec == DEFAULT_STALE_AFTER
    issue_id = f"telemetry_settings_invalid_{entry.entry_id}"
    issue = ir.async_get(hass).async_get_issue("ecoflow_power", issue_id)
    assert issue is not None
    assert issue.translation_placeholders["stale"] == str(DEFAULT_STALE_AFTER)
    assert "stale_after_sec = 0" in issue.translation_placeholders["error"]
    assert "grid_confirm_sec = 'ten'" in issue.translation_placeholders["error"]
    # The policy form works with the value in effect.
    result = await _policy_form(hass, entry)
    result = await hass.config_entries.options.async_configure(result["flow_id"], FORM)
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    # The telemetry form offers the values in effect; saving it clears the repair.
    result = await _menu(hass, entry, "telemetry")
    defaults = {str(key): key.default() for key in result["data_schema"].schema}
    assert defaults[CONF_STALE_AFTER] == DEFAULT_STALE_AFTER
    assert defaults[CONF_GRID_CONFIRM] == DEFAULT_GRID_CONFIRM
    result = await hass.config_entries.options.async_configure(
        result["flow_id"],
        {"devices": [RIVER3_SN, DELTA2_SN], "add_new_devices": True}
        | {CONF_STALE_AFTER: 90, CONF_GRID_CONFIRM: 5},
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert entry.runtime_data.telemetry.stale_after_sec == 90
    assert ir.async_get(hass).async_get_issue("ecoflow_power", issue_id) is None


@pytest.mark.parametrize("prefix", ["power/+", "lab/#", "$SYS/ups", "", "/", "lab\x00ups"])
async def test_a_topic_prefix_no_command_could_be_published_under_is_refused(
    hass: HomeAssistant, entry: MockConfigEntry, prefix: str
) -> None:
    result = await _policy_form(hass, entry)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], FORM | {CONF_TOPIC_PREFIX: prefix}
    )
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {CONF_TOPIC_PREFIX: "invalid_topic_prefix"}
    assert CONF_POLICY not in entry.options
    # A usable one is saved (leading and trailing slashes trimmed).
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], FORM | {CONF_TOPIC_PREFIX: "/lab/power/"}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert entry.options[CONF_TOPIC_PREFIX] == "lab/power"
