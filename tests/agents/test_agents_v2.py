"""Protocol 2 behaviour of the host agents, as real processes against a real mosquitto.

Every test runs for the Linux (Python) and the macOS (bash) agent through the
`harness` fixture. The scenarios are the ones of issue 12's "Done when": the
integration falls silent during an outage, an agent restarts mid-countdown, a
host starts while `fsd` is set (and when that lease has long expired), an
agent without a secret, an abort for another job, hostile payloads.
Timings are a few seconds; slack covers a loaded test machine, never the
difference between two behaviours.
"""

from __future__ import annotations

import os
from pathlib import Path
import signal
import subprocess
import time

import pytest

from tests.agents.conftest import (
    DRY_RUN_SHUTDOWN_LINE,
    AgentProcess,
    Harness,
    command,
    lease,
    signature_ok,
)

pytestmark = pytest.mark.broker


def executions(h: Harness) -> int:
    return h.agent.log().count(DRY_RUN_SHUTDOWN_LINE)


def wait_execution(h: Harness, count: int = 1, timeout: float = 8.0) -> float:
    """Wait until the agent logged `count` dry-run shutdowns; return when (epoch)."""
    h.collector.wait(lambda: executions(h) >= count, timeout, f"{count} dry-run shutdown(s)")
    return time.time()


def still_idle(h: Harness, seconds: float) -> None:
    """The agent answers a ping, and `seconds` later has still not shut down."""
    before = executions(h)
    ping = command("ping")
    h.send(ping)
    h.collector.wait_ack(ping["id"], "pong")
    time.sleep(seconds)
    assert executions(h) == before, h.agent.log()


# ---------------------------------------------------------------- the lease


def test_home_assistant_silent_on_battery_agent_shuts_down_at_shutdown_by(
    harness: Harness,
) -> None:
    harness.start_agent()
    by = int(time.time()) + 3
    harness.publish_lease(lease(agent_id=harness.agent_id, shutdown_by=by))
    status = harness.collector.wait(
        lambda: next(
            (m.payload for m in harness.collector.on("status") if "lease_deadline" in m.payload),
            None,
        ),
        5,
        "status with the lease deadline",
    )
    assert status["lease_deadline"] == by
    assert signature_ok(status)
    # ... and then Home Assistant says nothing more
    time.sleep(max(0.0, by - time.time() - 1.0))
    assert executions(harness) == 0, "shut down before shutdown_by"
    done = wait_execution(harness, timeout=5)
    assert by - 1.0 <= done <= by + 3.0
    time.sleep(1.5)
    assert executions(harness) == 1  # once, not on every loop


def test_newer_lease_moves_the_deadline_and_grid_present_cancels_it(harness: Harness) -> None:
    harness.start_agent()
    now = int(time.time())
    harness.publish_lease(lease(agent_id=harness.agent_id, shutdown_by=now + 2, issued_at=now))
    later = lease(agent_id=harness.agent_id, shutdown_by=now + 5, issued_at=now + 1)
    harness.publish_lease(later)
    time.sleep(max(0.0, now + 3.5 - time.time()))
    assert executions(harness) == 0, "the newer lease did not replace the deadline"
    harness.publish_lease(
        lease(agent_id=harness.agent_id, grid="present", issued_at=int(time.time()) + 0)
    )
    time.sleep(max(0.0, now + 6.5 - time.time()))
    assert executions(harness) == 0, "grid present did not cancel the own shutdown"
    # an older lease replayed (captured earlier) changes nothing
    harness.publish_lease(later)
    still_idle(harness, 1.0)


def test_started_while_fsd_set_shuts_down(harness: Harness) -> None:
    now = int(time.time())
    # the shutdown went out 5 s ago and its commit point has passed
    harness.publish_lease(
        lease(agent_id=harness.agent_id, fsd=True, shutdown_by=now - 5, issued_at=now - 5)
    )
    harness.start_agent()
    wait_execution(harness, timeout=8)
    # fsd is a level: held by later leases, but acted on once
    harness.publish_lease(lease(agent_id=harness.agent_id, fsd=True, shutdown_by=now))
    still_idle(harness, 1.0)
    assert executions(harness) == 1


