"""Privileged services that report the truth, and policy entities that survive update_entity."""

from __future__ import annotations

from typing import Any

from homeassistant.auth.models import User
from homeassistant.components import mqtt
from homeassistant.const import STATE_UNAVAILABLE
from homeassistant.core import Context, HomeAssistant
from homeassistant.exceptions import HomeAssistantError, Unauthorized
from homeassistant.setup import async_setup_component
import pytest

from custom_components.ecoflow_power.const import (
    DOMAIN,
)
from tests.helpers.mosquitto import MosquittoBroker

from .conftest import DELTA2_SN
from .mqtt_helpers import SideSubscriber, wait_for

POLICY_ENTITIES = (
    "sensor.rack_shutdown_policy",
    "sensor.rack_shutdown_fires_at",
    "switch.rack_shutdown_policy_armed",
    "sensor.agent_nas_last_acknowledgement",
    "sensor.agent_nas_last_command",
    "binary_sensor.agent_nas_online",
)


async def test_update_entity_keeps_policy_and_agent_entities_available(
    hass: HomeAssistant, loaded
) -> None:
    assert await async_setup_component(hass, "homeassistant", {})
    before = {entity_id: hass.states.get(entity_id).state for entity_id in POLICY_ENTITIES}
    assert STATE_UNAVAILABLE not in before.values()
    await hass.services.async_call(
        "homeassistant", "update_entity", {"entity_id": list(POLICY_ENTITIES)}, blocking=True
    )
    await hass.async_block_till_done()
    after = {entity_id: hass.states.get(entity_id).state for entity_id in POLICY_ENTITIES}
    assert after == before
    assert hass.states.get("sensor.rack_shutdown_policy").state == "normal"


@pytest.mark.parametrize("service", ["shutdown", "abort"])
async def test_shutdown_and_abort_are_refused_to_a_non_admin_user(
    hass: HomeAssistant, broker: MosquittoBroker, loaded, hass_read_only_user: User, service: str
) -> None:
    async with SideSubscriber(broker, "power-manager/nas/cmd", count=1, wait=2) as subscriber:
        with pytest.raises(Unauthorized):
            await hass.services.async_call(
                DOMAIN,
                service,
                {"agents": ["nas"]},
                blocking=True,
                context=Context(user_id=hass_read_only_user.id),
            )
        assert await subscriber.messages() == []


async def test_an_admin_shutdown_reports_sent_once_the_broker_has_it(
    hass: HomeAssistant, broker: MosquittoBroker, loaded, hass_admin_user: User
) -> None:
    async with SideSubscriber(broker, "power-manager/nas/cmd", count=1) as subscriber:
        response = await hass.services.async_call(
            DOMAIN,
            "shutdown",
            {"agents": ["nas"], "delay_sec": 120},
            blocking=True,
            return_response=True,
            context=Context(user_id=hass_admin_user.id),
        )
        messages = await subscriber.messages()
    assert response == {"sent": ["nas"]}
    assert [payload["action"] for _, payload in messages] == ["shutdown"]


@pytest.mark.parametrize("service", ["shutdown", "abort"])
async def test_a_command_the_broker_never_got_is_reported_as_failed(
    hass: HomeAssistant, broker: MosquittoBroker, loaded, service: str
) -> None:
    if service == "abort":
        # An abort needs a live shutdown to target.
        await hass.services.async_call(
            DOMAIN, "shutdown", {"agents": ["nas"], "delay_sec": 600}, blocking=True
        )
    broker.stop()
    await wait_for(hass, lambda: not mqtt.is_connected(hass))
    with pytest.raises(HomeAssistantError) as err:
        await hass.services.async_call(
            DOMAIN,
            service,
            {"agents": ["nas"], **({"delay_sec": 60} if service == "shutdown" else {})},
            blocking=True,
            return_response=True,
        )
    assert err.value.translation_domain == DOMAIN
    assert err.value.translation_key == "publish_failed"
    assert err.value.translation_placeholders["agents"] == "nas"
    if service == "shutdown":
        # The policy still tracks it (and re-sends once the broker is back).
        assert hass.states.get("sensor.agent_nas_last_command").state == "shutdown"


async def test_a_local_agents_command_goes_to_its_router_not_the_broker(
    hass: HomeAssistant, broker: MosquittoBroker, loaded
) -> None:
    """Commands to `local` agents (NUT clients) are answered by the glue itself."""
    policy = loaded.runtime_data.policy
    routed: list[tuple[str | None, str]] = []

    def router(sn: str | None, effect: Any) -> bool:
        routed.append((sn, effect.payload["action"]))
        return True

    policy.local_router = router
    async with SideSubscriber(broker, "power-manager/nas/cmd", count=1, wait=2) as subscriber:
        response = await hass.services.async_call(
            DOMAIN, "shutdown", {"agents": ["nas"]}, blocking=True, return_response=True
        )
        assert await subscriber.messages() == []
    assert response == {"sent": ["nas"]}
    assert routed == [(DELTA2_SN, "shutdown")]
