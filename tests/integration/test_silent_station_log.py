"""A station going silent while the cloud is up is logged once, and once when it is back."""

from __future__ import annotations

import logging
from unittest.mock import AsyncMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from .conftest import DELTA2_SN, RIVER3_SN, make_entry
from .helpers import advance, capture_bytes, feed

RIVER3_REPLY = "pb01_river3_getreply_maodijim.bin"
COORDINATOR_LOGGER = "custom_components.ecoflow_power.coordinator"


async def _setup(hass: HomeAssistant, entry: MockConfigEntry) -> None:
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()


def _lines(caplog: pytest.LogCaptureFixture, text: str) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name == COORDINATOR_LOGGER and r.levelno == logging.INFO and text in r.getMessage()
    ]


async def test_a_station_going_silent_with_the_cloud_up_is_logged_once_and_once_back(
    hass: HomeAssistant,
    mock_client: AsyncMock,
    fake_session,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    entry = make_entry()  # stale timeout 120 s
    await _setup(hass, entry)
    session = fake_session.instances[-1]
    await feed(hass, session, RIVER3_SN, capture_bytes(RIVER3_REPLY))
    await advance(hass, freezer, 60)
    assert not _lines(caplog, "sends no telemetry")

    # Silence for longer than the stale timeout, checked many times over.
    for _ in range(30):
        await advance(hass, freezer, 10)
    silent = _lines(caplog, "sends no telemetry")
    # The Delta 2 never sent anything; the River 3 stopped. One line each.
    assert len(silent) == 2, silent
    assert any(line.startswith("Study UPS") and "last seen" in line for line in silent)
    assert any(line.startswith("Rack") and "none since the start" in line for line in silent)

    await feed(hass, session, RIVER3_SN, capture_bytes(RIVER3_REPLY))
    await advance(hass, freezer, 10)
    assert _lines(caplog, "sends telemetry again") == ["Study UPS sends telemetry again"]
    await feed(hass, session, RIVER3_SN, capture_bytes(RIVER3_REPLY))
    assert len(_lines(caplog, "sends telemetry again")) == 1
    assert len(_lines(caplog, "sends no telemetry")) == 2
    assert entry.runtime_data.telemetry.devices[DELTA2_SN].device_name == "Rack"


async def test_stations_are_not_logged_one_by_one_when_the_cloud_is_down(
    hass: HomeAssistant,
    mock_client: AsyncMock,
    fake_session,
    freezer: FrozenDateTimeFactory,
    caplog: pytest.LogCaptureFixture,
) -> None:
    """A cloud outage is the session's one line; after it, stations get a stale timeout."""
    entry = make_entry()
    await _setup(hass, entry)
    session = fake_session.instances[-1]
    await feed(hass, session, RIVER3_SN, capture_bytes(RIVER3_REPLY))
    session.on_connection_change(False)
    for _ in range(40):
        await advance(hass, freezer, 10)
    assert not _lines(caplog, "sends no telemetry")
    session.on_connection_change(True)
    await hass.async_block_till_done()
    await advance(hass, freezer, 60)
    # Back for less than the stale timeout: stations may still be catching up.
    assert not _lines(caplog, "sends no telemetry")
    await feed(hass, session, RIVER3_SN, capture_bytes(RIVER3_REPLY))
    for _ in range(8):
        await advance(hass, freezer, 10)
    silent = _lines(caplog, "sends no telemetry")
    assert [line.split(" sends")[0] for line in silent] == ["Rack"]