def test_fsd_with_its_commit_point_ahead_waits_for_it_and_grid_back_cancels(
    harness: Harness,
) -> None:
    harness.start_agent()
    now = int(time.time())
    harness.publish_lease(lease(agent_id=harness.agent_id, fsd=True, shutdown_by=now + 3))
    time.sleep(1.0)
    assert executions(harness) == 0, "fsd went down before its commit point"
    # the grid is back before the commit point; fsd is still held (restore confirmation)
    harness.publish_lease(lease(agent_id=harness.agent_id, grid="present", fsd=True))
    time.sleep(max(0.0, now + 4.5 - time.time()))
    still_idle(harness, 0.5)


def test_started_in_the_restore_window_stays_up(harness: Harness) -> None:
    """fsd still held while the grid is confirmed back: a host booting now stays up."""
    now = int(time.time())
    harness.publish_lease(
        lease(agent_id=harness.agent_id, grid="present", fsd=True, issued_at=now - 2)
    )
    harness.start_agent()
    still_idle(harness, 2.0)


def test_a_commanded_shutdown_is_not_repeated_by_the_lease(harness: Harness) -> None:
    harness.start_agent()
    now = int(time.time())
    harness.publish_lease(lease(agent_id=harness.agent_id, shutdown_by=now + 3, fsd=True))
    cmd = command("shutdown", delay_sec=2)
    harness.send(cmd)
    harness.collector.wait_ack(cmd["id"], "executing", timeout=8)
    wait_execution(harness)
    time.sleep(max(0.0, now + 4.5 - time.time()))
    still_idle(harness, 0.5)
    assert executions(harness) == 1


def test_started_while_an_expired_fsd_lease_is_retained_does_not_shut_down(
    harness: Harness,
) -> None:
    """The host boots after the power came back, Home Assistant still down: no boot loop."""
    now = int(time.time())
    harness.publish_lease(
        lease(
            agent_id=harness.agent_id,
            fsd=True,
            shutdown_by=now - 300,
            issued_at=now - 300,
            expires_at=now - 210,
        )
    )
    harness.start_agent()
    still_idle(harness, 2.0)


def test_restarted_after_its_own_fsd_shutdown_does_not_shut_down_again(
    harness: Harness,
) -> None:
    now = int(time.time())
    harness.publish_lease(lease(agent_id=harness.agent_id, fsd=True, shutdown_by=now))
    harness.start_agent()
    wait_execution(harness)
    harness.agent.stop()
    harness.start_agent()  # the same fsd lease is still retained
    still_idle(harness, 1.5)
    assert executions(harness) == 1


def test_forged_or_foreign_leases_are_ignored(harness: Harness) -> None:
    harness.start_agent()
    now = int(time.time())
    harness.publish_lease(lease(agent_id=harness.agent_id, fsd=True, secret="other-secret"))
    harness.publish_lease(lease(agent_id=harness.agent_id, fsd=True, secret=None))
    harness.publish_lease(lease(agent_id="someone-else", fsd=True))
    harness.publish_lease(lease(agent_id=harness.agent_id, fsd=True, issued_at=now + 600))
    still_idle(harness, 1.5)


# ---------------------------------------------------------------- restart safety


def test_agent_restarted_mid_countdown_executes_at_the_commit_point(harness: Harness) -> None:
    harness.start_agent()
    cmd = command("shutdown", delay_sec=5)
    harness.send(cmd)
    harness.collector.wait_ack(cmd["id"], "scheduled")
    harness.agent.stop()
    harness.start_agent()
    # the integration's resend: the agent still holds the job
    harness.send(cmd)
    dup = harness.collector.wait_ack(cmd["id"], "duplicate")
    assert dup["job"] == "pending"
    assert dup["execute_at"] == cmd["issued_at"] + 5
    executing = harness.collector.wait_ack(cmd["id"], "executing", timeout=10)
    commit = cmd["issued_at"] + 5
    assert commit - 1 <= executing["at"] <= commit + 2
    wait_execution(harness)
    time.sleep(1.0)
    assert executions(harness) == 1


