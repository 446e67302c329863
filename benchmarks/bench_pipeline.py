"""End-to-end latency: telemetry into the cloud broker -> shutdown command out of the local one.

    .venv/bin/python -m pytest benchmarks/bench_pipeline.py -s
    BENCH_RUNS=50 .venv/bin/python -m pytest benchmarks/bench_pipeline.py -s   # quicker

Prints figures, asserts no timing. Everything on the path is real:

- "cloud": a mosquitto with a password file, and the simulator's stand-in for
  the signed Open API (`simulator.standin.StandIn`, HTTP only: it hands out the
  MQTT credentials through /certification and serves quota/all);
- Home Assistant (the test harness's `hass`, real clock: no freezer) with this
  integration, whose real `CloudMqttSession` signs in to the stand-in and
  subscribes on the cloud broker, and HA's MQTT integration connected to a
  second, "local" mosquitto;
- `benchmarks/pipeline_probe.py`, a separate process: it publishes the
  simulator's real payloads on the cloud broker as the power station would,
  and subscribes to `power-manager/+/cmd` on the local broker as the agent
  would. Both timestamps come from that process's perf_counter.

Measured: from just before the probe publishes the telemetry message that
flips the grid to "lost" (the battery already reads 15 % < threshold 20 %,
debounce 0) to the arrival of the signed shutdown command. Two stations run
interleaved: a River 3 (obfuscated protobuf push, `/app/device/property/SN`)
and a Delta 2 (Open-API JSON push, `/open/ACCOUNT/SN/quota`), one agent each.

Re-arming between runs: the probe publishes the station's grid-connected
pushes (they make the policy send an abort, as the delay is 600 s, which is
timed too: "restore -> abort"), then the benchmark waits until the agent's
cooldown (1 s, the smallest allowed) has passed before the next trigger; the
other station runs in that gap. Resends are pushed out of the way
(resend_interval_sec 3600) and the probe only counts command ids it has not
seen before. The first WARMUP rounds are not counted.
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import AsyncIterator
import json
import os
from pathlib import Path
import platform
import statistics
import sys
import time
from typing import Any
from unittest.mock import patch

from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ecoflow_power.config_flow import account_unique_id
from custom_components.ecoflow_power.const import (
    CONF_ACCESS_KEY,
    CONF_ADD_NEW_DEVICES,
    CONF_AGENTS,
    CONF_BASE_URL,
    CONF_DEVICES,
    CONF_EXCLUDED_DEVICES,
    CONF_GRID_CONFIRM,
    CONF_POLICY,
    CONF_REGION,
    CONF_SECRET_KEY,
    CONF_STALE_AFTER,
    DOMAIN,
)
from custom_components.ecoflow_power.ecoflow.cloud_messages import maybe_json as _maybe_json
from custom_components.ecoflow_power.ecoflow.models import identify_model
from custom_components.ecoflow_power.ecoflow.state import GridStatus, MessageSource
from custom_components.ecoflow_power.ecoflow.tracker import DeviceTracker
from simulator.devices import Outgoing, SimulatedDevice, delta2, river3
from simulator.standin import StandIn
from tests.helpers.mosquitto import MosquittoBroker
from tests.integration.mqtt_helpers import setup_real_mqtt

RUNS = int(os.environ.get("BENCH_RUNS", "200"))
WARMUP = int(os.environ.get("BENCH_WARMUP", "5"))
COOLDOWN_SEC = 1
ACCESS_KEY = "bench-access-key"
SECRET_KEY = "bench-secret-key"
ACCOUNT = "open-bench-account"
MQTT_PASSWORD = "bench-mqtt-password"
SIM_USER = "simulator"
SIM_PASSWORD = "simulator-password"
PROBE = Path(__file__).resolve().parent / "pipeline_probe.py"
ROOT = Path(__file__).resolve().parent.parent


def _source(out: Outgoing) -> MessageSource:
    return MessageSource.OPEN_QUOTA if out.topic.startswith("/open/") else MessageSource.PROPERTY


def _grid_after(device: SimulatedDevice, messages: list[Outgoing]) -> GridStatus:
    tracker = DeviceTracker(
        device.sn, identify_model(device.sn, device.product_name), grid_confirm_sec=0
    )
    now = time.time()
    for index, out in enumerate(messages):
        tracker.ingest(_maybe_json(out.payload), _source(out), now + index * 0.01)
    return tracker.snapshot(now + len(messages) * 0.01, 120).grid


def station_payloads(device: SimulatedDevice) -> tuple[list[Outgoing], list[Outgoing]]:
    """(grid-connected pushes, the grid-lost pushes that flip the grid), battery at 15 %.

    The trigger is the single grid-lost push that reports the loss on its own
    when there is one, else the shortest run of the device's grid-lost pushes
    that does (a River 3 needs its display and runtime pushes together).
    """
    for pack in device.state.packs:
        pack.soc = 15.0
    device.state.grid = True
    restore = device.pushes(ACCOUNT)
    device.state.grid = False
    lost = device.pushes(ACCOUNT)
    assert _grid_after(device, restore) is GridStatus.CONNECTED
    for out in lost:
        if _grid_after(device, [*restore, out]) is GridStatus.LOST:
            return restore, [out]
    for end in range(2, len(lost) + 1):
        if _grid_after(device, [*restore, *lost[:end]]) is GridStatus.LOST:
            return restore, lost[:end]
    raise AssertionError(f"the grid-lost pushes of {device.sn} do not report the grid lost")


def encode(messages: list[Outgoing]) -> list[list[str]]:
    return [[m.topic, base64.b64encode(m.payload).decode()] for m in messages]


class Probe:
    def __init__(self, process: asyncio.subprocess.Process) -> None:
        self.process = process

    async def request(self, msgs: list[Outgoing], agent: str, action: str | None) -> dict[str, Any]:
        assert self.process.stdin
        assert self.process.stdout
        line = {"msgs": encode(msgs), "agent": agent, "action": action, "timeout": 10}
        self.process.stdin.write((json.dumps(line) + "\n").encode())
        await self.process.stdin.drain()
        return json.loads(await self.process.stdout.readline())


@pytest.fixture
async def brokers(socket_enabled: None) -> AsyncIterator[tuple[MosquittoBroker, MosquittoBroker]]:
    cloud = MosquittoBroker(users={ACCOUNT: MQTT_PASSWORD, SIM_USER: SIM_PASSWORD})
    local = MosquittoBroker()
    cloud.start()
    local.start()
    try:
        yield cloud, local
    finally:
        cloud.cleanup()
        local.cleanup()


def percentile(values: list[float], p: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[p - 1]


def summary(name: str, values: list[float]) -> str:
    return (
        f"{name:34} n={len(values):4d}  p50 {percentile(values, 50):7.2f}  "
        f"p90 {percentile(values, 90):7.2f}  p99 {percentile(values, 99):7.2f}  "
        f"min {min(values):6.2f}  max {max(values):7.2f}  mean {statistics.fmean(values):6.2f}"
    )


@pytest.mark.timeout(3600)
async def test_pipeline_latency(
    hass: HomeAssistant, brokers: tuple[MosquittoBroker, MosquittoBroker]
) -> None:
    cloud, local = brokers
    r3, d2 = river3(soc=15.0), delta2(soc=15.0)
    stations = {"r3": r3, "d2": d2}
    standin = StandIn(
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        broker_host=cloud.host,
        broker_port=cloud.port,
        devices=[river3(soc=15.0), delta2(soc=15.0)],
        account=ACCOUNT,
        mqtt_password=MQTT_PASSWORD,
        auto_tick=False,
    )
    # HTTP only: the probe is the device on MQTT, the stand-in the signed Open API.
    await standin.start(with_mqtt=False)
    mqtt_entry = await setup_real_mqtt(hass, local)
    policy = {
        "soc_threshold": 20,
        "debounce_sec": 0,
        "delay_sec": 600,
        "ttl_sec": 600,
        "cooldown_sec": COOLDOWN_SEC,
        "resend_interval_sec": 3600,
    }
    entry = MockConfigEntry(
        domain=DOMAIN,
        title="EcoFlow bench",
        unique_id=account_unique_id(ACCESS_KEY),
        data={
            CONF_ACCESS_KEY: ACCESS_KEY,
            CONF_SECRET_KEY: SECRET_KEY,
            CONF_REGION: "eu",
            CONF_BASE_URL: standin.url,
        },
        options={
            CONF_DEVICES: [r3.sn, d2.sn],
            CONF_EXCLUDED_DEVICES: [],
            CONF_ADD_NEW_DEVICES: False,
            CONF_STALE_AFTER: 120,
            CONF_GRID_CONFIRM: 0,
            CONF_AGENTS: {
                agent: {"device": device.sn, "secret": f"{agent}-secret"}
                for agent, device in stations.items()
            },
            CONF_POLICY: {device.sn: dict(policy) for device in stations.values()},
        },
    )
    entry.add_to_hass(hass)
    with patch("homeassistant.config.load_yaml_config_file", return_value={}):
        assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    telemetry = entry.runtime_data.telemetry
    for _ in range(200):
        if telemetry.cloud_connected:
            break
        await asyncio.sleep(0.05)
    assert telemetry.cloud_connected, "the cloud session did not connect"

    payloads = {agent: station_payloads(device) for agent, device in stations.items()}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        str(PROBE),
        "--cloud-port",
        str(cloud.port),
        "--cloud-user",
        SIM_USER,
        "--cloud-password",
        SIM_PASSWORD,
        "--local-port",
        str(local.port),
        stdin=asyncio.subprocess.PIPE,
        stdout=asyncio.subprocess.PIPE,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )
    probe = Probe(process)
    assert process.stdout
    assert json.loads(await process.stdout.readline()) == {"ready": True}

    shutdown_ms: dict[str, list[float]] = {agent: [] for agent in stations}
    abort_ms: dict[str, list[float]] = {agent: [] for agent in stations}
    failures: list[str] = []
    fired_at = dict.fromkeys(stations, 0.0)
    started = time.monotonic()
    try:
        # Grid present everywhere first, so the first trigger is a real change.
        for agent, (restore, _trigger) in payloads.items():
            await probe.request(restore, agent, None)
        await asyncio.sleep(0.5)
        for round_index in range(WARMUP + RUNS):
            for agent, (restore, trigger) in payloads.items():
                wait = fired_at[agent] + COOLDOWN_SEC + 0.05 - time.monotonic()
                if wait > 0:
                    await asyncio.sleep(wait)
                fired = await probe.request(trigger, agent, "shutdown")
                fired_at[agent] = time.monotonic()
                aborted = await probe.request(restore, agent, "abort")
                if not (fired["ok"] and aborted["ok"]):
                    failures.append(f"round {round_index} {agent}: {fired} {aborted}")
                    continue
                if round_index >= WARMUP:
                    shutdown_ms[agent].append(fired["ms"])
                    abort_ms[agent].append(aborted["ms"])
    finally:
        assert process.stdin
        process.stdin.close()
        await process.wait()
        assert await hass.config_entries.async_unload(entry.entry_id)
        assert await hass.config_entries.async_unload(mqtt_entry.entry_id)
        await hass.async_block_till_done()
        await standin.stop()

    elapsed = time.monotonic() - started
    names = {"r3": "River 3 (protobuf push)", "d2": "Delta 2 (Open-API JSON push)"}
    print()
    print(
        f"pipeline latency, ms ({RUNS} runs per station after {WARMUP} warm-up rounds, "
        f"{elapsed:.0f} s; Python {platform.python_version()}, {os.cpu_count()} CPUs, "
        f"asyncio debug {asyncio.get_running_loop().get_debug()})"
    )
    for agent, (restore, trigger) in payloads.items():
        print(
            f"{names[agent]}: trigger = {len(trigger)} push(es), "
            f"{sum(len(m.payload) for m in trigger)} bytes; restore = {len(restore)} pushes"
        )
    for agent, values in shutdown_ms.items():
        if len(values) >= 2:
            print(summary(f"grid lost -> shutdown, {names[agent]}", values))
    both = [v for values in shutdown_ms.values() for v in values]
    if len(both) >= 2:
        print(summary("grid lost -> shutdown, both", both))
    for agent, values in abort_ms.items():
        if len(values) >= 2:
            print(summary(f"grid back -> abort, {names[agent]}", values))
    if failures:
        print(f"{len(failures)} runs without the expected command:")
        for failure in failures[:10]:
            print("  ", failure)
