"""Protocol 2 in Home Assistant: each agent's power lease, on a real mosquitto broker."""

from __future__ import annotations

from unittest.mock import AsyncMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.const import EntityCategory
from homeassistant.core import HomeAssistant
from homeassistant.helpers import entity_registry as er, issue_registry as ir
from homeassistant.util import dt as dt_util
import pytest

from custom_components.ecoflow_power.const import (
    CONF_AGENTS,
    CONF_GRID_CONFIRM,
    CONF_POLICY,
    DOMAIN,
)
from custom_components.ecoflow_power.policy.lease import LEASE_REFRESH_SEC, parse_lease
from custom_components.ecoflow_power.policy.protocol import (
    Ack,
    AckStatus,
    sign_message,
    verify_message,
)
from tests.helpers.mosquitto import MosquittoBroker

from .conftest import AGENT_SECRET, DELTA2_SN, make_entry, policy_entry
from .helpers import advance, feed
from .mqtt_helpers import (
    SideSubscriber,
    entry_on_real_mqtt,
    publish_side,
    real_sleep,
    wait_for,
)
from .test_policy_mqtt import delta2_payload

TOPIC = "power-manager/nas/power"


@pytest.fixture
async def loaded(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    mock_client: AsyncMock,
    fake_session,
    freezer: FrozenDateTimeFactory,
):
    # a lease left behind by an agent since removed from this entry, and one of
    # another entry's station (same prefix): only the first must go
    for agent_id, device in (("old-pc", DELTA2_SN), ("other-entry", "OTHERSTATION01")):
        await publish_side(
            broker, f"power-manager/{agent_id}/power", {"v": 2, "device": device}, retain=True
        )
    entry = policy_entry()
    async with entry_on_real_mqtt(hass, broker, freezer, entry):
        yield entry, fake_session.instances[-1]


async def test_agent_gets_a_retained_signed_lease_that_follows_the_grid(
    hass: HomeAssistant, broker: MosquittoBroker, loaded, freezer: FrozenDateTimeFactory
) -> None:
    _entry, session = loaded
    await feed(hass, session, DELTA2_SN, delta2_payload(grid=True, soc=90))
    # a late subscriber (an agent that starts now) gets the retained lease
    async with SideSubscriber(broker, TOPIC, count=1) as subscriber:
        (topic, present), *_ = await subscriber.messages()
    assert topic == TOPIC
    assert verify_message(present, AGENT_SECRET)
    lease = parse_lease(json_dumps(present), AGENT_SECRET, "nas")
    assert lease is not None
    assert lease.grid == "present"
    assert lease.fsd is False
    assert lease.expires_at > lease.issued_at

    async with SideSubscriber(broker, TOPIC, count=2) as subscriber:
        await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=40))
        messages = await subscriber.messages()
    on_battery = parse_lease(json_dumps(messages[-1][1]), AGENT_SECRET, "nas")
    assert on_battery is not None
    assert on_battery.grid == "on_battery"
    assert on_battery.soc_min == 40.0
    # the lease carries the engine's own deadline for this agent
    view = loaded[0].runtime_data.policy.data[DELTA2_SN].agents["nas"]
    expected_by = None if view.shutdown_by is None else int(view.shutdown_by)
    assert on_battery.shutdown_by == expected_by
    assert on_battery.expires_at >= max(on_battery.issued_at, expected_by or 0) + 60

    # while on battery the lease is republished: a silent Home Assistant is noticed
    async with SideSubscriber(broker, TOPIC, count=2) as subscriber:
        await advance(hass, freezer, LEASE_REFRESH_SEC + 1)
        messages = await subscriber.messages()
    refreshed = parse_lease(json_dumps(messages[-1][1]), AGENT_SECRET, "nas")
    assert refreshed is not None
    assert refreshed.grid == "on_battery"
    assert refreshed.issued_at >= on_battery.issued_at + LEASE_REFRESH_SEC


