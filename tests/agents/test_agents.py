"""Both host agents as real processes, in dry-run, against a real mosquitto.

Every test runs once for the Linux (Python) agent and once for the macOS
(bash) agent through the `harness` fixture (see conftest.py).
"""

from __future__ import annotations

import ast
import json
from pathlib import Path
import sys
import time
from typing import Any

import pytest

from tests.agents.conftest import (
    DRY_RUN_SHUTDOWN_LINE,
    LINUX_AGENT,
    ROOT,
    SECRET,
    AgentProcess,
    Harness,
    canonical,
    command,
    read_retained,
    sign,
    signature_ok,
)

pytestmark = pytest.mark.broker

PINNED_COMMAND = {
    "v": 1,
    "id": "3f2a9c1e-0b7d-4e21-9a55-6c1d2e3f4a5b",
    "action": "shutdown",
    "delay_sec": 60,
    "ttl_sec": 300,
    "issued_at": 1767225600,
    "reason": "grid lost and soc_min 19.5 <= 20",
    "device": "R651ZAB5XXXX0001",
}
PINNED_ACK = {
    "v": 1,
    "id": "3f2a9c1e-0b7d-4e21-9a55-6c1d2e3f4a5b",
    "agent": "nas",
    "status": "received",
    "at": 1767225601,
    "detail": "",
}
VECTORS = ROOT / "tests" / "fixtures" / "protocol" / "vectors.json"


def assert_all_signed(h: Harness) -> None:
    acks = h.collector.acks()
    assert acks
    for ack in acks:
        assert signature_ok(ack), f"bad ack signature: {ack}"
        assert ack["v"] == 1
        assert ack["agent"] == h.agent_id
        assert isinstance(ack["at"], int)
        assert isinstance(ack["detail"], str)


def statuses(h: Harness, cid: str) -> list[str]:
    return [a["status"] for a in h.collector.acks(cid)]


# ---------------------------------------------------------------- vectors


def test_pinned_vectors_match_our_signing() -> None:
    assert sign(PINNED_COMMAND) == (
        "11eeb975bcbd82506888cd37ad2b34e146e2069da47e0f6a0b905276ba12a830"
    )
    assert sign(PINNED_ACK) == "a55d515ed6fe87d63c14a2b59530b8d5362f34f11acbca40d303e180195c8999"


def test_linux_agent_signing_matches_vectors() -> None:
    namespace: dict[str, Any] = {"__name__": "ecoflow_agent_under_test"}
    exec(compile(LINUX_AGENT.read_text(), str(LINUX_AGENT), "exec"), namespace)
    assert namespace["sign"](PINNED_COMMAND, SECRET) == sign(PINNED_COMMAND)
    assert namespace["sign"](PINNED_ACK, SECRET) == sign(PINNED_ACK)
    assert namespace["canonical_json"](PINNED_COMMAND) == canonical(PINNED_COMMAND)


def _load_vectors() -> dict[str, Any]:
    return json.loads(VECTORS.read_text())


def test_vector_file_pinned_and_ack_status_signatures() -> None:
    """Our signing agrees with every signed ack/status vector of docs/protocol.md."""
    data = _load_vectors()
    pinned = data["pinned"]
    assert canonical(pinned["command"]) == pinned["command_canonical"]
    assert sign(pinned["command"], pinned["secret"]) == pinned["command_sig"]
    assert sign(pinned["ack"], pinned["secret"]) == pinned["ack_sig"]
    for case in data["acks"] + data["statuses"]:
        msg = case["message"]
        ok = bool(case["secret"]) and isinstance(msg, dict) and signature_ok(msg, case["secret"])
        assert ok == case["expected"]["valid"], case["name"]


