"""Repairs that say what the policy sees, in words: blind, unprotected, cut-off, frozen."""

from __future__ import annotations

from datetime import timedelta
from unittest.mock import AsyncMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import issue_registry as ir
from pytest_homeassistant_custom_component.common import async_fire_time_changed

from custom_components.ecoflow_power.const import CONF_AGENTS, DOMAIN
from custom_components.ecoflow_power.ecoflow.state import GridStatus, MessageSource, PowerState
from custom_components.ecoflow_power.policy.status import AgentView, PolicyState, PolicyStatus
from custom_components.ecoflow_power.policy_repairs import (
    ISSUE_TELEMETRY_FROZEN,
    StationView,
    desired_repairs,
    hosts_down_at,
)

from .conftest import DELTA2_SN, make_entry
from .helpers import feed
from .test_policy_mqtt import delta2_payload

NOW = 1_790_000_000.0


def _agent(agent_id: str, threshold: float, shutdown_by: float | None = None) -> AgentView:
    return AgentView(
        agent_id=agent_id,
        soc_threshold=threshold,
        delay_sec=60,
        pending_fire_at=None,
        last_command_id=None,
        last_command_action=None,
        last_command_at=None,
        last_ack_status=None,
        last_ack_at=None,
        last_ack_detail="",
        acknowledged=False,
        committed=False,
        shutdown_by=shutdown_by,
    )


def _status(state: PolicyState, **kwargs) -> PolicyStatus:
    values = {
        "device_id": DELTA2_SN,
        "state": state,
        "armed": True,
        "dry_run": False,
        "grid": GridStatus.CONNECTED,
        "soc_min": 80.0,
        "remaining_discharge_min": None,
        "telemetry_stale": False,
        "pending_fire_at": None,
        "agents": {"nas": _agent("nas", 20)},
    }
    return PolicyStatus(**(values | kwargs))


def _view(status: PolicyStatus, state: PowerState | None = None, **kwargs) -> StationView:
    values = {
        "name": "Rack",
        "status": status,
        "state": state,
        "cloud_connected": True,
        "silent_for": 5.0,
        "stale_after_sec": 120.0,
    }
    return StationView(**(values | kwargs))


def test_hosts_down_at_is_the_earliest_planned_step() -> None:
    status = _status(
        PolicyState.BLIND,
        estimate_at=NOW + 3600,
        agents={"nas": _agent("nas", 20, shutdown_by=NOW + 1800)},
    )
    assert hosts_down_at(status) == NOW + 1800
    assert hosts_down_at(_status(PolicyState.NORMAL)) is None


def test_frozen_telemetry_needs_a_reachable_cloud_and_an_online_station() -> None:
    online = PowerState(sn=DELTA2_SN, model="Delta 2", online=True)
    offline = PowerState(sn=DELTA2_SN, model="Delta 2", online=False)
    status = _status(PolicyState.NORMAL)
    assert ISSUE_TELEMETRY_FROZEN in desired_repairs(_view(status, online, silent_for=600))
    assert desired_repairs(_view(status, online, silent_for=60)) == {}
    assert desired_repairs(_view(status, offline, silent_for=600)) == {}
    assert desired_repairs(_view(status, online, silent_for=600, cloud_connected=False)) == {}


async def test_frozen_telemetry_repair_appears_and_clears_in_home_assistant(
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
    issue_id = f"telemetry_frozen_{DELTA2_SN}"
    for _ in range(6):
        freezer.tick(timedelta(seconds=30))
        async_fire_time_changed(hass)
        await hass.async_block_till_done()
    issue = ir.async_get(hass).async_get_issue(DOMAIN, issue_id)
    assert issue is not None
    assert issue.translation_placeholders["device"] == "Rack"
    # Telemetry flows again: the repair goes.
    await feed(hass, session, DELTA2_SN, delta2_payload(grid=True, soc=90))
    assert ir.async_get(hass).async_get_issue(DOMAIN, issue_id) is None


async def test_blind_mode_repair_says_in_words_when_the_hosts_go_down(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session, freezer: FrozenDateTimeFactory
) -> None:
    """Grid last seen present, then the cloud reports the station offline and it falls silent."""
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
    await feed(hass, session, DELTA2_SN, {"params": {"status": 0}}, MessageSource.STATUS)
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