async def test_clock_offset_above_the_allowance_raises_a_repair(
    hass: HomeAssistant, loaded, freezer: FrozenDateTimeFactory
) -> None:
    entry, _session = loaded
    leases = entry.runtime_data.policy.leases
    now = freezer().timestamp()
    assert leases.observe_answer("nas", int(now) + 300, now, now + 0.2) == pytest.approx(
        300.4, abs=1
    )
    registry = ir.async_get(hass)
    assert registry.async_get_issue(DOMAIN, "agent_clock_skew_nas") is not None
    leases.observe_answer("nas", int(now), now, now + 0.1)
    assert registry.async_get_issue(DOMAIN, "agent_clock_skew_nas") is None
    # a slow answer (a resend) says nothing about the clocks
    assert leases.observe_answer("nas", int(now) + 300, now, now + 30) is None
    assert registry.async_get_issue(DOMAIN, "agent_clock_skew_nas") is None


def json_dumps(obj: dict) -> str:
    import json

    return json.dumps(obj)


async def test_a_pong_from_a_skewed_agent_raises_the_clock_repair(
    hass: HomeAssistant, loaded, freezer: FrozenDateTimeFactory
) -> None:
    """A ping the engine issued, answered with the agent's clock 200 s fast."""
    entry, _session = loaded
    policy = entry.runtime_data.policy
    engine = policy.engines[DELTA2_SN]
    (ping,) = [e.payload for e in engine.ping(["nas"]) if hasattr(e, "payload")]
    status_before = engine.status()
    ack = Ack(id=ping["id"], agent="nas", status=AckStatus.PONG, at=ping["issued_at"] + 200)
    offset = policy.leases.observe_ack("nas", ack, status_before, freezer().timestamp())
    assert offset == pytest.approx(200, abs=2)
    assert ir.async_get(hass).async_get_issue(DOMAIN, "agent_clock_skew_nas") is not None
    # an ack for another command (a resend, an old id) says nothing
    other = Ack(id="not-the-last-command", agent="nas", status=AckStatus.PONG, at=1)
    assert policy.leases.observe_ack("nas", other, status_before, freezer().timestamp()) is None


async def test_leases_of_removed_agents_are_cleared(broker: MosquittoBroker, loaded) -> None:
    from tests.agents.conftest import read_retained

    for _ in range(100):
        if read_retained(broker, "power-manager/old-pc/power", timeout=0.2) is None:
            break
        await real_sleep(0.1)
    assert read_retained(broker, "power-manager/old-pc/power", timeout=0.5) is None
    assert read_retained(broker, "power-manager/other-entry/power", timeout=2) is not None
    assert read_retained(broker, TOPIC, timeout=2) is not None


async def test_agent_shows_the_lease_deadline_it_holds_while_on_battery(
    hass: HomeAssistant, broker: MosquittoBroker, loaded, freezer: FrozenDateTimeFactory
) -> None:
    entry, session = loaded
    entity_id = "sensor.agent_nas_lease_deadline"

    def shown() -> float | None:
        state = hass.states.get(entity_id).state
        return None if state == "unknown" else dt_util.parse_datetime(state).timestamp()

    await feed(hass, session, DELTA2_SN, delta2_payload(grid=True, soc=90))
    assert shown() is None

    # the retained lease of the grid, then the one of the outage
    async with SideSubscriber(broker, TOPIC, count=2) as subscriber:
        await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=46))
        messages = await subscriber.messages()
    lease = parse_lease(json_dumps(messages[-1][1]), AGENT_SECRET, "nas")
    assert lease is not None
    assert lease.grid == "on_battery"
    assert lease.shutdown_by is not None
    assert shown() == lease.shutdown_by

    # Each reading on battery moves the engine's own figure later; the host
    # still holds the earlier deadline until the next refresh, and so does
    # the entity.
    await advance(hass, freezer, 5)
    await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=46))
    engine_by = entry.runtime_data.policy.data[DELTA2_SN].agents["nas"].shutdown_by
    assert engine_by is not None
    assert engine_by >= lease.shutdown_by + 4
    assert shown() == lease.shutdown_by
    async with SideSubscriber(broker, TOPIC, count=2) as subscriber:
        await advance(hass, freezer, LEASE_REFRESH_SEC)
        messages = await subscriber.messages()
    refreshed = parse_lease(json_dumps(messages[-1][1]), AGENT_SECRET, "nas")
    assert refreshed is not None
    assert refreshed.shutdown_by is not None
    assert refreshed.shutdown_by > lease.shutdown_by
    assert shown() == refreshed.shutdown_by

    await feed(hass, session, DELTA2_SN, delta2_payload(grid=True, soc=60))
    assert shown() is None