def _run_vector_case(h: Harness, case: dict[str, Any], n: int) -> list[str]:
    """Feed one `commands[]` vector to a running agent; return the problems found.

    The agent runs on the real clock, so the case is moved in time: every
    `issued_at`/`execute_at` is shifted by (real now - case `now`), ids get a
    per-case suffix (the agent keeps one seen-id store for all cases), and
    messages whose signature was valid are re-signed with the case's secret
    (invalid ones keep their invalid signature). Preconditions (`seen_ids`,
    `pending_shutdown`) are created by sending real commands first.
    """
    problems: list[str] = []
    name = case["name"]
    secret = case["secret"]
    delta = int(time.time()) - case["now"]
    ids: dict[str, str] = {}

    msg = case["message"]

    def new_id(old: str) -> str:
        if not old or not isinstance(msg, dict):  # raw payloads keep their ids
            return old
        return ids.setdefault(old, f"{old}-{n}")

    if isinstance(msg, dict) and "issued_at" in msg:
        # checks 4/5 compare whole seconds: start at the top of a second when the
        # case sits on a boundary, so the agent sees the same `now` we shifted to
        skew = case["clock_skew_sec"]
        edges = (msg["issued_at"] + msg.get("ttl_sec", 0) + skew, msg["issued_at"] - skew)
        if min(abs(case["now"] - e) for e in edges) <= 1:
            time.sleep(1.02 - time.time() % 1)
        delta = int(time.time()) - case["now"]
    if isinstance(msg, dict):
        moved = dict(msg)
        if isinstance(msg.get("id"), str):
            moved["id"] = new_id(msg["id"])
        if isinstance(msg.get("ref"), str):
            moved["ref"] = new_id(msg["ref"])
        if "issued_at" in msg:
            moved["issued_at"] = msg["issued_at"] + delta
        if case["valid"] is True:
            moved["sig"] = sign(moved, secret)
        payload = json.dumps(moved).encode()
        msg_id = moved.get("id") if isinstance(moved.get("id"), str) else ""
    else:
        payload = case["payload"].encode()
        msg_id = ""

    pending = case["pending_shutdown"]
    if pending:
        at = pending["execute_at"] + delta
        if at <= time.time():  # already executed: a shutdown due at once
            prime = command("shutdown", delay_sec=0, cid=new_id(pending["id"]), secret=secret)
        else:
            prime = command(
                "shutdown",
                delay_sec=60,
                issued_at=at - 60,
                cid=new_id(pending["id"]),
                secret=secret,
            )
        h.send(prime)
        h.collector.wait_ack(prime["id"], "executing" if at <= time.time() else "scheduled")
    for seen in case["seen_ids"]:
        if pending and seen == pending["id"]:
            continue
        ping = command("ping", cid=new_id(seen), secret=secret)
        h.send(ping)
        h.collector.wait_ack(ping["id"], "pong")

    start = len(h.collector.acks())
    h.send(payload)
    may_be_pending = False
    wanted: list[tuple[str, str]] = []
    for exp in case["expected"]["acks"]:
        ack_id = new_id(exp["id"]) if "id" in exp else msg_id
        status = exp["status"]
        if status == "executing" and wanted and wanted[-1][1] == "scheduled":
            execute_at = next(
                a["execute_at"]
                for a in h.collector.acks()[start:]
                if a["id"] == ack_id and a["status"] == "scheduled"
            )
            if execute_at > time.time() + 2:
                may_be_pending = True  # would take a minute: checked up to scheduled
                break
        wanted.append((ack_id, status))

        def find(ack_id: str = ack_id, status: str = status) -> dict[str, Any] | None:
            for a in h.collector.acks()[start:]:
                if a["id"] == ack_id and a["status"] == status:
                    return a
            return None

        try:
            ack = h.collector.wait(find, 6, f"{name}: {status}")
        except AssertionError:
            problems.append(f"{name}: no {status} ack; got {h.collector.acks()[start:]}")
            break
        if "ref" in exp and ack.get("ref") != new_id(exp["ref"]):
            problems.append(f"{name}: ref {ack.get('ref')} != {exp['ref']}")
        if "detail_prefix" in exp and not ack["detail"].startswith(exp["detail_prefix"]):
            problems.append(f"{name}: detail {ack['detail']!r} !~ {exp['detail_prefix']}")
        if "execute_at" in exp:
            slack = 0 if "issued_at" in (msg or {}) else 2  # legacy: receipt time
            if abs(ack.get("execute_at", -99) - (exp["execute_at"] + delta)) > slack:
                problems.append(f"{name}: execute_at {ack.get('execute_at')} vs {exp}")
        if "execute_in" in exp and abs(ack.get("execute_in", -99) - exp["execute_in"]) > 1:
            problems.append(f"{name}: execute_in {ack.get('execute_in')} vs {exp}")
        if "job" in exp and ack.get("job") != exp["job"]:
            problems.append(f"{name}: job {ack.get('job')} != {exp['job']}")
    if not case["expected"]["acks"]:  # dropped: a ping behind it gets the only answer
        ping = command("ping", secret=secret)
        h.send(ping)
        h.collector.wait_ack(ping["id"], "pong", timeout=2)
        wanted = [(ping["id"], "pong")]
    got = [(a["id"], a["status"]) for a in h.collector.acks()[start:]]
    if got[: len(wanted)] != wanted:
        problems.append(f"{name}: acks {got} != {wanted}")
    if may_be_pending or (pending and case["expected"]["acks"][0]["status"] != "aborted"):
        cleanup = command("abort", secret=secret)
        h.send(cleanup)
        h.collector.wait(lambda: h.collector.acks(cleanup["id"]), 6, f"{name}: cleanup")
    return problems


