"""Real NUT clients nobody here wrote (Debian's nut-client 2.8.0) against our server.

The station is a real policy engine with its NUT consumer on the real clock,
fed telemetry the way the glue feeds it; timings are seconds, not minutes.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from pathlib import Path
import time

import pytest

from custom_components.ecoflow_power.ecoflow.state import GridStatus
from custom_components.ecoflow_power.nut import NutServer, NutUser, UserTable

from .policy_loop import PolicyLoop
from .real_clients import parse_upsc, require_nut_client, running_upsmon, upsc

USER, PASSWORD = "monuser", "Zk3vQ9mT2pLx"


@pytest.fixture
async def station(socket_enabled: None) -> AsyncIterator[tuple[PolicyLoop, NutServer]]:
    require_nut_client()
    loop = PolicyLoop(time.time, nut_threshold=30, nut_delay=4, debounce_sec=1)
    loop.feed(grid=GridStatus.CONNECTED, soc=80)
    server = NutServer(
        loop.backend,
        UserTable([NutUser(USER, PASSWORD)]),
        host="127.0.0.1",
        port=0,
        version="0.1.0",
    )
    await server.start()

    async def pump() -> None:  # the glue's timers: ticks and the station's repeats
        while True:
            await asyncio.sleep(0.2)
            loop.refresh()
            loop.tick()

    task = asyncio.create_task(pump())
    yield loop, server
    task.cancel()
    await server.stop()


async def wait_for(predicate: Callable[[], bool], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110 - watching another process's files
            await asyncio.sleep(0.1)


async def test_upsc_lists_every_variable_with_the_stations_values(
    station: tuple[PolicyLoop, NutServer],
) -> None:
    loop, server = station
    target = f"127.0.0.1:{server.port}"
    assert (await upsc("-l", target)).split() == ["delta", "ups"]
    listed = parse_upsc(await upsc(f"delta@{target}"))
    snapshot = loop.backend.snapshot("delta")
    assert snapshot is not None
    assert snapshot.variables is not None
    assert listed == dict(snapshot.variables)
    assert listed["ups.status"] == "OL CHRG"
    assert listed["battery.charge"] == "80"
    assert listed["input.voltage"] == "230.1"
    assert listed["ups.realpower"] == "150"
    assert listed["device.serial"] == "R331ZEB4ZEA00001"
    assert (await upsc(f"ups@{target}", "battery.charge")).strip() == "80"
    loop.feed(grid=GridStatus.LOST, soc=57.4)
    listed = parse_upsc(await upsc(f"ups@{target}"))
    assert listed["ups.status"] == "OB DISCHRG"
    assert listed["battery.charge"] == "57.4"
    assert listed["battery.runtime"] == str(int(57.4 * 3) * 60)


async def test_upsmon_secondary_waits_out_the_countdown_and_shuts_down_at_the_commit_point(
    station: tuple[PolicyLoop, NutServer], tmp_path: Path
) -> None:
    loop, server = station
    async with running_upsmon(
        tmp_path, server.port, ups="delta", user=USER, password=PASSWORD
    ) as upsmon:
        await wait_for(lambda: len(server.clients("delta")) == 1, 15)
        target = f"127.0.0.1:{server.port}"
        assert "CLIENT" not in await upsc("-c", f"ups@{target}")
        assert (await upsc("-c", f"delta@{target}")).split() == ["127.0.0.1"]
        loop.feed(grid=GridStatus.LOST, soc=60)
        await wait_for(lambda: any(n.startswith("ONBATT") for n in upsmon.notifications()), 10)
        loop.feed(grid=GridStatus.LOST, soc=28)  # under the NUT clients' threshold of 30
        await wait_for(lambda: loop.engine.status().agents["nut-delta"].commit_at is not None, 5)
        commit_at = loop.engine.status().agents["nut-delta"].commit_at
        assert commit_at is not None
        # The countdown: the clients see OB, and nothing runs.
        while time.time() < commit_at - 0.5:
            assert not upsmon.ran.exists(), "upsmon shut down before the commit point"
            await asyncio.sleep(0.1)
        await wait_for(upsmon.ran.exists, 15)
        assert time.time() >= commit_at
        assert any(n.startswith("FSD") for n in upsmon.notifications())
        assert (await upsc(f"delta@{target}", "ups.status")).strip() == "FSD OB LB DISCHRG"


async def test_upsmon_runs_nothing_when_the_grid_returns_before_the_commit_point(
    station: tuple[PolicyLoop, NutServer], tmp_path: Path
) -> None:
    loop, server = station
    async with running_upsmon(
        tmp_path, server.port, ups="ups", user=USER, password=PASSWORD
    ) as upsmon:
        await wait_for(lambda: len(server.clients("ups")) == 1, 15)
        loop.feed(grid=GridStatus.LOST, soc=25)
        await wait_for(lambda: loop.engine.status().agents["nut-delta"].commit_at is not None, 5)
        commit_at = loop.engine.status().agents["nut-delta"].commit_at
        assert commit_at is not None
        await wait_for(lambda: any(n.startswith("ONBATT") for n in upsmon.notifications()), 10)
        loop.feed(grid=GridStatus.CONNECTED, soc=25)
        await wait_for(lambda: any(n.startswith("ONLINE") for n in upsmon.notifications()), 10)
        await asyncio.sleep(max(0.0, commit_at - time.time()) + 4)
        assert not upsmon.ran.exists()
        assert not any(n.startswith(("FSD", "SHUTDOWN")) for n in upsmon.notifications())
