"""A host fed by two stations (redundant supplies): its shutdown follows the feed rule."""

from __future__ import annotations

from typing import Any
from unittest.mock import AsyncMock

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest

from custom_components.ecoflow_power.const import CONF_AGENTS, CONF_GRID_CONFIRM, CONF_POLICY
from tests.helpers.mosquitto import MosquittoBroker

from .conftest import DELTA2_SN, RIVER3_SN, make_entry
from .helpers import advance, feed
from .mqtt_helpers import SideSubscriber, flush_subscriptions, setup_real_mqtt
from .test_policy_mqtt import delta2_payload


async def _load(hass: HomeAssistant, broker: MosquittoBroker, freezer: Any, rule: str) -> Any:
    freezer.move_to("2026-11-01T12:00:00+00:00")
    mqtt_entry = await setup_real_mqtt(hass, broker)
    # Owned by the River 3, also fed by the Delta 2.
    entry = make_entry(
        **{
            CONF_GRID_CONFIRM: 0,
            CONF_AGENTS: {
                "nas": {
                    "device": RIVER3_SN,
                    "secret": "nas-secret",
                    "soc_threshold": None,
                    "delay_sec": None,
                    "feeds": [DELTA2_SN],
                    "feed_rule": rule,
                }
            },
            CONF_POLICY: {
                sn: {"soc_threshold": 20, "debounce_sec": 60, "delay_sec": 30}
                for sn in (RIVER3_SN, DELTA2_SN)
            },
        }
    )
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await flush_subscriptions(hass, freezer, broker, ["power-manager/+/ack"])
    return entry, mqtt_entry


@pytest.mark.parametrize(("rule", "expected"), [("any", ["shutdown"]), ("all", [])])
async def test_one_critical_station_shuts_down_only_under_the_any_rule(
    hass: HomeAssistant,
    *,
    broker: MosquittoBroker,
    mock_client: AsyncMock,
    fake_session,
    freezer: FrozenDateTimeFactory,
    rule: str,
    expected: list[str],
) -> None:
    entry, mqtt_entry = await _load(hass, broker, freezer, rule)
    session = fake_session.instances[-1]
    policy = entry.runtime_data.policy
    # The Delta 2 decides for nas too, but never sends anything itself.
    assert policy.engines[DELTA2_SN].agents["nas"].observe_only
    assert policy.engines[RIVER3_SN].agents["nas"].feeds == (DELTA2_SN,)

    async with SideSubscriber(broker, "power-manager/nas/cmd", count=1, wait=3) as subscriber:
        await feed(hass, session, DELTA2_SN, delta2_payload(grid=True, soc=90))
        await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=15))
        await advance(hass, freezer, 30)
        await feed(hass, session, DELTA2_SN, delta2_payload(grid=False, soc=15))
        await advance(hass, freezer, 31)
        messages = await subscriber.messages()
    assert [payload["action"] for _, payload in messages] == expected
    if expected:
        # Sent by its owner, for its owner's station.
        assert messages[0][1]["device"] == RIVER3_SN
    await hass.config_entries.async_unload(entry.entry_id)
    await hass.config_entries.async_unload(mqtt_entry.entry_id)
    await hass.async_block_till_done()