@pytest.mark.parametrize("with_secret", [True, False], ids=["secret", "no-secret"])
def test_protocol_vectors_against_the_agent(harness: Harness, with_secret: bool) -> None:
    """Every `commands[]` case of tests/fixtures/protocol/vectors.json, in order."""
    cases = [c for c in _load_vectors()["commands"] if bool(c["secret"]) == with_secret]
    assert cases
    assert all(c["secret"] in (None, SECRET) for c in cases)
    online = harness.start_agent(secret=SECRET if with_secret else None)
    assert ("sig" in online) == with_secret
    problems: list[str] = []
    for n, case in enumerate(cases):
        message = case["message"] or {}
        if message.get("action") == "abort" and not case["pending_shutdown"]:
            # "nothing pending" needs an agent that has not executed a shutdown
            # in this run (afterwards an abort is answered too_late)
            harness.agent.stop()
            harness.start_agent(secret=SECRET if with_secret else None)
        problems += _run_vector_case(harness, case, n)
    assert not problems, "\n".join(problems)
    if with_secret:
        assert DRY_RUN_SHUTDOWN_LINE in harness.agent.log()  # late delivery: at once
        assert_all_signed(harness)
    else:
        assert all("sig" not in a for a in harness.collector.acks())


def test_linux_agent_is_python39_syntax() -> None:
    ast.parse(LINUX_AGENT.read_text(), feature_version=(3, 9))


# ---------------------------------------------------------------- status / will


def test_status_online_retained_and_will_offline_on_kill(harness: Harness) -> None:
    online = harness.start_agent()
    assert signature_ok(online)
    assert online["agent"] == harness.agent_id
    assert online["platform"] == ("linux" if harness.kind == "linux" else "macos")
    assert online["dry_run"] is True
    assert online["shutdown_sec"] == 45
    assert online["hostname"]
    assert online["agent_version"]
    # retained: a late subscriber gets it too
    retained = read_retained(harness.broker, harness.base + "/status")
    assert retained is not None
    assert retained["state"] == "online"
    before = len(harness.collector.on("status"))
    harness.agent.kill()
    offline = harness.collector.wait_status("offline", after=before, timeout=10)
    assert signature_ok(offline), offline
    assert offline["agent"] == harness.agent_id


def test_graceful_stop_publishes_offline(harness: Harness) -> None:
    harness.start_agent()
    before = len(harness.collector.on("status"))
    harness.agent.stop()
    offline = harness.collector.wait_status("offline", after=before, timeout=10)
    assert signature_ok(offline)


# ---------------------------------------------------------------- shutdown / abort