def test_duplicate_of_a_forgotten_job_says_none(harness: Harness) -> None:
    harness.start_agent()
    cmd = command("shutdown", delay_sec=30)
    harness.send(cmd)
    harness.collector.wait_ack(cmd["id"], "scheduled")
    abort = command("abort", ref=cmd["id"])
    harness.send(abort)
    harness.collector.wait_ack(abort["id"], "aborted")
    harness.send(cmd)
    dup = harness.collector.wait_ack(cmd["id"], "duplicate")
    assert dup["job"] == "none"


# ---------------------------------------------------------------- fail closed


def test_agent_without_a_secret_refuses_to_start(agent_kind: str, tmp_path: Path) -> None:
    from tests.helpers.mosquitto import MosquittoBroker

    broker = MosquittoBroker.__new__(MosquittoBroker)  # never started: not needed
    broker.host, broker.port = "127.0.0.1", 9
    agent = AgentProcess(agent_kind, broker, tmp_path, "no-secret")
    agent.write_config(secret=None, allow_unauthenticated=False)
    result = agent.run_to_exit()
    assert result.returncode != 0
    assert "no secret" in result.stderr
    assert "allow_unauthenticated" in result.stderr.lower()


# ---------------------------------------------------------------- aborts


def test_abort_naming_another_job_cancels_nothing(harness: Harness) -> None:
    harness.start_agent()
    cmd = command("shutdown", delay_sec=3)
    harness.send(cmd)
    harness.collector.wait_ack(cmd["id"], "scheduled")
    abort = command("abort", ref="some-older-shutdown")
    harness.send(abort)
    rejected = harness.collector.wait_ack(abort["id"], "rejected")
    assert rejected["detail"].startswith("nothing_pending")
    assert rejected["ref"] == "some-older-shutdown"
    harness.collector.wait_ack(cmd["id"], "executing", timeout=8)


def test_merged_shutdown_can_be_aborted_by_its_own_id(harness: Harness) -> None:
    harness.start_agent()
    first = command("shutdown", delay_sec=30)
    harness.send(first)
    harness.collector.wait_ack(first["id"], "scheduled")
    second = command("shutdown", delay_sec=20)
    harness.send(second)
    harness.collector.wait_ack(second["id"], "scheduled")
    abort = command("abort", ref=second["id"])
    harness.send(abort)
    aborted = harness.collector.wait_ack(abort["id"], "aborted")
    assert aborted["ref"] == second["id"]


def test_late_shutdown_waits_for_the_abort_queued_behind_it(harness: Harness) -> None:
    """Both were queued for the agent's session while it was away."""
    harness.start_agent()
    harness.agent.stop()
    now = int(time.time())
    cmd = command("shutdown", delay_sec=5, issued_at=now - 70)
    abort = command("abort", ttl_sec=3, issued_at=now - 68, ref=cmd["id"])
    harness.send(cmd)
    harness.send(abort)
    harness.start_agent()
    aborted = harness.collector.wait_ack(abort["id"], "aborted")
    assert aborted["ref"] == cmd["id"]
    still_idle(harness, 1.0)
    assert "executing" not in [a["status"] for a in harness.collector.acks(cmd["id"])]


@pytest.mark.parametrize("offset", [-30, 30], ids=["agent-clock-ahead", "agent-clock-behind"])
def test_countdown_is_relative_to_receipt(harness: Harness, offset: int) -> None:
    """Clock skew within the allowance neither shortens nor lengthens the countdown."""
    harness.start_agent()
    cmd = command("shutdown", delay_sec=3, issued_at=int(time.time()) + offset)
    sent = time.time()
    harness.send(cmd)
    scheduled = harness.collector.wait_ack(cmd["id"], "scheduled")
    assert abs(scheduled["execute_in"] - 3) <= 1
    harness.collector.wait_ack(cmd["id"], "executing", timeout=8)
    took = time.time() - sent
    assert 2.0 <= took <= 6.0, took


# ---------------------------------------------------------------- pre-shutdown


