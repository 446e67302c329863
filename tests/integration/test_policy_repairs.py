"""The engine's repairs as Home Assistant shows them: blind in words, frozen telemetry."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import AsyncMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
import pytest
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.ecoflow_power.const import CONF_AGENTS, DOMAIN
from custom_components.ecoflow_power.ecoflow.state import MessageSource
from custom_components.ecoflow_power.policy_repairs import local_time, rendered

from .conftest import DELTA2_SN, make_entry
from .helpers import feed
from .test_policy_mqtt import delta2_payload


def test_engine_times_are_shown_in_local_time() -> None:
    assert rendered("fires_at", "1790000000") == local_time(1_790_000_000)
    assert rendered("fires_at", "") == "unknown"
    assert rendered("cutoff", "25") == "25"


def test_a_time_placeholder_that_is_no_time_is_shown_as_the_engine_wrote_it() -> None:
    assert rendered("fires_at", "soon") == "soon"
    # Beyond any calendar (an estimate with a vanishing drain): text, not a crash.
    assert rendered("fires_at", "1e300") == "1e300"
    assert rendered("fires_at", "inf") == "inf"


async def test_frozen_telemetry_is_a_repair_not_an_outage(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session, freezer: FrozenDateTimeFactory
) -> None:
    freezer.move_to("2026-11-01T12:00:00+00:00")
    entry = make_entry(
        **{
            CONF_AGENTS: {
                "nas": {
                    "device": DELTA2_SN,
                    "secret": "s",
                    "soc_threshold": None,
                    "delay_sec": None,
                }
            }
        }
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    session = fake_session.instances[-1]
    await feed(hass, session, DELTA2_SN, {"params": {"status": 1}}, MessageSource.STATUS)
    await feed(hass, session, DELTA2_SN, delta2_payload(grid=True, soc=90))
    issue_id = f"telemetry_stale_{DELTA2_SN}"
    for _ in range(6):
        freezer.tick(timedelta(seconds=30))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders["device"] == "Rack"
    # Station online, cloud reachable: not an outage, nothing assumed.
    assert hass.states.get("sensor.rack_shutdown_policy").state == "normal"
    assert ir.async_get(hass).async_get_issue(DOMAIN, f"policy_blind_{DELTA2_SN}") is None
    # Telemetry flows again: the repair goes.
    await feed(hass, session, DELTA2_SN, delta2_payload(grid=True, soc=90))
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


@pytest.mark.parametrize("silence", ["station_offline", "cloud_unreachable"])
async def test_blind_mode_repair_says_in_words_when_the_hosts_go_down(
    hass: HomeAssistant,
    mock_client: AsyncMock,
    fake_session,
    freezer: FrozenDateTimeFactory,
    silence: str,
) -> None:
    """Grid last seen present, then silence: the cloud says offline, or is gone itself."""
    freezer.move_to("2026-11-01T12:00:00+00:00")
    entry = make_entry(
        **{
            CONF_AGENTS: {
                "nas": {
                    "device": DELTA2_SN,
                    "secret": "s",
                    "soc_threshold": None,
                    "delay_sec": None,
                }
            }
        }
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    session = fake_session.instances[-1]
    await feed(hass, session, DELTA2_SN, delta2_payload(grid=True, soc=60))
    if silence == "station_offline":
        await feed(hass, session, DELTA2_SN, {"params": {"status": 0}}, MessageSource.STATUS)
    else:
        session.on_connection_change(False)
        await hass.async_block_till_done()
    issue_id = f"policy_blind_{DELTA2_SN}"
    issue = None
    for _ in range(20):
        freezer.tick(timedelta(seconds=15))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
        if issue := ir.async_get(hass).async_get_issue(DOMAIN, issue_id):
            break
    assert issue is not None, hass.states.get("sensor.rack_shutdown_policy")
    assert issue.severity is ir.IssueSeverity.ERROR
    assert issue.translation_placeholders["device"] == "Rack"
    fires_at = issue.translation_placeholders["fires_at"]
    # A local date and time, in words in the repair, not epoch seconds.
    assert fires_at.startswith("2026-11-01 "), fires_at
    assert hass.states.get("sensor.rack_shutdown_policy").state in ("blind", "shutdown_sent")