def test_valid_shutdown_dry_run(harness: Harness, tmp_path: Path) -> None:
    pwned = tmp_path / "pwned"
    harness.start_agent(pre=[("flush", ["/bin/sync"], 5), ("echo", ["/bin/echo", "hi"], 5)])
    cmd = command(
        "shutdown",
        delay_sec=1,
        reason=f"$(touch {pwned}) `touch {pwned}`; touch {pwned}",
        device=f"x$(touch {pwned})",
    )
    harness.send(cmd)
    received = harness.collector.wait_ack(cmd["id"], "received")
    scheduled = harness.collector.wait_ack(cmd["id"], "scheduled")
    assert scheduled["execute_at"] == cmd["issued_at"] + 1
    executing = harness.collector.wait_ack(cmd["id"], "executing", timeout=6)
    assert statuses(harness, cmd["id"]) == ["received", "scheduled", "executing"]
    assert received["at"] <= scheduled["at"] <= executing["at"]
    assert executing["at"] >= cmd["issued_at"] + 1
    harness.collector.wait(lambda: DRY_RUN_SHUTDOWN_LINE in harness.agent.log(), 5, "log line")
    log = harness.agent.log()
    assert "DRY-RUN: would run pre-shutdown" in log
    assert "/bin/echo hi" in log
    assert_all_signed(harness)
    assert not pwned.exists()


def test_abort_before_commit_point(harness: Harness) -> None:
    harness.start_agent()
    cmd = command("shutdown", delay_sec=3)
    harness.send(cmd)
    harness.collector.wait_ack(cmd["id"], "scheduled")
    abort = command("abort")
    harness.send(abort)
    aborted = harness.collector.wait_ack(abort["id"], "aborted")
    assert aborted["ref"] == cmd["id"]
    time.sleep(max(0.0, cmd["issued_at"] + 3 - time.time()) + 1.5)
    assert "executing" not in statuses(harness, cmd["id"])
    assert DRY_RUN_SHUTDOWN_LINE not in harness.agent.log()
    # nothing pending any more
    again = command("abort")
    harness.send(again)
    rejected = harness.collector.wait_ack(again["id"], "rejected")
    assert rejected["detail"] == "nothing_pending"
    assert_all_signed(harness)


def test_abort_after_commit_point_is_too_late(harness: Harness) -> None:
    harness.start_agent()
    cmd = command("shutdown", delay_sec=1)
    harness.send(cmd)
    harness.collector.wait_ack(cmd["id"], "executing", timeout=6)
    abort = command("abort")
    harness.send(abort)
    rejected = harness.collector.wait_ack(abort["id"], "rejected")
    assert rejected["detail"].startswith("too_late")
    assert rejected["ref"] == cmd["id"]
    assert_all_signed(harness)


def test_abort_with_nothing_pending(harness: Harness) -> None:
    harness.start_agent()
    abort = command("abort")
    harness.send(abort)
    rejected = harness.collector.wait_ack(abort["id"], "rejected")
    assert rejected["detail"] == "nothing_pending"


@pytest.mark.parametrize("mode", ["commit", "early"])
def test_pre_shutdown_failures_reported_and_shutdown_argv_run(
    harness: Harness, tmp_path: Path, mode: str
) -> None:
    """Not dry-run: the 'shutdown command' is a harmless touch of a marker.

    By default the pre-shutdown commands run at the commit point, so their
    failures are in the `executing` ack; in early mode they run at receipt and
    are reported in `scheduled` too.
    """
    marker = tmp_path / "shutdown-ran"
    literal = tmp_path / "literal"
    harness.start_agent(
        dry_run=False,
        shutdown_argv=["/usr/bin/touch", str(marker)],
        pre=[
            ("ok", ["/usr/bin/touch", str(literal)], 5),
            ("fails", ["/bin/false"], 5),
            ("hangs", ["/bin/sleep", "30"], 1),
            ("missing", ["/nonexistent/tool"], 5),
        ],
        extra={"pre_shutdown_mode": mode, "kill_grace_sec": 1},
    )
    cmd = command("shutdown", delay_sec=0)
    harness.send(cmd)
    scheduled = harness.collector.wait_ack(cmd["id"], "scheduled", timeout=15)
    executing = harness.collector.wait_ack(cmd["id"], "executing", timeout=15)
    for ack in (scheduled, executing) if mode == "early" else (executing,):
        detail = ack["detail"]
        assert "exit 1" in detail, detail
        assert "timeout" in detail, detail
        assert detail.startswith("pre-shutdown failed: "), detail
        assert len(detail.split(": ", 1)[1].split(", ")) == 3, detail  # not "ok"
    if mode == "commit":
        assert scheduled["detail"] == ""
    harness.collector.wait(marker.exists, 5, "shutdown command ran")
    assert literal.exists()
    assert_all_signed(harness)


