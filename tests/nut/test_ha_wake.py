"""Power comes back for NUT clients too: their host is woken, and its login ends the retries.

Inside the HA harness: the NUT consumer's shutdown (threshold 95 %) is committed
during an outage fed from a capture, the grid returns and stays, the restore
rule sends a magic packet to the MAC set for the station's NUT clients, and a
NUT client logging in (the NAS booted) is the sign of life that stops it.
"""

from __future__ import annotations

import asyncio
from typing import Any
from unittest.mock import AsyncMock

from homeassistant.core import HomeAssistant
from pytest_homeassistant_custom_component.common import async_mock_service

from custom_components.ecoflow_power.const import (
    CONF_POLICY,
    CONF_RESTORE,
    CONF_WAKE_TARGETS,
    EVENT_POLICY,
)
from tests.integration.conftest import DELTA2_SN, make_entry
from tests.integration.helpers import capture_json, feed

from .real_clients import require_nut_client
from .test_ha_nut import PASSWORD, Line, _setup, free_port, nut_options
from .test_ha_upsmon import CAPTURE, on_battery, wait_for

NAS_MAC = "02:00:00:00:0a:01"


async def test_nut_clients_host_is_woken_when_power_is_back_and_its_login_ends_it(
    socket_enabled: None, hass: HomeAssistant, mock_client: AsyncMock, fake_session: Any
) -> None:
    require_nut_client()
    packets = async_mock_service(hass, "wake_on_lan", "send_magic_packet")
    events: list[dict[str, Any]] = []
    hass.bus.async_listen(EVENT_POLICY, lambda event: events.append(dict(event.data)))
    port = free_port()
    entry = make_entry(
        **nut_options(port, soc_threshold=95.0, delay_sec=1),
        grid_confirm_sec=0,
        **{
            CONF_POLICY: {DELTA2_SN: {"debounce_sec": 1, "cooldown_sec": 600}},
            CONF_RESTORE: {
                DELTA2_SN: {"enabled": True, "stable_sec": 1, "restart_soc": 10, "gap_sec": 0}
            },
            CONF_WAKE_TARGETS: {"nut-rack": {"mac": NAS_MAC, "broadcast": "127.0.0.1"}},
        },
    )
    await _setup(hass, entry)
    session = fake_session.instances[-1]
    quotas = capture_json(CAPTURE)

    await feed(hass, session, DELTA2_SN, on_battery(quotas))
    policy = entry.runtime_data.policy
    await wait_for(lambda: policy.data[DELTA2_SN].agents["nut-rack"].committed, 10)
    assert packets == []  # nothing while the outage lasts

    await feed(hass, session, DELTA2_SN, quotas)  # grid back, and it stays
    await wait_for(lambda: len(packets) == 1, 10)
    assert packets[0].data["mac"] == NAS_MAC
    assert packets[0].data["broadcast_address"] == "127.0.0.1"
    assert "power_restored" in [e["type"] for e in events]

    # The NAS boots and its upsmon logs in: the host is back, no more packets.
    async with Line(port) as line:
        assert await line.ask("USERNAME monuser") == "OK"
        assert await line.ask(f"PASSWORD {PASSWORD}") == "OK"
        assert await line.ask("LOGIN rack") == "OK"
        await wait_for(lambda: "host_woken" in [e["type"] for e in events], 5)
    woken = next(e for e in events if e["type"] == "host_woken")
    assert woken["host"] == "nut-rack"
    await asyncio.sleep(0.2)
    assert len(packets) == 1
    assert await hass.config_entries.async_unload(entry.entry_id)
