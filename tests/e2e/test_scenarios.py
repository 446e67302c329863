"""End-to-end scenarios on real parts (see conftest.py for the set-up).

Each test drives the simulated station through the stand-in's scenarios and
checks behaviour only: what crossed the local broker (commands and acks, with
their signatures), what Home Assistant shows, and what the agent logged.
"""

from __future__ import annotations

import asyncio
import re
import time

import pytest

from custom_components.ecoflow_power.policy.protocol import verify_message
from simulator.devices import river3

from .conftest import DRY_RUN_SHUTDOWN_LINE, FAST_POLICY, TIME_SCALE

pytestmark = pytest.mark.broker

REASON = re.compile(r"^grid lost and soc_min (?P<soc>[\d.]+) <= (?P<threshold>[\d.]+)$")


async def test_outage_drain_to_threshold_shuts_the_host_down(e2e) -> None:
    station = river3(soc=24)
    sn = station.sn
    env = await e2e(devices=[station], agents={"nas": {}})
    assert env.state("binary_sensor.agent_nas_online") == "on"

    env.standin.set_scenario(sn, "outage", {"drain_pct_per_min": 1})
    await env.wait_entity(env.grid_entity(sn), "off", within=10)
    shutdown = await env.wait_command("nas", "shutdown", within=30)

    # Signed for this agent only, with the station's settings.
    env.assert_signed("nas", shutdown)
    assert not verify_message(shutdown, "another-agent-secret")
    assert shutdown["v"] == 1
    assert shutdown["device"] == sn
    assert shutdown["delay_sec"] == FAST_POLICY["delay_sec"]
    assert shutdown["ttl_sec"] == FAST_POLICY["ttl_sec"]
    reason = REASON.match(shutdown["reason"])
    assert reason, shutdown["reason"]
    assert float(reason["soc"]) <= 20
    assert float(reason["threshold"]) == 20

    # The agent runs the protocol: received, scheduled (commit point), executing.
    cid = shutdown["id"]
    await env.wait_ack("nas", cid, "executing", within=15)
    acks = env.wire.acks("nas", cid)
    assert [a["status"] for a in acks] == ["received", "scheduled", "executing"], env.report()
    assert acks[1]["execute_at"] == shutdown["issued_at"] + shutdown["delay_sec"]
    for ack in acks:
        env.assert_signed("nas", ack)
        assert ack["agent"] == "nas"
    await env.wait_dry_run_shutdown("nas")
    assert env.agents["nas"].dry_run_shutdowns() == 1

    # Home Assistant shows it: the ack, the command, and the policy past its commit point.
    await env.wait_entity("sensor.agent_nas_last_acknowledgement", "executing")
    assert env.state("sensor.agent_nas_last_command") == "shutdown"
    await env.wait_entity(env.policy_entity(sn), "committed")
    seen = env.states_seen(env.policy_entity(sn))
    assert seen.index("on_battery") < seen.index("critical_pending") < seen.index("committed")
    assert "shutdown_sent" in seen
    assert [
        t for t in env.event_types() if t in ("grid_lost", "battery_critical", "shutdown_sent")
    ] == ["grid_lost", "battery_critical", "shutdown_sent"]
    # One command, no resend: the ack arrived in time.
    assert len(env.wire.commands("nas")) == 1, env.report()
    assert DRY_RUN_SHUTDOWN_LINE in env.agents["nas"].log()


async def test_power_back_before_the_commit_point_aborts(e2e) -> None:
    station = river3(soc=22)
    sn = station.sn
    # A longer delay than scenario 1: the abort must win the race by a wide margin.
    env = await e2e(devices=[station], agents={"nas": {}}, policy={"delay_sec": 6})

    env.standin.set_scenario(sn, "outage", {"drain_pct_per_min": 1})
    shutdown = await env.wait_command("nas", "shutdown", within=30)
    cid = shutdown["id"]
    commit_at = shutdown["issued_at"] + shutdown["delay_sec"]
    await env.wait_ack("nas", cid, "scheduled")

    # The grid comes back while the agent waits for its commit point.
    env.standin.set_scenario(sn, "restore", {"charge_pct_per_min": 1})
    abort = await env.wait_command("nas", "abort", within=10)
    env.assert_signed("nas", abort)
    assert abort["device"] == sn
    # An abort is only good until the commit point of the shutdown it targets.
    assert abort["issued_at"] + abort["ttl_sec"] <= commit_at
    aborted = await env.wait_ack("nas", abort["id"], "aborted")
    assert aborted["ref"] == cid
    env.assert_signed("nas", aborted)

    # Past the commit point: the shutdown never executed, on the wire or in the log.
    await env.wait(lambda: time.time() >= commit_at + 2, 20, "the commit point to pass")
    assert env.wire.statuses("nas", cid) == ["received", "scheduled"], env.report()
    assert not any(a["status"] == "executing" for a in env.wire.acks("nas")), env.report()
    assert env.agents["nas"].dry_run_shutdowns() == 0
    assert "aborted" in env.agents["nas"].log()

    await env.wait_entity("sensor.agent_nas_last_acknowledgement", "aborted")
    assert env.state("sensor.agent_nas_last_command") == "abort"
    await env.wait_entity(env.policy_entity(sn), "normal")
    assert "committed" not in env.states_seen(env.policy_entity(sn))
    assert "shutdown_aborted" in env.event_types("nas")
    assert [m.payload["action"] for m in env.wire.commands("nas")] == ["shutdown", "abort"]


async def test_flapping_grid_and_soc_glitches_send_nothing(e2e) -> None:
    # Below the threshold from the start: every outage starts a debounce timer,
    # and every return of the grid must cancel it before it fires.
    station = river3(soc=19)
    sn = station.sn
    env = await e2e(devices=[station], agents={"nas": {}}, policy={"debounce_sec": 5})

    # 2 s off, 2 s on (period in simulated seconds), the battery holds its level.
    period = 4 * TIME_SCALE
    env.standin.set_scenario(
        sn, "flap", {"period_sec": period, "drain_pct_per_min": 0, "charge_pct_per_min": 0}
    )
    glitches = []
    end = time.monotonic() + 14
    while time.monotonic() < end:
        await asyncio.sleep(0.7)
        # One-message SoC glitches both ways, on top of the flapping.
        soc = 90 if len(glitches) % 2 else 2
        glitches.append(env.standin.set_scenario(sn, "glitch", {"soc": soc}))
    await asyncio.sleep(1)
    assert all(glitch.fired for glitch in glitches), "the stand-in did not publish the glitches"

    # The side recorder saw the whole window: not one command.
    assert env.wire.commands() == [], env.report()
    assert "command " not in env.agents["nas"].log()
    # ... and the window did exercise the policy: outages seen, timers started.
    types = env.event_types()
    assert types.count("grid_lost") >= 2, env.report()
    assert types.count("grid_restored") >= 2, env.report()
    assert "battery_critical" in types, env.report()
    assert "shutdown_sent" not in types
    assert not {"shutdown_sent", "committed"} & set(env.states_seen(env.policy_entity(sn)))
    assert env.state("sensor.agent_nas_last_command") == "unknown"