def test_abort_stops_running_pre_shutdown_command(harness: Harness, tmp_path: Path) -> None:
    """Early mode: an abort stops the pre-shutdown command under way and the rest."""
    marker = tmp_path / "shutdown-ran"
    harness.start_agent(
        dry_run=False,
        shutdown_argv=["/usr/bin/touch", str(marker)],
        pre=[("slow", ["/bin/sleep", "30"], 60), ("after", ["/usr/bin/touch", str(marker)], 5)],
        extra={"pre_shutdown_mode": "early", "kill_grace_sec": 1},
    )
    cmd = command("shutdown", delay_sec=20)
    harness.send(cmd)
    harness.collector.wait_ack(cmd["id"], "received")
    time.sleep(0.5)
    abort = command("abort", ref=cmd["id"])
    started = time.monotonic()
    harness.send(abort)
    aborted = harness.collector.wait_ack(abort["id"], "aborted", timeout=5)
    assert aborted["ref"] == cmd["id"]
    assert time.monotonic() - started < 4
    time.sleep(1.5)
    assert statuses(harness, cmd["id"]) == ["received"]
    assert not marker.exists()  # neither the next pre-command nor the shutdown ran


def test_second_shutdown_merges_into_pending(harness: Harness) -> None:
    harness.start_agent()
    first = command("shutdown", delay_sec=30)
    harness.send(first)
    harness.collector.wait_ack(first["id"], "scheduled")
    second = command("shutdown", delay_sec=2)
    harness.send(second)
    merged = harness.collector.wait_ack(second["id"], "scheduled")
    assert merged["ref"] == first["id"]
    assert merged["execute_at"] == second["issued_at"] + 2
    harness.collector.wait_ack(first["id"], "executing", timeout=6)


# ---------------------------------------------------------------- checks


def _rejection_cases() -> list[tuple[str, Any, str]]:
    """(name, message, expected ack status): each must be refused, with no action."""
    now = int(time.time())
    tampered = command("shutdown", delay_sec=1)
    tampered["delay_sec"] = 0
    legacy = {"id": "legacy-1", "action": "shutdown", "delay_sec": 1, "reason": "x", "ttl_sec": 60}
    return [
        ("expired", command("shutdown", issued_at=now - 1000), "expired"),
        ("future", command("shutdown", issued_at=now + 600), "rejected"),
        ("tampered", tampered, "rejected"),
        ("wrong key", command("shutdown", secret="other-secret"), "rejected"),
        ("bad sig", {**command("shutdown"), "sig": "00" * 32}, "rejected"),
        ("unsigned seed payload", legacy, "rejected"),
        ("unsigned v1", command("shutdown", secret=None), "rejected"),
        ("version 2", command("shutdown", v=2), "rejected"),
        ("unknown action", command("reboot"), "rejected"),
        ("delay as string", command("shutdown", delay_sec="60"), "rejected"),
        ("negative ttl", command("shutdown", ttl_sec=-5), "rejected"),
        ("float delay", command("shutdown", delay_sec=1.5), "rejected"),
        ("empty id", command("shutdown", cid=""), "rejected"),
    ]


MALFORMED = [
    b"{not json",
    b"[1,2]",
    b"",
    b'{"id": "a"} {"id": "b"}',
    b"\xff\xfe",
    b'"just a string"',
]


