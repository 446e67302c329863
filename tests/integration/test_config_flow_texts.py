"""Every field of the sign-in, device, reauth and reconfigure forms has a label and a text."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any
from unittest.mock import AsyncMock

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import section
import pytest

from custom_components.ecoflow_power.const import DOMAIN

from .conftest import make_entry
from .test_config_flow import USER_INPUT

EN = json.loads(
    (
        Path(__file__).resolve().parents[2]
        / "custom_components"
        / "ecoflow_power"
        / "translations"
        / "en.json"
    ).read_text()
)
ABORTS = ("already_configured", "wrong_account", "reauth_successful", "reconfigure_successful")


def _assert_described(texts: dict[str, Any], schema: Any, where: str) -> None:
    for marker, value in schema.schema.items():
        name = str(marker)
        if isinstance(value, section):
            section_texts = texts["sections"][name]
            assert section_texts.get("name"), f"{where}: section {name} has no name"
            _assert_described(section_texts, value.schema, f"{where}.{name}")
            continue
        assert texts.get("data", {}).get(name), f"{where}: {name} has no label"
        assert texts.get("data_description", {}).get(name), f"{where}: {name} has no description"


@pytest.fixture(autouse=True)
def _no_setup(mock_setup_entry: AsyncMock) -> None:
    """Forms only: no entry is started."""


async def test_sign_in_and_device_forms(hass: HomeAssistant, mock_client: AsyncMock) -> None:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    _assert_described(EN["config"]["step"]["user"], result["data_schema"], "user")
    result = await hass.config_entries.flow.async_configure(result["flow_id"], USER_INPUT)
    assert result["step_id"] == "devices"
    _assert_described(EN["config"]["step"]["devices"], result["data_schema"], "devices")


async def test_reauth_and_reconfigure_forms(hass: HomeAssistant, mock_client: AsyncMock) -> None:
    entry = make_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    _assert_described(EN["config"]["step"]["reauth_confirm"], result["data_schema"], "reauth")
    result = await entry.start_reconfigure_flow(hass)
    _assert_described(EN["config"]["step"]["reconfigure"], result["data_schema"], "reconfigure")


def test_every_way_the_flow_ends_is_worded() -> None:
    for reason in ABORTS:
        assert EN["config"]["abort"].get(reason), reason
