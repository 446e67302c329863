"""CPU time Home Assistant spends per telemetry message, entities loaded.

    .venv/bin/python -m pytest benchmarks/bench_ha_cpu.py -s
    BENCH_MESSAGES=500 .venv/bin/python -m pytest benchmarks/bench_ha_cpu.py -s   # quicker
    BENCH_TREE=/work/wt/baseline .venv/bin/python -m pytest benchmarks/bench_ha_cpu.py -s
        # the code of another checkout (see benchmarks/conftest.py), same method

Prints figures, asserts no timing. The integration is set up in the test
harness's `hass` with its entities (the default-enabled ones) and the policy
(one agent per station; no MQTT, so nothing is published). The cloud session
is replaced by a stub, and each captured message is handed to
`EcoflowTelemetryCoordinator._handle_message` exactly as the real session does.

Per message, on the event loop's thread (time.thread_time: CPU, not wall):
- "handle": `_handle_message` itself (decode, filters, normalize, policy
  engine, coordinator listeners and the entities' state writes it triggers);
- "+ settle": what it scheduled besides, up to `hass.async_block_till_done()`
  (state_changed listeners, tasks), minus the cost of an idle
  `async_block_till_done()` measured the same way.
Figures are the median of REPEATS batches of BENCH_MESSAGES messages.

Cases: the River 3 pb01 protobuf get-reply capture and the Delta 2 js01 JSON
get-reply capture, each replayed unchanged (the state does not change: no
entity writes) and with values changing on every message (output power, and
the battery level every 10th message: entity writes every time).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterator
import copy
import os
from pathlib import Path
import platform
import statistics
import time
from typing import Any
from unittest.mock import AsyncMock, patch

from homeassistant.core import HomeAssistant
import pytest

import custom_components.ecoflow_power
from custom_components.ecoflow_power.const import CONF_AGENTS, CONF_POLICY, DOMAIN
from custom_components.ecoflow_power.ecoflow.cloud_messages import RawMessage
from custom_components.ecoflow_power.ecoflow.envelope import payload_bytes
from custom_components.ecoflow_power.ecoflow.proto import envelope_pb2, power_station_pb2
from custom_components.ecoflow_power.ecoflow.state import MessageSource
from tests.integration.conftest import ACCOUNT, DELTA2_SN, RIVER3_SN, FakeSession, make_entry
from tests.integration.helpers import CAPTURES, capture_json

MESSAGES = int(os.environ.get("BENCH_MESSAGES", "2000"))
CODE_TREE = Path(custom_components.ecoflow_power.__file__).resolve().parents[2]
REPEATS = 5


def river3_payloads(changing: bool) -> Iterator[bytes]:
    """The pb01 capture; changing: output power (and every 10th time the SoC) differ."""
    capture = payload_bytes((CAPTURES / "pb01_river3_getreply_maodijim.bin").read_bytes())
    if not changing:
        while True:
            yield capture
    envelope = envelope_pb2.HeaderMessage.FromString(capture)
    index = next(i for i, h in enumerate(envelope.header) if (h.cmd_func, h.cmd_id) == (254, 21))
    display = power_station_pb2.DisplayPropertyUpload.FromString(envelope.header[index].pdata)
    step = 0
    while True:
        step += 1
        display.pow_out_sum_w = 50.0 + step % 97
        display.pow_get_ac_out = -(50.0 + step % 97)
        soc = 19.0 + (step // 10) % 5
        display.cms_batt_soc = display.bms_batt_soc = soc
        envelope.header[index].pdata = display.SerializeToString()
        yield envelope.SerializeToString()


def delta2_payloads(changing: bool) -> Iterator[dict[str, Any]]:
    """The js01 capture; changing: output power (and every 10th time the SoC) differ."""
    capture = capture_json("js01_delta2_getreply_latestQuotas_iobroker.json")
    if not changing:
        while True:
            yield capture
    step = 0
    while True:
        step += 1
        message = copy.deepcopy(capture)
        quota = message["data"]["quotaMap"]
        watts = 300 + step % 97
        quota["pd.wattsOutSum"] = quota["inv.outputWatts"] = watts
        soc = 60 + (step // 10) % 5
        for key in ("bms_emsStatus.lcdShowSoc", "bms_bmsStatus.soc", "pd.soc"):
            quota[key] = soc
        for key in ("bms_emsStatus.f32LcdShowSoc", "bms_bmsStatus.f32ShowSoc"):
            quota[key] = float(soc)
        yield message


CASES: list[tuple[str, str, Callable[[bool], Iterator[Any]], bool]] = [
    ("River 3 pb01 protobuf, unchanged", RIVER3_SN, river3_payloads, False),
    ("River 3 pb01 protobuf, changing", RIVER3_SN, river3_payloads, True),
    ("Delta 2 js01 JSON, unchanged", DELTA2_SN, delta2_payloads, False),
    ("Delta 2 js01 JSON, changing", DELTA2_SN, delta2_payloads, True),
]


@pytest.fixture
async def loaded(hass: HomeAssistant):
    client = AsyncMock()
    client.devices.return_value = list(ACCOUNT)
    FakeSession.instances = []
    with (
        patch("custom_components.ecoflow_power.config_flow.EcoflowApiClient", return_value=client),
        patch("custom_components.ecoflow_power.coordinator.CloudMqttSession", FakeSession),
    ):
        entry = make_entry(
            **{
                CONF_AGENTS: {
                    "nas": {"device": DELTA2_SN, "secret": "s1"},
                    "pc": {"device": RIVER3_SN, "secret": "s2"},
                },
                CONF_POLICY: {DELTA2_SN: {"soc_threshold": 20}, RIVER3_SN: {"soc_threshold": 20}},
            }
        )
        entry.add_to_hass(hass)
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
        yield entry
        assert await hass.config_entries.async_unload(entry.entry_id)
        await hass.async_block_till_done()


async def _batch(
    hass: HomeAssistant, handle: Callable[[RawMessage], None], sn: str, payloads: Iterator[Any]
) -> tuple[float, float]:
    """CPU microseconds per message: (handle, scheduled work until settled)."""
    messages = [next(payloads) for _ in range(MESSAGES)]
    handle_cpu = settle_cpu = 0.0
    for payload in messages:
        message = RawMessage(sn, MessageSource.GET_REPLY, payload, time.time(), f"/bench/{sn}")
        start = time.thread_time()
        handle(message)
        middle = time.thread_time()
        await hass.async_block_till_done()
        end = time.thread_time()
        handle_cpu += middle - start
        settle_cpu += end - middle
    return handle_cpu / MESSAGES * 1e6, settle_cpu / MESSAGES * 1e6


async def _idle_settle(hass: HomeAssistant) -> float:
    total = 0.0
    for _ in range(MESSAGES):
        start = time.thread_time()
        await hass.async_block_till_done()
        total += time.thread_time() - start
    return total / MESSAGES * 1e6


@pytest.mark.timeout(1800)
async def test_cpu_per_message(hass: HomeAssistant, loaded) -> None:
    telemetry = loaded.runtime_data.telemetry
    handle = telemetry._handle_message
    entities = len(hass.states.async_all())
    idle = statistics.median([await _idle_settle(hass) for _ in range(REPEATS)])
    rows = []
    for name, sn, factory, changing in CASES:
        payloads = factory(changing)
        await _batch(hass, handle, sn, payloads)  # warm-up: caches, first state writes
        runs = [await _batch(hass, handle, sn, payloads) for _ in range(REPEATS)]
        handle_us = statistics.median(r[0] for r in runs)
        settle_us = statistics.median(r[1] for r in runs)
        rows.append((name, handle_us, max(settle_us - idle, 0.0), handle_us + settle_us - idle))
    print()
    print(f"code: {CODE_TREE}")
    print(
        f"HA CPU per telemetry message, us ({MESSAGES} messages x {REPEATS} batches, median; "
        f"{entities} entities of {DOMAIN}; Python {platform.python_version()}, "
        f"asyncio debug {asyncio.get_running_loop().get_debug()})"
    )
    print(f"{'case':36} {'handle':>8} {'+settle':>8} {'total':>8}")
    for name, handle_us, settle_us, total_us in rows:
        print(f"{name:36} {handle_us:8.1f} {settle_us:8.1f} {total_us:8.1f}")
    print(f"(idle async_block_till_done: {idle:.1f} us, subtracted from +settle)")