def test_rejected_commands_get_an_ack_and_no_action(harness: Harness) -> None:
    """Expired, future, bad/missing signatures, bad shapes: acked, never acted on."""
    harness.start_agent()
    problems = []
    cases = _rejection_cases()
    for name, cmd, status in cases:
        harness.send(cmd)
        try:
            ack = harness.collector.wait_ack(cmd["id"], status, timeout=5)
        except AssertionError:
            problems.append(f"{name}: no {status} ack, got {harness.collector.acks(cmd['id'])}")
            continue
        if not ack["detail"]:
            problems.append(f"{name}: empty detail")
    # every rejection seen; now make sure nothing else was started
    ping = command("ping")
    harness.send(ping)
    harness.collector.wait_ack(ping["id"], "pong")
    for name, cmd, status in cases:
        got = statuses(harness, cmd["id"])
        if cmd["id"] and got != [status]:
            problems.append(f"{name}: acks {got}")
    assert not problems, "\n".join(problems)
    assert "received" not in [a["status"] for a in harness.collector.acks()]
    assert "DRY-RUN" not in harness.agent.log()
    details = {a["id"]: a["detail"] for a in harness.collector.acks()}
    by_name = {name: details.get(cmd["id"], "") for name, cmd, _ in cases}
    for name in ("tampered", "wrong key", "bad sig"):
        assert "signature" in by_name[name], by_name
    for name in ("unsigned seed payload", "unsigned v1"):
        assert "unsigned" in by_name[name], by_name
    assert by_name["expired"].startswith("expired"), by_name
    assert_all_signed(harness)


def test_malformed_payloads_rejected_with_empty_id(harness: Harness) -> None:
    harness.start_agent()
    for payload in MALFORMED:
        harness.send(payload)
    harness.collector.wait(
        lambda: len([a for a in harness.collector.acks() if a["id"] == ""]) >= len(MALFORMED),
        10,
        "one rejection per malformed payload",
    )
    time.sleep(0.3)
    acks = harness.collector.acks()
    assert len(acks) == len(MALFORMED), acks
    for ack in acks:
        assert ack["status"] == "rejected"
        assert ack["id"] == ""
        assert "malformed" in ack["detail"]
    assert_all_signed(harness)


def test_ping_pong(harness: Harness) -> None:
    harness.start_agent()
    ping = command("ping")
    harness.send(ping)
    pong = harness.collector.wait_ack(ping["id"], "pong")
    assert signature_ok(pong)
    # the pinned ack vector shape: the same fields in the same types
    assert set(pong) >= set(PINNED_ACK) | {"sig"}


def test_replayed_id_is_duplicate(harness: Harness) -> None:
    harness.start_agent()
    cmd = command("shutdown", delay_sec=1)
    harness.send(cmd)
    harness.collector.wait_ack(cmd["id"], "executing", timeout=6)
    harness.send(cmd)
    harness.collector.wait_ack(cmd["id"], "duplicate")
    time.sleep(0.5)
    assert statuses(harness, cmd["id"]) == ["received", "scheduled", "executing", "duplicate"]
    assert harness.agent.log().count(DRY_RUN_SHUTDOWN_LINE) == 1


def test_restart_does_not_replay_and_session_persists(harness: Harness) -> None:
    harness.start_agent()
    cmd = command("shutdown", delay_sec=1)
    harness.send(cmd)
    harness.collector.wait_ack(cmd["id"], "executing", timeout=6)
    harness.collector.wait(lambda: DRY_RUN_SHUTDOWN_LINE in harness.agent.log(), 5, "log line")
    harness.agent.stop()
    # queued for the persistent session while the agent is down
    queued = command("ping")
    harness.send(queued)
    log_before = harness.agent.log().count(DRY_RUN_SHUTDOWN_LINE)
    harness.start_agent()
    harness.collector.wait_ack(queued["id"], "pong")
    harness.send(cmd)
    harness.collector.wait_ack(cmd["id"], "duplicate")
    time.sleep(1.5)
    assert statuses(harness, cmd["id"]) == ["received", "scheduled", "executing", "duplicate"]
    assert harness.agent.log().count(DRY_RUN_SHUTDOWN_LINE) == log_before == 1


def test_unsigned_seed_payload_accepted_without_secret(harness: Harness) -> None:
    online = harness.start_agent(secret=None)
    assert "sig" not in online
    legacy = {
        "id": "shutdown-1768089900",
        "action": "shutdown",
        "delay_sec": 1,
        "reason": "EcoFlow STUDY soc_min <= 20",
        "ttl_sec": 300,
    }
    harness.send(legacy)
    scheduled = harness.collector.wait_ack(legacy["id"], "scheduled")
    executing = harness.collector.wait_ack(legacy["id"], "executing", timeout=6)
    # receive time stands in for issued_at
    assert abs(scheduled["execute_at"] - (executing["at"])) <= 2
    for ack in harness.collector.acks():
        assert "sig" not in ack
    harness.send(legacy)
    harness.collector.wait_ack(legacy["id"], "duplicate")
    ping = {"id": "p-1", "action": "ping", "delay_sec": 0, "reason": "", "ttl_sec": 30}
    harness.send(ping)
    harness.collector.wait_ack("p-1", "pong")


