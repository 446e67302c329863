"""Real upsc and upsmon against the server running inside Home Assistant's test harness.

The whole path runs: captured payloads -> telemetry coordinator -> the station's
policy engine -> the policy coordinator routing the local NUT consumer's
commands -> HA timers for the commit point -> what upsmon reads.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from pathlib import Path
import time
from typing import Any
from unittest.mock import AsyncMock, patch

from homeassistant.core import HomeAssistant

from custom_components.ecoflow_power.const import CONF_POLICY
from tests.integration.conftest import DELTA2_SN, make_entry
from tests.integration.helpers import capture_json, feed

from .real_clients import parse_upsc, require_nut_client, running_upsmon, upsc
from .test_ha_nut import PASSWORD, _setup, free_port, nut_options

CAPTURE = "js01_delta2_getreply_latestQuotas_iobroker.json"


def on_battery(quotas: dict[str, Any]) -> dict[str, Any]:
    quota_map = dict(quotas["data"]["quotaMap"])
    for key in ("inv.acInVol", "inv.acInAmp", "inv.inputWatts", "pd.chgPowerAC", "inv.acInFreq"):
        quota_map[key] = 0
    return {**quotas, "data": {**quotas["data"], "quotaMap": quota_map}}


async def wait_for(predicate: Callable[[], bool], seconds: float) -> None:
    async with asyncio.timeout(seconds):
        while not predicate():  # noqa: ASYNC110 - watching another process's files
            await asyncio.sleep(0.1)


async def _station(hass: HomeAssistant, fake_session: Any, *, delay: int) -> tuple[Any, int]:
    require_nut_client()
    port = free_port()
    # The NUT clients' threshold (95 %) is above the capture's 86.8 %: critical on battery.
    options = nut_options(port, soc_threshold=95.0, delay_sec=delay)
    entry = make_entry(
        **options,
        grid_confirm_sec=0,
        **{CONF_POLICY: {DELTA2_SN: {"debounce_sec": 1, "cooldown_sec": 600}}},
    )
    await _setup(hass, entry)
    await feed(hass, fake_session.instances[-1], DELTA2_SN, capture_json(CAPTURE))
    return entry, port


async def test_upsc_lists_every_variable_of_a_station_in_home_assistant(
    socket_enabled: None, hass: HomeAssistant, mock_client: AsyncMock, fake_session: Any
) -> None:
    entry, port = await _station(hass, fake_session, delay=30)
    listed = parse_upsc(await upsc(f"rack@127.0.0.1:{port}"))
    state = entry.runtime_data.telemetry.data[DELTA2_SN]
    # Source: wattsOutSum 344, acInVol 230226 mV, firmware and serial from the capture.
    assert listed["battery.charge"] == f"{state.soc_min:g}"
    assert listed["ups.realpower"] == "344"
    assert listed["input.voltage"] == f"{round(state.ac_in_v, 1):g}"
    assert listed["ups.status"].split()[0] == "OL"
    assert listed["battery.charge.low"] == "95"
    assert listed["device.serial"] == listed["ups.serial"] == DELTA2_SN
    assert listed["device.model"] == listed["ups.model"] == "Delta 2"  # ModelInfo.name
    assert listed["device.mfr"] == listed["ups.mfr"] == "EcoFlow"
    assert listed["device.type"] == "ups"
    assert listed["driver.name"] == "ecoflow_power"
    assert set(listed) >= {"battery.runtime", "battery.runtime.low", "driver.version"}
    assert parse_upsc(await upsc(f"ups@127.0.0.1:{port}")) == listed
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_upsmon_in_home_assistant_shuts_down_at_the_commit_point_not_before(
    socket_enabled: None,
    hass: HomeAssistant,
    mock_client: AsyncMock,
    fake_session: Any,
    tmp_path: Path,
) -> None:
    entry, port = await _station(hass, fake_session, delay=3)
    manager = entry.runtime_data.nut
    async with running_upsmon(
        tmp_path, port, ups="ups", user="monuser", password=PASSWORD
    ) as upsmon:
        await wait_for(lambda: len(manager.clients_of(DELTA2_SN)) == 1, 15)
        assert hass.states.get("sensor.rack_nut_clients").state == "1"
        await feed(hass, fake_session.instances[-1], DELTA2_SN, on_battery(capture_json(CAPTURE)))
        engine = entry.runtime_data.policy.engines[DELTA2_SN]
        await wait_for(lambda: engine.status().agents["nut-rack"].commit_at is not None, 10)
        commit_at = engine.status().agents["nut-rack"].commit_at
        while time.time() < commit_at - 0.5:
            assert not upsmon.ran.exists(), "upsmon shut down before the commit point"
            await asyncio.sleep(0.1)
        await wait_for(upsmon.ran.exists, 15)
        assert time.time() >= commit_at
        notes = upsmon.notifications()
        assert any(n.startswith("ONBATT") for n in notes)
        assert any(n.startswith("FSD") for n in notes)
        status = (await upsc(f"rack@127.0.0.1:{port}", "ups.status")).split()
        assert status[:3] == ["FSD", "OB", "LB"]
        assert engine.status().agents["nut-rack"].committed
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_upsmon_in_home_assistant_runs_nothing_when_the_grid_returns_first(
    socket_enabled: None,
    hass: HomeAssistant,
    mock_client: AsyncMock,
    fake_session: Any,
    tmp_path: Path,
) -> None:
    entry, port = await _station(hass, fake_session, delay=6)
    manager = entry.runtime_data.nut
    session = fake_session.instances[-1]
    async with running_upsmon(
        tmp_path, port, ups="rack", user="monuser", password=PASSWORD
    ) as upsmon:
        await wait_for(lambda: len(manager.clients_of(DELTA2_SN)) == 1, 15)
        await feed(hass, session, DELTA2_SN, on_battery(capture_json(CAPTURE)))
        engine = entry.runtime_data.policy.engines[DELTA2_SN]
        await wait_for(lambda: engine.status().agents["nut-rack"].commit_at is not None, 10)
        commit_at = engine.status().agents["nut-rack"].commit_at
        await wait_for(lambda: any(n.startswith("ONBATT") for n in upsmon.notifications()), 10)
        await feed(hass, session, DELTA2_SN, capture_json(CAPTURE))  # the grid is back
        await wait_for(lambda: any(n.startswith("ONLINE") for n in upsmon.notifications()), 10)
        await asyncio.sleep(max(0.0, commit_at - time.time()) + 4)
        assert not upsmon.ran.exists()
        assert not any(n.startswith(("FSD", "SHUTDOWN")) for n in upsmon.notifications())
        assert not engine.status().agents["nut-rack"].committed
    assert await hass.config_entries.async_unload(entry.entry_id)


async def test_a_restart_during_the_countdown_still_raises_fsd_at_the_commit_point(
    socket_enabled: None, hass: HomeAssistant, mock_client: AsyncMock, fake_session: Any
) -> None:
    entry, port = await _station(hass, fake_session, delay=6)
    await feed(hass, fake_session.instances[-1], DELTA2_SN, on_battery(capture_json(CAPTURE)))
    engine = entry.runtime_data.policy.engines[DELTA2_SN]
    await wait_for(lambda: engine.status().agents["nut-rack"].commit_at is not None, 10)
    commit_at = engine.status().agents["nut-rack"].commit_at
    assert await hass.config_entries.async_unload(entry.entry_id)  # Home Assistant restarts
    await hass.async_block_till_done()
    with patch("homeassistant.config.load_yaml_config_file", return_value={}):
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    await feed(hass, fake_session.instances[-1], DELTA2_SN, on_battery(capture_json(CAPTURE)))
    restored = entry.runtime_data.policy.engines[DELTA2_SN]
    assert restored.status().agents["nut-rack"].commit_at == commit_at
    status = (await upsc(f"rack@127.0.0.1:{port}", "ups.status")).split()
    assert "FSD" not in status
    await wait_for(lambda: restored.status().agents["nut-rack"].committed, 15)
    assert time.time() >= commit_at
    status = (await upsc(f"rack@127.0.0.1:{port}", "ups.status")).split()
    assert status[:3] == ["FSD", "OB", "LB"]
    assert await hass.config_entries.async_unload(entry.entry_id)
