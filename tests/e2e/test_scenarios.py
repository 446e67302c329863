"""End-to-end scenarios on real parts (see conftest.py for the set-up).

Each test drives the simulated station through the stand-in's scenarios and
checks behaviour only: what crossed the local broker (commands and acks, with
their signatures), what Home Assistant shows, and what the agent logged.
"""

from __future__ import annotations

import asyncio
import re
import time

from homeassistant.helpers import issue_registry as ir
import pytest

from custom_components.ecoflow_power.const import DOMAIN
from custom_components.ecoflow_power.policy.protocol import verify_message
from simulator.devices import delta2, river3
from tests.integration.mqtt_helpers import publish_side

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
    env = await e2e(devices=[station], agents={"nas": {}}, policy={"delay_sec": 8})

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
    # restore_confirm_sec 1: each 2 s of grid counts as a real return. With the
    # default (60 s) the on-battery time would add up over the flaps and end in
    # a shutdown, by design (docs/protocol.md, rule 3).
    env = await e2e(
        devices=[station],
        agents={"nas": {}},
        policy={"debounce_sec": 5, "restore_confirm_sec": 1},
    )

    # 2 s off, 2 s on (period in simulated seconds), the battery holds its level.
    period = 4 * TIME_SCALE
    env.standin.set_scenario(
        sn, "flap", {"period_sec": period, "drain_pct_per_min": 0, "charge_pct_per_min": 0}
    )
    state = env.standin.device(sn).state
    glitches = published = 0
    end = time.monotonic() + 14
    while time.monotonic() < end:
        # One-message SoC glitches both ways, on top of the flapping.
        env.standin.set_scenario(sn, "glitch", {"soc": 90 if glitches % 2 else 2})
        glitches += 1
        await asyncio.sleep(0.7)
        published += state.glitch_soc is None  # the next push carried (and used up) it
    await asyncio.sleep(1)
    assert published == glitches >= 10, f"only {published} of {glitches} glitches went out"

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


async def test_telemetry_stops_on_battery_fail_safe_shutdown(e2e) -> None:
    station = river3(soc=60)
    sn = station.sn
    stale_after = 4
    # Simulated time runs TIME_SCALE times faster than the engine's clock, so the
    # station's runtime figure (simulated minutes) would put the energy estimate
    # hours out (docs/protocol.md, rules 5 and 16): a huge margin keeps this
    # test on the stale-window path. The estimate has its own tests.
    env = await e2e(
        devices=[station],
        agents={"nas": {}},
        stale_after_sec=stale_after,
        policy={"estimate_margin_sec": 10**7},
    )

    # On battery, far above the threshold: nothing to do yet.
    env.standin.set_scenario(sn, "outage", {"drain_pct_per_min": 0.2})
    await env.wait_entity(env.grid_entity(sn), "off", within=10)
    await env.wait_entity(env.policy_entity(sn), "on_battery")
    await asyncio.sleep(1)
    assert env.wire.commands() == [], env.report()

    # The station falls silent (the cloud connection stays up).
    env.standin.set_scenario(sn, "stall")
    stalled_at = time.time()
    shutdown = await env.wait_command("nas", "shutdown", within=stale_after + 20)
    # Not before the stale window ran out (slack: issued_at is whole seconds, and
    # the last message may have come a tick before the stall).
    assert shutdown["issued_at"] >= stalled_at + stale_after - 2
    assert shutdown["reason"].startswith("telemetry stale for"), shutdown["reason"]
    assert shutdown["reason"].endswith("with grid last seen lost"), shutdown["reason"]
    env.assert_signed("nas", shutdown)
    assert env.standin.device(sn).state.combined_soc > 50  # not a low-battery shutdown

    cid = shutdown["id"]
    await env.wait_ack("nas", cid, "executing")
    assert env.wire.statuses("nas", cid) == ["received", "scheduled", "executing"]
    await env.wait_dry_run_shutdown("nas")
    assert env.agents["nas"].dry_run_shutdowns() == 1

    await env.wait_entity("sensor.agent_nas_last_acknowledgement", "executing")
    await env.wait_entity(env.policy_entity(sn), "committed")
    # A repair says why, and the grid is no longer claimed "off" on stale
    # evidence (the entities re-check freshness on a 10 s timer).
    await env.wait(
        lambda: env.state(env.grid_entity(sn)) in ("unknown", "unavailable"),
        15,
        "the grid entity to drop its stale 'off'",
    )
    assert ir.async_get(env.hass).async_get_issue(DOMAIN, f"telemetry_stale_{sn}")
    stale_critical = [
        e for e in env.events if e["type"] == "battery_critical" and e.get("agent_id") is None
    ]
    assert stale_critical, env.report()


