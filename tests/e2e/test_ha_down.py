"""Home Assistant goes down during an outage: the host still shuts down, at its lease deadline.

Real parts as in test_scenarios.py: the stand-in and two mosquittos, HA with
our integration, the Linux agent in dry run. This is the README's ordered
shutdown with Home Assistant as a VM that goes first: no shutdown command will
ever come, so the agent must act on the retained power lease (protocol 2)
alone, at its `shutdown_by` and not a moment before.
"""

from __future__ import annotations

import asyncio
import json
import re
import time

from homeassistant.util import dt as dt_util
import pytest

from custom_components.ecoflow_power.policy.lease import (
    LEASE_REFRESH_SEC,
    LeaseGrid,
    parse_lease,
)
from simulator.devices import river3
from tests.agents.conftest import read_retained

from .conftest import DRY_RUN_SHUTDOWN_LINE, PREFIX

pytestmark = pytest.mark.broker

# The lease says "shut down at the end of the stale window plus the delay if
# nothing newer comes" (no drain is known: the battery holds). Longer than
# one lease refresh, so a live Home Assistant would have moved it on in time:
# here only its absence makes the agent act.
STALE = 28
DELAY = 3
OWN_SHUTDOWN_LINE = "no newer lease by shutdown_by"
LEASE_LINE = re.compile(
    r"lease: grid=on_battery fsd=False shutdown_by=(?P<by>\d+) issued_at=(?P<issued>\d+)"
)


async def test_home_assistant_gone_during_an_outage_the_host_shuts_down_at_its_lease_deadline(
    e2e,
) -> None:
    assert STALE + DELAY > LEASE_REFRESH_SEC
    station = river3(soc=60)  # far above the 20 % threshold: no command is ever due
    sn = station.sn
    env = await e2e(
        devices=[station],
        agents={"nas": {}},
        stale_after_sec=STALE,
        policy={"delay_sec": DELAY},
    )
    agent = env.agents["nas"]

    env.standin.set_scenario(sn, "outage", {"drain_pct_per_min": 0})
    await env.wait_entity(env.grid_entity(sn), "off", within=10)
    # The agent holds an on-battery lease with a deadline (and says so).
    await env.wait(lambda: LEASE_LINE.search(agent.log()), 10, "an on-battery lease at the agent")
    shown = env.state("sensor.agent_nas_lease_deadline")

    # Home Assistant goes down: our entry and HA's MQTT client with it. No
    # newer lease can come; the last one stays retained on the broker.
    stopped_at = time.time()
    assert await env.hass.config_entries.async_unload(env.entry.entry_id)
    for mqtt_entry in env.hass.config_entries.async_entries("mqtt"):
        assert await env.hass.config_entries.async_unload(mqtt_entry.entry_id)
    await env.hass.async_block_till_done()

    topic = f"{PREFIX}/nas/power"
    retained = await asyncio.to_thread(read_retained, env.local, topic, 5.0)
    assert retained is not None, env.report()
    lease = parse_lease(json.dumps(retained), agent.secret, "nas")
    assert lease is not None, retained
    assert lease.grid is LeaseGrid.ON_BATTERY
    assert not lease.fsd
    assert lease.shutdown_by is not None
    # The agent got exactly that lease, and its deadline is still ahead.
    held = LEASE_LINE.findall(agent.log())[-1]
    assert held == (str(lease.shutdown_by), str(lease.issued_at)), env.report()
    assert lease.shutdown_by > stopped_at + 10, (lease, stopped_at)
    # ... and Home Assistant showed it before it went.
    assert shown not in (None, "unknown", "unavailable"), env.report()
    assert dt_util.parse_datetime(shown).timestamp() == lease.shutdown_by

    # Nothing before shutdown_by; the own shutdown (dry run) right after it.
    def acted() -> bool:
        log = agent.log()
        return OWN_SHUTDOWN_LINE in log or DRY_RUN_SHUTDOWN_LINE in log

    while time.time() < lease.shutdown_by:
        assert not acted(), f"acted before shutdown_by {lease.shutdown_by}\n{env.report()}"
        await asyncio.sleep(0.05)
    await env.wait(acted, 5, "the agent's own shutdown at its lease deadline")
    acted_at = time.time()
    assert acted_at <= lease.shutdown_by + 4, (acted_at, lease.shutdown_by)
    await env.wait(lambda: agent.dry_run_shutdowns() == 1, 10, "the dry-run shutdown")
    log = agent.log()
    assert f"{OWN_SHUTDOWN_LINE} {lease.shutdown_by}" in log, log
    assert "self-decided shutdown (lease)" in log, log

    # Decided by the agent alone: no command ever crossed the broker, and the
    # battery was still above the threshold.
    assert env.wire.commands() == [], env.report()
    assert env.standin.device(sn).state.combined_soc > 20
    assert agent.running
