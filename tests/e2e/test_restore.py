"""Power comes back: the hosts that shut down are woken, on real parts.

The outage ends in a committed shutdown of the (dry-run) Linux agent; the test
then stops the agent, as the host going down would. When the grid returns and
stays, Home Assistant's own `wake_on_lan` sends the magic packet to a UDP
socket this test binds on 127.0.0.1; the agent started again is the host
booting, which ends the retries.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterator
import socket
import time

import pytest

from custom_components.ecoflow_power.const import CONF_RESTORE, CONF_WAKE_TARGETS
from simulator.devices import river3

pytestmark = pytest.mark.broker

MAC = "02:ec:0f:10:00:01"
STABLE_SEC = 4


class MagicPacketListener:
    """A UDP socket on 127.0.0.1 that keeps every Wake-on-LAN packet it receives."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.setblocking(False)
        self.port: int = self.sock.getsockname()[1]
        self.packets: list[tuple[float, bytes]] = []

    def poll(self) -> list[tuple[float, bytes]]:
        while True:
            try:
                data, _ = self.sock.recvfrom(1024)
            except BlockingIOError:
                return self.packets
            self.packets.append((time.time(), data))

    def for_mac(self, mac: str) -> list[float]:
        raw = bytes.fromhex(mac.replace(":", ""))
        expected = b"\xff" * 6 + raw * 16
        return [at for at, data in self.poll() if data == expected]


@pytest.fixture
def listener() -> Iterator[MagicPacketListener]:
    udp = MagicPacketListener()
    yield udp
    udp.sock.close()


async def outage_until_committed(env, sn: str) -> None:
    env.standin.set_scenario(sn, "outage", {"drain_pct_per_min": 1})
    shutdown = await env.wait_command("nas", "shutdown", within=30)
    await env.wait_ack("nas", shutdown["id"], "executing", within=15)
    await env.wait_dry_run_shutdown("nas")
    # The host goes down: its agent stops and its status turns offline.
    env.agents["nas"].stop()
    await env.wait_entity("binary_sensor.agent_nas_online", "off", within=10)


def restore_options(sn: str, port: int) -> dict:
    return {
        CONF_RESTORE: {
            sn: {
                "enabled": True,
                "stable_sec": STABLE_SEC,
                "restart_soc": 15,
                "gap_sec": 0,
                "retry_sec": 30,
            }
        },
        CONF_WAKE_TARGETS: {"nas": {"mac": MAC, "broadcast": "127.0.0.1", "port": port}},
    }


async def test_power_back_for_good_wakes_the_host_that_shut_down(e2e, listener) -> None:
    station = river3(soc=23)
    sn = station.sn
    env = await e2e(
        devices=[station], agents={"nas": {}}, options=restore_options(sn, listener.port)
    )
    await outage_until_committed(env, sn)

    env.standin.set_scenario(sn, "restore", {"charge_pct_per_min": 1})
    await env.wait_entity(env.grid_entity(sn), "on", within=10)
    grid_back = time.time()
    packets = await env.wait(lambda: listener.for_mac(MAC), STABLE_SEC + 10, "a magic packet")
    # Not before the grid was stable for the configured time.
    assert packets[0] >= grid_back + STABLE_SEC - 1.5, (packets[0] - grid_back, env.report())
    assert "power_restored" in env.event_types()

    # The host boots: its agent announces itself, the retries stop.
    env.agents["nas"].start()
    await env.wait_entity("binary_sensor.agent_nas_online", "on", within=15)
    await env.wait(lambda: "host_woken" in env.event_types(), 10, "the host_woken event")
    assert len(listener.for_mac(MAC)) == 1


async def test_grid_failing_again_within_the_stable_time_wakes_nobody(e2e, listener) -> None:
    station = river3(soc=23)
    sn = station.sn
    env = await e2e(
        devices=[station], agents={"nas": {}}, options=restore_options(sn, listener.port)
    )
    await outage_until_committed(env, sn)

    env.standin.set_scenario(sn, "restore", {"charge_pct_per_min": 1})
    await env.wait_entity(env.grid_entity(sn), "on", within=10)
    await asyncio.sleep(1)  # a few readings with the grid present, far less than STABLE_SEC
    env.standin.set_scenario(sn, "outage", {"drain_pct_per_min": 0.2})
    await env.wait_entity(env.grid_entity(sn), "off", within=10)
    lost_again = time.time()
    await env.wait(lambda: time.time() >= lost_again + STABLE_SEC + 4, 15, "time to pass")
    assert listener.for_mac(MAC) == [], env.report()
    assert "power_restored" not in env.event_types()