async def test_local_broker_restart_with_a_pending_command(e2e) -> None:
    station = river3(soc=22)
    sn = station.sn
    env = await e2e(devices=[station], agents={"nas": {}}, policy={"resend_interval_sec": 2})
    agent = env.agents["nas"]
    # HA's MQTT client publishes its birth message 5 s after its last subscribe;
    # a broker restart before that makes HA's own birth task raise (HA core, not
    # this integration), so the test starts from a fully initialised client.
    await env.wait(env.wire.births, 15, "HA's MQTT birth message")

    # The host's agent is down when the shutdown goes out: nobody acks it.
    agent.stop()
    await env.wait_entity("binary_sensor.agent_nas_online", "off")
    env.standin.set_scenario(sn, "outage", {"drain_pct_per_min": 1})
    first = await env.wait_command("nas", "shutdown", within=30)
    cid = first["id"]
    expires_at = first["issued_at"] + first["ttl_sec"]

    # The local broker restarts (no persistence: every queued message is gone).
    env.local.restart()
    restarted_at = time.time()
    agent.start()
    # The agent is back, HA's MQTT client reconnected and re-subscribed.
    await env.wait_entity("binary_sensor.agent_nas_online", "on", within=30)

    # A resend (same id, same signature) reaches the agent within the ttl.
    executing = await env.wait_ack("nas", cid, "executing", within=30)
    assert executing["at"] <= expires_at
    resent = [m for m in env.wire.commands("nas") if m.at >= restarted_at]
    assert resent, env.report()
    shutdowns = env.wire.commands("nas", "shutdown")
    same = [m for m in shutdowns if m.payload["id"] == cid]
    assert all(m.payload == first for m in same), "a resend must be byte-identical"
    assert len(same) >= 2
    # An agent that reconnects only after the commit point, without having
    # acknowledged, may also get one fresh shutdown (issue 11: re-issue); the
    # agent merges it into the job it holds, and the host goes down once.
    fresh = [m for m in shutdowns if m.payload["id"] != cid]
    assert len({m.payload["id"] for m in fresh}) <= 1, env.report()
    assert all(m.at >= restarted_at for m in fresh), env.report()

    # A late copy of the same command (as a broker redelivery would be): duplicate.
    before = len(env.wire.acks("nas", cid))
    await publish_side(env.local, "power-manager/nas/cmd", first)
    await env.wait(
        lambda: "duplicate" in env.wire.statuses("nas", cid)[before:],
        10,
        "the agent to answer duplicate to the repeat",
    )
    await asyncio.sleep(1)
    statuses = env.wire.statuses("nas", cid)
    assert statuses.count("received") == 1, env.report()
    assert statuses.count("executing") == 1, env.report()
    assert agent.dry_run_shutdowns() == 1, agent.log()
    assert len(env.wire.commands("nas", "abort")) == 0
    await env.wait_entity(env.policy_entity(sn), "committed")
    assert env.state("sensor.agent_nas_last_command") == "shutdown"
    # HA's MQTT client finished its reconnection (birth message after its
    # cooldown); unloading before that would make HA's own birth task fail.
    await env.wait(lambda: env.wire.births(restarted_at), 15, "HA's MQTT birth after the restart")


async def test_two_agents_go_down_in_threshold_order(e2e) -> None:
    # A Delta 2 with an extra battery; the extra pack drains much faster, so
    # the weakest pack reaches 20 % while the screen still shows ~30 %.
    station = delta2(soc=46, extra_pack=True)
    sn = station.sn
    env = await e2e(
        devices=[station],
        agents={"vm": {"soc_threshold": 40}, "nas": {"soc_threshold": 20}},
    )
    weakest = f"sensor.{env.slug(sn)}_battery_weakest_pack"
    combined = f"sensor.{env.slug(sn)}_battery"

    env.standin.set_scenario(sn, "diverge", {"main_pct_per_min": 0.1, "extra_pct_per_min": 2.5})
    vm = await env.wait_command("vm", "shutdown", within=30)
    # vm goes first, alone: nas's threshold is not reached yet.
    assert env.wire.commands("nas") == [], env.report()
    assert REASON.match(vm["reason"])["threshold"] == "40", vm["reason"]
    env.assert_signed("vm", vm)
    assert not verify_message(vm, env.agents["nas"].secret)
    await env.wait_ack("vm", vm["id"], "executing")
    await env.wait_dry_run_shutdown("vm")
    assert env.agents["nas"].dry_run_shutdowns() == 0

    nas = await env.wait_command("nas", "shutdown", within=40)
    combined_then = float(env.state(combined))
    weakest_then = float(env.state(weakest))
    reason = REASON.match(nas["reason"])
    assert reason, nas["reason"]
    assert reason["threshold"] == "20"
    assert float(reason["soc"]) <= 20
    # The weakest pack decided, not the combined figure on the screen.
    assert weakest_then <= 20, env.report()
    assert combined_then > 20, env.report()
    env.assert_signed("nas", nas)
    assert not verify_message(nas, env.agents["vm"].secret)
    await env.wait_ack("nas", nas["id"], "executing")
    await env.wait_dry_run_shutdown("nas")

    order = [m.agent for m in env.wire.commands(action="shutdown")]
    assert order == ["vm", "nas"], env.report()
    assert env.agents["vm"].dry_run_shutdowns() == 1
    assert env.agents["nas"].dry_run_shutdowns() == 1
    await env.wait_entity("sensor.agent_vm_last_acknowledgement", "executing")
    await env.wait_entity("sensor.agent_nas_last_acknowledgement", "executing")
