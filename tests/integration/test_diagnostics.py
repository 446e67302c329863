"""Diagnostics: useful for debugging, and never a secret in them."""

from __future__ import annotations

import json
from unittest.mock import AsyncMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import MockConfigEntry
from syrupy.assertion import SnapshotAssertion

from custom_components.ecoflow_power.const import CONF_AGENTS
from custom_components.ecoflow_power.diagnostics import async_get_config_entry_diagnostics

from .conftest import ACCESS_KEY, DELTA2_SN, RIVER3_SN, SECRET_KEY, make_entry
from .helpers import capture_bytes, capture_json, feed

AGENT_SECRET = "agent-secret-never-in-diagnostics"


async def test_diagnostics_snapshot_without_secrets(
    hass: HomeAssistant,
    mock_client: AsyncMock,
    fake_session,
    freezer: FrozenDateTimeFactory,
    snapshot: SnapshotAssertion,
) -> None:
    freezer.move_to("2026-11-01T12:00:00+00:00")
    entry: MockConfigEntry = make_entry(
        **{
            CONF_AGENTS: {
                "nas": {
                    "device": RIVER3_SN,
                    "secret": AGENT_SECRET,
                    "soc_threshold": 15,
                    "delay_sec": None,
                }
            }
        }
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    session = fake_session.instances[-1]
    await feed(hass, session, RIVER3_SN, capture_bytes("pb01_river3_getreply_maodijim.bin"))
    await feed(
        hass, session, DELTA2_SN, capture_json("js01_delta2_getreply_latestQuotas_iobroker.json")
    )
    # An unknown message type is counted, not lost.
    await feed(hass, session, RIVER3_SN, bytes.fromhex("0a0a4a02ffff40fe0148e301"))

    diagnostics = await async_get_config_entry_diagnostics(hass, entry)
    assert diagnostics == snapshot

    text = json.dumps(diagnostics)
    for secret in (ACCESS_KEY, SECRET_KEY, AGENT_SECRET, RIVER3_SN, DELTA2_SN, "R651PC0CXGCA0798"):
        assert secret not in text, f"{secret} leaked into diagnostics"
    river = next(v for k, v in diagnostics["devices"].items() if k.startswith("R651"))
    assert river["stats"]["decoded"] >= 1
    assert river["raw_fields"]["display.flow_info_ac_in"] == 2