def test_pre_shutdown_runs_only_at_the_commit_point_by_default(
    harness: Harness, tmp_path: Path
) -> None:
    marker = tmp_path / "services-stopped"
    harness.start_agent(
        dry_run=False,
        shutdown_argv=["/usr/bin/touch", str(tmp_path / "shutdown-ran")],
        pre=[("stop-services", ["/usr/bin/touch", str(marker)], 5)],
    )
    cmd = command("shutdown", delay_sec=3)
    harness.send(cmd)
    harness.collector.wait_ack(cmd["id"], "scheduled")
    time.sleep(1.0)
    assert not marker.exists(), "pre-shutdown ran before the decision was final"
    abort = command("abort", ref=cmd["id"])
    harness.send(abort)
    harness.collector.wait_ack(abort["id"], "aborted")
    time.sleep(3.0)
    assert not marker.exists()
    assert not (tmp_path / "shutdown-ran").exists()


def test_early_mode_runs_undo_commands_on_abort(harness: Harness, tmp_path: Path) -> None:
    stopped, restarted = tmp_path / "stopped", tmp_path / "restarted"
    harness.start_agent(
        dry_run=False,
        shutdown_argv=["/usr/bin/touch", str(tmp_path / "shutdown-ran")],
        pre=[
            (
                "svc",
                ["/usr/bin/touch", str(stopped)],
                5,
                ["/usr/bin/touch", str(restarted)],
            )
        ],
        extra={"pre_shutdown_mode": "early"},
    )
    cmd = command("shutdown", delay_sec=20)
    harness.send(cmd)
    harness.collector.wait_ack(cmd["id"], "scheduled")
    assert stopped.exists()
    abort = command("abort", ref=cmd["id"])
    harness.send(abort)
    harness.collector.wait_ack(abort["id"], "aborted")
    harness.collector.wait(restarted.exists, 5, "undo command ran")
    assert not (tmp_path / "shutdown-ran").exists()


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # a zombie is gone for our purposes
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as handle:
            return handle.read().split()[2] != "Z"
    except OSError:
        return False


def test_abort_ends_the_whole_process_tree_term_first(harness: Harness, tmp_path: Path) -> None:
    script = tmp_path / "stop-services.sh"
    pid_file, termed = tmp_path / "grandchild.pid", tmp_path / "got-term"
    script.write_text(
        f"#!/bin/sh\ntrap 'touch {termed}; exit 0' TERM\nsleep 300 & echo $! > {pid_file}\nwait\n"
    )
    script.chmod(0o755)
    harness.start_agent(
        dry_run=False,
        shutdown_argv=["/usr/bin/touch", str(tmp_path / "shutdown-ran")],
        pre=[("slow", [str(script)], 60)],
        extra={"pre_shutdown_mode": "early", "kill_grace_sec": 2},
    )
    cmd = command("shutdown", delay_sec=30)
    harness.send(cmd)
    harness.collector.wait(pid_file.exists, 5, "pre-shutdown command started")
    time.sleep(0.3)
    grandchild = int(pid_file.read_text())
    assert _pid_alive(grandchild)
    abort = command("abort", ref=cmd["id"])
    harness.send(abort)
    harness.collector.wait_ack(abort["id"], "aborted", timeout=8)
    harness.collector.wait(lambda: not _pid_alive(grandchild), 8, "grandchild ended")
    assert termed.exists(), "the command got no TERM before KILL"


# ---------------------------------------------------------------- hostile input


def test_one_mib_payload_is_dropped_and_a_ping_is_still_answered_at_once(
    harness: Harness,
) -> None:
    harness.start_agent()
    big = command("ping", reason="x" * (1024 * 1024))
    harness.send(big)
    ping = command("ping")
    harness.send(ping)
    harness.collector.wait_ack(ping["id"], "pong", timeout=1.0)
    time.sleep(0.5)
    assert harness.collector.acks(big["id"]) == []
    harness.publish_lease(b"{" + b" " * (1024 * 1024) + b"}")
    second = command("ping")
    harness.send(second)
    harness.collector.wait_ack(second["id"], "pong", timeout=1.0)


