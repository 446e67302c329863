"""End-to-end scenarios on real parts (see conftest.py for the set-up).

Each test drives the simulated station through the stand-in's scenarios and
checks behaviour only: what crossed the local broker (commands and acks, with
their signatures), what Home Assistant shows, and what the agent logged.
"""

from __future__ import annotations

import re

import pytest

from custom_components.ecoflow_power.policy.protocol import verify_message
from simulator.devices import river3

from .conftest import DRY_RUN_SHUTDOWN_LINE, FAST_POLICY

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