def test_reconnects_after_broker_restart(harness: Harness) -> None:
    harness.start_agent()
    before = len(harness.collector.on("status"))
    harness.broker.restart()
    try:
        harness.collector.wait_status("online", after=before, timeout=15)
    except AssertionError as err:
        raise AssertionError(f"{err}\nagent log:\n{harness.agent.log()}") from None
    ping = command("ping")
    harness.send(ping)
    harness.collector.wait_ack(ping["id"], "pong")


# ---------------------------------------------------------------- config safety


@pytest.mark.parametrize("mode", [0o620, 0o602, 0o666])
def test_config_writable_by_others_is_refused(agent_kind: str, tmp_path: Path, mode: int) -> None:
    from tests.helpers.mosquitto import MosquittoBroker

    broker = MosquittoBroker.__new__(MosquittoBroker)  # never started: not needed
    broker.host, broker.port = "127.0.0.1", 9
    agent = AgentProcess(agent_kind, broker, tmp_path, "refuse")
    agent.write_config(mode=mode)
    result = agent.run_to_exit()
    assert result.returncode != 0
    assert "writable by group or others" in result.stderr


def test_check_config_ok(agent_kind: str, tmp_path: Path) -> None:
    from tests.helpers.mosquitto import MosquittoBroker

    broker = MosquittoBroker.__new__(MosquittoBroker)
    broker.host, broker.port = "127.0.0.1", 9
    agent = AgentProcess(agent_kind, broker, tmp_path, "check")
    agent.write_config()
    result = subprocess_run([*agent.argv(), "--check-config"], agent.env())
    assert result.returncode == 0, result.stderr
    assert "config OK" in result.stdout


def subprocess_run(argv: list[str], env: dict[str, str]) -> Any:
    import subprocess

    return subprocess.run(argv, check=False, capture_output=True, text=True, env=env, timeout=20)


def test_linux_install_sh_writes_a_private_config(tmp_path: Path) -> None:
    import os
    import stat
    import subprocess
    import sys

    secret_file = tmp_path / "secret"
    secret_file.write_text(SECRET + "\n")
    dest = tmp_path / "root"
    env = dict(os.environ)
    env["PATH"] = f"{Path(sys.executable).parent}:{env['PATH']}"  # a python3 with paho
    argv = ["bash", str(ROOT / "agents/linux/install.sh"), "--destdir", str(dest)]
    result = subprocess.run(
        [*argv, "--agent-id", "nas", "--host", "127.0.0.1", "--secret-file", str(secret_file)],
        check=False,
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    conf = dest / "etc/ecoflow-agent/agent.conf"
    assert stat.S_IMODE(conf.stat().st_mode) == 0o600
    text = conf.read_text()
    assert f"secret = {SECRET}" in text
    assert "dry_run = true" in text
    assert "config OK: agent_id=nas dry_run=True" in result.stdout
    assert (dest / "opt/ecoflow-agent/ecoflow_agent.py").exists()
    result = subprocess.run(
        [*argv, "--uninstall", "--purge"], check=False, capture_output=True, text=True, env=env
    )
    assert result.returncode == 0, result.stderr
    assert not conf.exists()


@pytest.mark.parametrize(
    ("example", "runner"),
    [
        ("agents/linux/agent.conf.example", [sys.executable, str(LINUX_AGENT)]),
        ("agents/macos/agent.conf.example", ["bash", str(ROOT / "agents/macos/ecoflow-agent.sh")]),
    ],
    ids=["linux", "macos"],
)
def test_example_configs_are_valid(tmp_path: Path, example: str, runner: list[str]) -> None:
    import subprocess

    conf = tmp_path / "agent.conf"
    conf.write_text((ROOT / example).read_text())
    conf.chmod(0o600)
    result = subprocess.run(
        [*runner, "--config", str(conf), "--check-config"],
        check=False,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode == 0, result.stderr
    assert "dry_run=" in result.stdout