def test_rejection_acks_are_rate_limited(harness: Harness) -> None:
    harness.start_agent()
    started = time.monotonic()
    for n in range(60):
        harness.send(b"{not json " + str(n).encode())
    ping = command("ping")
    harness.send(ping)
    harness.collector.wait_ack(ping["id"], "pong", timeout=15)
    elapsed = time.monotonic() - started
    time.sleep(0.5)
    rejections = [a for a in harness.collector.acks() if a["status"] == "rejected"]
    assert 5 <= len(rejections) <= 20 + 2 * (elapsed + 1), (len(rejections), elapsed)


# ---------------------------------------------------------------- process hygiene


def test_graceful_stop_leaves_no_process_behind(harness: Harness) -> None:
    harness.start_agent()
    proc = harness.agent.proc
    assert proc is not None
    pgid = proc.pid
    os.kill(proc.pid, signal.SIGTERM)  # the main process only, as a service manager may
    proc.wait(10)
    deadline = time.monotonic() + 5
    left: list[str] = []
    while time.monotonic() < deadline:
        out = subprocess.run(
            ["ps", "-o", "pid=,stat=,args=", "-s", str(pgid)],
            check=False,
            capture_output=True,
            text=True,
        ).stdout
        left = [line for line in out.splitlines() if line.split()[1][0] != "Z"]
        if not left:
            break
        time.sleep(0.2)
    assert not left, left


# ---------------------------------------------------------------- Wake-on-LAN facts


def _route_to(host: str) -> dict[str, str] | None:
    """What iproute2 says about the interface towards `host` (an independent reading)."""
    import json
    import shutil

    if shutil.which("ip") is None:
        return None
    route = subprocess.run(
        ["ip", "-j", "route", "get", host], check=False, capture_output=True, text=True
    )
    if route.returncode != 0 or not route.stdout.strip():
        return None
    dev = json.loads(route.stdout)[0].get("dev")
    if not dev or dev == "lo":
        return None
    addr = ["ip", "-j", "addr", "show", "dev", dev]
    links = json.loads(subprocess.run(addr, check=True, capture_output=True, text=True).stdout)
    inet = [a for a in links[0]["addr_info"] if a["family"] == "inet"]
    if not inet:
        return None
    result = {"mac": links[0]["address"].lower()}
    if inet[0].get("broadcast"):
        result["broadcast"] = inet[0]["broadcast"]
    return result


# TEST-NET-1: connecting a UDP socket towards it sends nothing, it only picks the route
REMOTE = "192.0.2.1"


def test_linux_agent_finds_mac_and_broadcast_of_the_broker_interface() -> None:
    import json
    import sys

    from tests.agents.conftest import LINUX_AGENT

    expected = _route_to(REMOTE)
    if expected is None:
        pytest.skip("no IPv4 route off this machine")
    # in a process of its own: the test harness blocks sockets other than loopback
    script = (
        "import json, sys; ns = {'__name__': 'probe'}; "
        "exec(open(sys.argv[1]).read(), ns); "
        "print(json.dumps([ns['broker_interface'](h, 1883) for h in sys.argv[2:]]))"
    )
    out = subprocess.run(
        [sys.executable, "-c", script, str(LINUX_AGENT), REMOTE, "127.0.0.1"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    assert json.loads(out) == [expected, {}]


def test_macos_agent_finds_mac_and_broadcast_of_the_broker_interface() -> None:
    from tests.agents.conftest import MACOS_AGENT

    expected = _route_to(REMOTE)
    if expected is None:
        pytest.skip("no IPv4 route off this machine")
    script = (
        f'source <(sed -n "/^broker_interface() {{/,/^}}/p" {MACOS_AGENT}); '
        'for h in "$@"; do MQTT_HOST="$h"; broker_interface; echo "$IF_MAC $IF_BRD"; done'
    )
    out = subprocess.run(
        ["bash", "-c", script, "bash", REMOTE, "127.0.0.1"],
        capture_output=True,
        text=True,
        check=True,
    ).stdout.splitlines()
    assert (
        out[0].split()
        == [expected["mac"], expected.get("broadcast", "")][: 1 + ("broadcast" in expected)]
    )
    assert out[1].strip() == ""
