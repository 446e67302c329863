"""Every step of the config and options flows explains itself and each of its fields.

Walks translations/en.json (config.step and options.step), so a step or
field added later without its texts fails here; and keeps the forms free of
developer wording (simulator addresses, raw API codes).
"""

from __future__ import annotations

import json
from pathlib import Path
import re
from typing import Any
from unittest.mock import AsyncMock

from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType, section
import pytest

from custom_components.ecoflow_power.config_flow import REGION_TITLES
from custom_components.ecoflow_power.const import CONF_AGENTS

from .conftest import RIVER3_SN, make_entry

EN = json.loads(
    (
        Path(__file__).resolve().parents[2]
        / "custom_components"
        / "ecoflow_power"
        / "translations"
        / "en.json"
    ).read_text()
)
STEPS = [
    (flow, step_id, texts)
    for flow in ("config", "options")
    for step_id, texts in EN[flow]["step"].items()
]
# What a user of Home Assistant should never have to read in a form.
DEVELOPER_WORDING = [
    r"127\.0\.0\.1",
    r"localhost",
    r"simulator",
    r"stand-in",
    r"\bcode \d+",
    r"\(\d{3,5}\)",
]


def _fields(texts: dict[str, Any], where: str) -> list[tuple[str, str, dict[str, Any]]]:
    """(where, field, texts) of a step's fields, sections included."""
    fields = [(where, name, texts) for name in texts.get("data", {})]
    for name, part in texts.get("sections", {}).items():
        fields += _fields(part, f"{where}.{name}")
    return fields


def _strings(value: Any) -> list[str]:
    if isinstance(value, str):
        return [value]
    if isinstance(value, dict):
        return [text for item in value.values() for text in _strings(item)]
    return []


def test_the_walk_sees_every_step() -> None:
    """The walk itself must cover something: both flows, menus and forms."""
    ids = {f"{flow}.{step_id}" for flow, step_id, _ in STEPS}
    assert {"config.user", "config.devices", "options.init", "options.agent_settings"} <= ids
    assert len(STEPS) >= 20


@pytest.mark.parametrize(("flow", "step_id", "texts"), STEPS, ids=[f"{f}.{s}" for f, s, _ in STEPS])
def test_every_step_has_a_title_and_a_description(
    flow: str, step_id: str, texts: dict[str, Any]
) -> None:
    assert texts.get("title", "").strip(), f"{flow}.{step_id} has no title"
    assert texts.get("description", "").strip(), f"{flow}.{step_id} has a title alone"
    for name, part in texts.get("sections", {}).items():
        assert part.get("name", "").strip(), f"{flow}.{step_id}.{name} has no name"
        assert part.get("description", "").strip(), f"{flow}.{step_id}.{name}"


@pytest.mark.parametrize(("flow", "step_id", "texts"), STEPS, ids=[f"{f}.{s}" for f, s, _ in STEPS])
def test_every_field_has_a_label_and_a_description(
    flow: str, step_id: str, texts: dict[str, Any]
) -> None:
    for where, name, owner in _fields(texts, f"{flow}.{step_id}"):
        assert owner["data"][name].strip(), f"{where}: {name} has no label"
        description = owner.get("data_description", {}).get(name, "")
        assert description.strip(), f"{where}: {name} has no data_description"
    # A description for a field the step does not have is a leftover.
    for where, _name, owner in _fields(texts, f"{flow}.{step_id}"):
        assert set(owner.get("data_description", {})) <= set(owner["data"]), where


def test_the_forms_use_no_developer_wording() -> None:
    texts = [
        *_strings(EN["config"]),
        *_strings(EN["options"]),
        *_strings(EN["selector"]),
    ]
    assert len(texts) > 100
    for pattern in DEVELOPER_WORDING:
        found = [text for text in texts if re.search(pattern, text, flags=re.IGNORECASE)]
        assert not found, f"{pattern}: {found}"


def test_region_names_are_capitalised() -> None:
    names = [*EN["selector"]["region"]["options"].values(), *REGION_TITLES.values()]
    assert len(names) == 6
    for name in names:
        assert name[0].isupper(), name


def _assert_shown_fields_have_texts(result: dict[str, Any]) -> None:
    """The fields a form really shows are the ones en.json describes."""
    assert result["type"] is FlowResultType.FORM, result
    texts = EN["options"]["step"][result["step_id"]]
    _assert_schema_described(texts, result["data_schema"], f"options.{result['step_id']}")


def _assert_schema_described(texts: dict[str, Any], schema: Any, where: str) -> None:
    for marker, value in schema.schema.items():
        name = str(marker)
        if isinstance(value, section):
            _assert_schema_described(texts["sections"][name], value.schema, f"{where}.{name}")
            continue
        assert texts.get("data", {}).get(name), f"{where}: {name} has no label"
        assert texts.get("data_description", {}).get(name), f"{where}: {name} has no text"


# Menu choices, then what to submit on each form before the one to check.
OPTION_PATHS: list[tuple[list[str], list[dict[str, Any]]]] = [
    (["telemetry"], []),
    (["policy"], [{"station": RIVER3_SN}]),
    (["sentinel"], [{"station": RIVER3_SN}]),
    (["add_agent"], []),
    (["edit_agent"], [{"agent_id": "nas"}]),
    (["remove_agent"], []),
    (["restore"], [{"station": RIVER3_SN}]),
    (["wake_target"], []),
    (["nut", "nut_server"], []),
    (["nut", "nut_station"], [{"station": RIVER3_SN}]),
    (["nut", "nut_add_user"], []),
]


async def test_every_field_an_options_form_shows_has_its_texts(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    entry = make_entry(
        **{CONF_AGENTS: {"nas": {"device": RIVER3_SN, "secret": "s"}}},
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    seen: set[str] = set()
    for menus, submissions in OPTION_PATHS:
        result = await hass.config_entries.options.async_init(entry.entry_id)
        for choice in menus:
            assert result["type"] is FlowResultType.MENU
            result = await hass.config_entries.options.async_configure(
                result["flow_id"], {"next_step_id": choice}
            )
        _assert_shown_fields_have_texts(result)
        seen.add(result["step_id"])
        for submission in submissions:
            result = await hass.config_entries.options.async_configure(
                result["flow_id"], submission
            )
            _assert_shown_fields_have_texts(result)
            seen.add(result["step_id"])
        hass.config_entries.options.async_abort(result["flow_id"])
    forms = {step_id for step_id, texts in EN["options"]["step"].items() if "data" in texts}
    # Forms reached only after saving (the secret, a created user) or with users present.
    assert forms - seen <= {"nut_remove_user"}, forms - seen