async def test_clock_offset_appears_after_an_ack_from_a_skewed_agent(
    hass: HomeAssistant, broker: MosquittoBroker, loaded, freezer: FrozenDateTimeFactory
) -> None:
    entity_id = "sensor.agent_nas_clock_offset"
    assert hass.states.get(entity_id).state == "unknown"
    entity = er.async_get(hass).async_get(entity_id)
    assert entity is not None
    assert entity.entity_category is EntityCategory.DIAGNOSTIC

    async with SideSubscriber(broker, "power-manager/nas/cmd", count=1) as subscriber:
        await hass.services.async_call(
            DOMAIN, "shutdown", {"agents": ["nas"], "delay_sec": 120}, blocking=True
        )
        command = (await subscriber.messages())[0][1]
    # the agent's clock runs 90 s fast: its `received` says so
    ack = {
        "v": 1,
        "id": command["id"],
        "agent": "nas",
        "status": "received",
        "at": command["issued_at"] + 90,
        "detail": "",
    }
    await publish_side(
        broker, "power-manager/nas/ack", ack | {"sig": sign_message(ack, AGENT_SECRET)}
    )
    await wait_for(hass, lambda: hass.states.get(entity_id).state != "unknown")
    state = hass.states.get(entity_id)
    assert float(state.state) == pytest.approx(90, abs=1.5)
    assert state.attributes["unit_of_measurement"] == "s"
    assert state.attributes["device_class"] == "duration"
    # above the 60 s allowance: the repair names it too
    assert ir.async_get(hass).async_get_issue(DOMAIN, "agent_clock_skew_nas") is not None


async def test_a_close_deadline_is_refreshed_before_it_passes_while_home_assistant_lives(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    mock_client: AsyncMock,
    fake_session,
    freezer: FrozenDateTimeFactory,
) -> None:
    """Shortest settings (stale 30 s, delay 0): the refresh must beat the agent's deadline."""
    from custom_components.ecoflow_power.const import CONF_STALE_AFTER

    entry = make_entry(
        **{
            CONF_GRID_CONFIRM: 0,
            CONF_STALE_AFTER: 30,
            CONF_AGENTS: {
                "nas": {"device": DELTA2_SN, "secret": AGENT_SECRET, "delay_sec": 0},
            },
            CONF_POLICY: {DELTA2_SN: {"soc_threshold": 20, "debounce_sec": 60, "delay_sec": 0}},
        }
    )
    async with entry_on_real_mqtt(hass, broker, freezer, entry):
        session = fake_session.instances[-1]
        async with SideSubscriber(broker, TOPIC, count=2) as subscriber:
            await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=46))
            messages = await subscriber.messages()
        first = parse_lease(json_dumps(messages[-1][1]), AGENT_SECRET, "nas")
        assert first is not None
        assert first.shutdown_by is not None
        left = first.shutdown_by - dt_util.utcnow().timestamp()
        assert left <= LEASE_REFRESH_SEC + 5  # the race the refresh must win
        # Telemetry keeps flowing; a lease goes out well before the held deadline.
        async with SideSubscriber(broker, TOPIC, count=2) as subscriber:
            for _ in range(4):
                await advance(hass, freezer, left / 6)
                await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=46))
            messages = await subscriber.messages()
        refreshed = parse_lease(json_dumps(messages[-1][1]), AGENT_SECRET, "nas")
        assert refreshed is not None
        assert refreshed.issued_at < first.shutdown_by
        assert refreshed.shutdown_by is not None
        assert refreshed.shutdown_by > first.shutdown_by  # fresh telemetry moved it on
