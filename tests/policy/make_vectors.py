"""Regenerate tests/fixtures/protocol/vectors.json (protocol 2 test vectors).

    .venv/bin/python -m tests.policy.make_vectors

The file is committed; test_vectors.py checks it still matches this script and
that every signature and canonical form in it is right. Agent test suites load
the same file, so its format is documented in docs/protocol.md.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from custom_components.ecoflow_power.policy.lease import build_lease
from custom_components.ecoflow_power.policy.protocol import (
    canonical_json,
    sign_message,
    verify_message,
)

VECTORS_PATH = Path(__file__).resolve().parents[1] / "fixtures" / "protocol" / "vectors.json"

SECRET = "s3cr3t-agent-key-for-tests-only"
OTHER_SECRET = "not-the-agent-secret"
SKEW = 60
ISSUED = 1767225600
SHUTDOWN_ID = "3f2a9c1e-0b7d-4e21-9a55-6c1d2e3f4a5b"

PINNED_COMMAND: dict[str, Any] = {
    "v": 1,
    "id": SHUTDOWN_ID,
    "action": "shutdown",
    "delay_sec": 60,
    "ttl_sec": 300,
    "issued_at": ISSUED,
    "reason": "grid lost and soc_min 19.5 <= 20",
    "device": "R651ZAB5XXXX0001",
}
PINNED_ACK: dict[str, Any] = {
    "v": 1,
    "id": SHUTDOWN_ID,
    "agent": "nas",
    "status": "received",
    "at": ISSUED + 1,
    "detail": "",
}


def signed(message: dict[str, Any], secret: str = SECRET) -> dict[str, Any]:
    return {**message, "sig": sign_message(message, secret)}


def command(**changes: Any) -> dict[str, Any]:
    return {**PINNED_COMMAND, **changes}


def command_vector(
    name: str,
    description: str,
    *,
    agent_secret: str | None,
    message: dict[str, Any] | None,
    expected: dict[str, Any],
    now: int = ISSUED + 10,
    payload: str | None = None,
    seen_ids: tuple[str, ...] = (),
    pending_shutdown: dict[str, Any] | None = None,
) -> dict[str, Any]:
    canonical = sig = valid = None
    if message is not None:
        canonical = canonical_json(message)
        sig = message.get("sig")
        if sig is not None and agent_secret is not None:
            valid = verify_message(message, agent_secret)
    return {
        "name": name,
        "description": description,
        "secret": agent_secret,
        "now": now,
        "clock_skew_sec": SKEW,
        "allow_unauthenticated": agent_secret is None,
        "seen_ids": list(seen_ids),
        "pending_shutdown": pending_shutdown,
        "message": message,
        "payload": payload if payload is not None else json.dumps(message),
        "canonical": canonical,
        "sig": sig,
        "valid": valid,
        "expected": expected,
    }


def accepted_shutdown(execute_at: int, execute_in: int | None = None) -> dict[str, Any]:
    scheduled: dict[str, Any] = {"status": "scheduled", "execute_at": execute_at}
    if execute_in is not None:
        scheduled["execute_in"] = execute_in
    return {
        "accepted": True,
        "acks": [{"status": "received"}, scheduled, {"status": "executing"}],
    }


def ack(status: str, ack_id: str, **fields: Any) -> dict[str, Any]:
    """One expected ack: status and id, then its other fields in the order given."""
    return {"status": status, "id": ack_id, **fields}


def acked(*acks: dict[str, Any], accepted: bool = True) -> dict[str, Any]:
    return {"accepted": accepted, "acks": list(acks)}


def rejected(detail_prefix: str, status: str = "rejected", ack_id: str = SHUTDOWN_ID) -> dict:
    return acked(ack(status, ack_id, detail_prefix=detail_prefix), accepted=False)


def command_vectors() -> list[dict[str, Any]]:
    pending = {"id": SHUTDOWN_ID, "execute_at": ISSUED + 60}
    legacy = {
        "id": "shutdown-1768089900",
        "action": "shutdown",
        "delay_sec": 60,
        "reason": "EcoFlow STUDY soc_min <= 20",
        "ttl_sec": 300,
    }
    abort_id = "9b1c7e2a-5d4f-4a3b-8c6d-0e1f2a3b4c5d"
    ping_id = "5e6f7a8b-9c0d-4e1f-a2b3-c4d5e6f7a8b9"
    abort = signed(
        command(
            id=abort_id,
            action="abort",
            delay_sec=0,
            ttl_sec=30,
            issued_at=ISSUED + 20,
            reason="grid restored before commit point 1767225660",
        )
    )
    other_ref = "7d0e4c2b-1a9f-4e3d-8b2c-5f6a7b8c9d0e"
    abort_ref = signed({**{k: v for k, v in abort.items() if k != "sig"}, "ref": SHUTDOWN_ID})
    abort_other = signed({**{k: v for k, v in abort.items() if k != "sig"}, "ref": other_ref})
    big_ping = command(id=ping_id, action="ping", delay_sec=0, reason="x" * 9000)
    return [
        command_vector(
            "valid_shutdown",
            "The pinned vector: a signed shutdown inside its ttl; commit point issued_at+delay.",
            agent_secret=SECRET,
            message=signed(PINNED_COMMAND),
            expected=accepted_shutdown(ISSUED + 60, execute_in=60),
        ),
        command_vector(
            "valid_shutdown_late_delivery",
            "Delivered after its commit point but inside ttl+skew (queued while the agent was "
            "away): executes after the agent's late-delivery grace (a few seconds, for an "
            "abort queued behind it).",
            agent_secret=SECRET,
            message=signed(PINNED_COMMAND),
            now=ISSUED + 200,
            expected=accepted_shutdown(ISSUED + 60),
        ),
        command_vector(
            "abort_cancels_pending",
            "An abort before the pending shutdown's commit point cancels it.",
            agent_secret=SECRET,
            message=abort,
            now=ISSUED + 21,
            seen_ids=(SHUTDOWN_ID,),
            pending_shutdown=pending,
            expected=acked(ack("aborted", abort_id, ref=SHUTDOWN_ID)),
        ),
        command_vector(
            "abort_too_late",
            "An abort after the commit point is refused; the shutdown goes ahead.",
            agent_secret=SECRET,
            message=abort,
            now=ISSUED + 61,
            seen_ids=(SHUTDOWN_ID,),
            pending_shutdown=pending,
            expected=acked(ack("rejected", abort_id, ref=SHUTDOWN_ID, detail_prefix="too_late")),
        ),
        command_vector(
            "abort_nothing_pending",
            "An abort with no shutdown pending changes nothing.",
            agent_secret=SECRET,
            message=abort,
            now=ISSUED + 21,
            expected=acked(ack("rejected", abort_id, detail_prefix="nothing_pending")),
        ),
        command_vector(
            "ping",
            "A ping is answered with pong and nothing else.",
            agent_secret=SECRET,
            message=signed(command(id=ping_id, action="ping", delay_sec=0, reason="ping")),
            expected=acked(ack("pong", ping_id)),
        ),
        command_vector(
            "ping_escaped_characters",
            'Quotes, backslash and slash in a string: canonical JSON escapes " and \\ only.',
            agent_secret=SECRET,
            message=signed(
                command(
                    id=ping_id,
                    action="ping",
                    delay_sec=0,
                    reason='say "hi" \\ a/b <ok> & {x}',
                )
            ),
            expected=acked(ack("pong", ping_id)),
        ),
        command_vector(
            "within_skew_not_expired",
            "now == issued_at + ttl_sec + skew is still valid (expired only when strictly later).",
            agent_secret=SECRET,
            message=signed(PINNED_COMMAND),
            now=ISSUED + 300 + SKEW,
            expected=accepted_shutdown(ISSUED + 60),
        ),
        command_vector(
            "expired",
            "issued_at + ttl_sec + skew < now: acked expired, never executed.",
            agent_secret=SECRET,
            message=signed(PINNED_COMMAND),
            now=ISSUED + 300 + SKEW + 1,
            expected=rejected("expired", status="expired"),
        ),
        command_vector(
            "issued_in_future",
            "issued_at more than skew ahead of the agent's clock is rejected.",
            agent_secret=SECRET,
            message=signed(PINNED_COMMAND),
            now=ISSUED - SKEW - 1,
            expected=rejected("future"),
        ),
        command_vector(
            "replayed_id",
            "The same valid message again (the id is on disk from the first delivery); the "
            "agent holds no job for it: `job` none tells the integration to re-issue.",
            agent_secret=SECRET,
            message=signed(PINNED_COMMAND),
            seen_ids=(SHUTDOWN_ID,),
            expected=acked(
                ack("duplicate", SHUTDOWN_ID, detail_prefix="duplicate", job="none"), accepted=False
            ),
        ),
        command_vector(
            "replayed_id_while_pending",
            "A resend of the shutdown that is counting down: duplicate, `job` pending, with "
            "its commit point.",
            agent_secret=SECRET,
            message=signed(PINNED_COMMAND),
            now=ISSUED + 21,
            seen_ids=(SHUTDOWN_ID,),
            pending_shutdown=pending,
            expected=acked(
                ack(
                    "duplicate",
                    SHUTDOWN_ID,
                    detail_prefix="duplicate",
                    job="pending",
                    execute_at=ISSUED + 60,
                ),
                accepted=False,
            ),
        ),
        command_vector(
            "abort_ref_cancels_pending",
            "Protocol 2: an abort naming the pending shutdown in `ref` cancels it.",
            agent_secret=SECRET,
            message=abort_ref,
            now=ISSUED + 21,
            seen_ids=(SHUTDOWN_ID,),
            pending_shutdown=pending,
            expected=acked(ack("aborted", abort_id, ref=SHUTDOWN_ID)),
        ),
        command_vector(
            "abort_other_ref_cancels_nothing",
            "Protocol 2: an abort naming another shutdown leaves the pending one alone.",
            agent_secret=SECRET,
            message=abort_other,
            now=ISSUED + 21,
            seen_ids=(SHUTDOWN_ID,),
            pending_shutdown=pending,
            expected=acked(
                ack("rejected", abort_id, ref=other_ref, detail_prefix="nothing_pending")
            ),
        ),
        command_vector(
            "agent_clock_ahead_countdown_relative",
            "The agent's clock is 30 s ahead (within the allowance): the countdown still runs "
            "the full delay_sec from receipt (execute_in 60), it is not cut to 30 s.",
            agent_secret=SECRET,
            message=signed(PINNED_COMMAND),
            now=ISSUED + 30,
            expected=accepted_shutdown(ISSUED + 60, execute_in=60),
        ),
        command_vector(
            "agent_clock_behind_countdown_relative",
            "The agent's clock is 30 s behind: the countdown runs delay_sec from receipt "
            "(execute_in 60), not 90 s.",
            agent_secret=SECRET,
            message=signed(PINNED_COMMAND),
            now=ISSUED - 30,
            expected=accepted_shutdown(ISSUED + 60, execute_in=60),
        ),
        command_vector(
            "oversized_payload_dropped",
            "A payload above 8 KiB is dropped before parsing: no ack at all.",
            agent_secret=SECRET,
            message=signed(big_ping),
            expected=acked(accepted=False),
        ),
        command_vector(
            "bad_signature",
            "Signed with another secret.",
            agent_secret=SECRET,
            message=signed(PINNED_COMMAND, OTHER_SECRET),
            expected=rejected("bad_signature"),
        ),
        command_vector(
            "tampered_field",
            "The pinned signature with delay_sec changed from 60 to 0.",
            agent_secret=SECRET,
            message={**signed(PINNED_COMMAND), "delay_sec": 0},
            expected=rejected("bad_signature"),
        ),
        command_vector(
            "unsigned_with_secret",
            "A v1 command without sig, to an agent that holds a secret.",
            agent_secret=SECRET,
            message=dict(PINNED_COMMAND),
            expected=rejected("unsigned"),
        ),
        command_vector(
            "unsigned_without_secret",
            "A v1 command without sig, to an agent with no secret (unauthenticated mode).",
            agent_secret=None,
            message=dict(PINNED_COMMAND),
            expected=accepted_shutdown(ISSUED + 60, execute_in=60),
        ),
        command_vector(
            "unsupported_version",
            "v other than 1 is rejected before anything else is trusted.",
            agent_secret=SECRET,
            message=signed(command(v=2)),
            expected=rejected("unsupported_version"),
        ),
        command_vector(
            "malformed_json",
            "Not JSON: no id can be read, so the rejected ack carries an empty id.",
            agent_secret=SECRET,
            message=None,
            payload='{"v":1,"id":"3f2a9c1e-0b7d-4e21-9a55-6c1d2e3f4a5b","action":"shutdown",',
            expected=rejected("malformed", ack_id=""),
        ),
        command_vector(
            "not_an_object",
            "Valid JSON but not an object.",
            agent_secret=SECRET,
            message=None,
            payload='["shutdown"]',
            expected=rejected("malformed", ack_id=""),
        ),
        command_vector(
            "float_value",
            "A float is outside the signed subset: malformed, whatever the signature says.",
            agent_secret=SECRET,
            message=None,
            payload=json.dumps({**signed(PINNED_COMMAND), "delay_sec": 60.5}),
            expected=rejected("malformed"),
        ),
        command_vector(
            "legacy_seed_payload_without_secret",
            "Seed-era plain payload (no v, issued_at, device or sig). Accepted only by an agent "
            "with no secret; its age is counted from receipt, so it executes at now + delay_sec.",
            agent_secret=None,
            message=legacy,
            now=ISSUED + 10,
            expected=acked(
                ack("received", legacy["id"]),
                ack("scheduled", legacy["id"], execute_at=ISSUED + 70, execute_in=60),
                ack("executing", legacy["id"]),
            ),
        ),
        command_vector(
            "legacy_seed_payload_with_secret",
            "The same seed-era payload to an agent that holds a secret.",
            agent_secret=SECRET,
            message=legacy,
            expected=rejected("unsigned", ack_id=legacy["id"]),
        ),
    ]


def ack_vectors() -> list[dict[str, Any]]:
    def vector(name: str, message: dict[str, Any], valid: bool, secret: str = SECRET) -> dict:
        return {
            "name": name,
            "secret": secret,
            "message": message,
            "payload": json.dumps(message),
            "canonical": canonical_json(message),
            "sig": message.get("sig"),
            "valid": valid,
            "expected": {"valid": valid},
        }

    return [
        vector("received", signed(PINNED_ACK), True),
        vector(
            "scheduled",
            signed(
                {**PINNED_ACK, "status": "scheduled", "at": ISSUED + 2, "execute_at": ISSUED + 60}
            ),
            True,
        ),
        vector(
            "executing_with_failed_pre_command",
            signed(
                {
                    **PINNED_ACK,
                    "status": "executing",
                    "at": ISSUED + 60,
                    "detail": "pre-shutdown failed: docker-stop(exit 1)",
                }
            ),
            True,
        ),
        vector(
            "aborted",
            signed(
                {
                    **PINNED_ACK,
                    "id": "9b1c7e2a-5d4f-4a3b-8c6d-0e1f2a3b4c5d",
                    "status": "aborted",
                    "at": ISSUED + 21,
                    "ref": SHUTDOWN_ID,
                }
            ),
            True,
        ),
        vector(
            "rejected_too_late",
            signed(
                {
                    **PINNED_ACK,
                    "id": "9b1c7e2a-5d4f-4a3b-8c6d-0e1f2a3b4c5d",
                    "status": "rejected",
                    "at": ISSUED + 61,
                    "detail": "too_late: commit point 1767225660 passed",
                    "ref": SHUTDOWN_ID,
                }
            ),
            True,
        ),
        vector(
            "duplicate_job_pending",
            signed(
                {
                    **PINNED_ACK,
                    "status": "duplicate",
                    "detail": "duplicate: id seen before",
                    "job": "pending",
                    "execute_at": ISSUED + 60,
                }
            ),
            True,
        ),
        vector(
            "scheduled_execute_in",
            signed(
                {
                    **PINNED_ACK,
                    "status": "scheduled",
                    "execute_at": ISSUED + 60,
                    "execute_in": 59,
                }
            ),
            True,
        ),
        vector("bad_signature", signed(PINNED_ACK, OTHER_SECRET), False),
        vector("tampered_status", {**signed(PINNED_ACK), "status": "aborted"}, False),
        vector("unsigned", dict(PINNED_ACK), False),
    ]


def status_vectors() -> list[dict[str, Any]]:
    online = {
        "v": 1,
        "agent": "nas",
        "state": "online",
        "hostname": "nas.lan",
        "platform": "linux",
        "agent_version": "1.0.0",
        "dry_run": False,
        "shutdown_sec": 90,
        "at": ISSUED,
    }
    result = []
    for name, message, valid in (
        ("online", signed(online), True),
        ("offline_will", signed({**online, "state": "offline"}), True),
        ("dry_run_windows", signed({**online, "platform": "windows", "dry_run": True}), True),
        (
            "protocol2_pending_job",
            signed(
                {
                    **online,
                    "protocol": 2,
                    "job": "pending",
                    "job_id": SHUTDOWN_ID,
                    "lease_deadline": ISSUED + 120,
                }
            ),
            True,
        ),
        ("bad_signature", signed(online, OTHER_SECRET), False),
    ):
        result.append(
            {
                "name": name,
                "secret": SECRET,
                "message": message,
                "payload": json.dumps(message),
                "canonical": canonical_json(message),
                "sig": message.get("sig"),
                "valid": valid,
                "expected": {"valid": valid},
            }
        )
    return result


def lease_vectors() -> list[dict[str, Any]]:
    """What an agent with empty state does with one lease (at start or live)."""

    def make(**changes: Any) -> dict[str, Any]:
        fields: dict[str, Any] = {
            "agent_id": "nas",
            "agent_secret": SECRET,
            "device": "R651ZAB5XXXX0001",
            "grid": "on_battery",
            "soc_min": 19.5,
            "shutdown_by": ISSUED + 120,
            "fsd": False,
            "issued_at": ISSUED,
            "expires_at": ISSUED + 210,
        }
        fields.update(changes)
        return build_lease(**fields)

    def vector(
        name: str,
        description: str,
        message: dict[str, Any],
        expected: dict[str, Any],
        *,
        now: int = ISSUED,
        secret: str | None = SECRET,
        payload: str | None = None,
    ) -> dict[str, Any]:
        return {
            "name": name,
            "description": description,
            "secret": secret,
            "agent_id": "nas",
            "now": now,
            "clock_skew_sec": SKEW,
            "message": message,
            "payload": payload if payload is not None else json.dumps(message),
            "canonical": canonical_json(message),
            "sig": message.get("sig"),
            "valid": verify_message(message, secret) if secret else None,
            "expected": expected,
        }

    fsd = make(fsd=True, shutdown_by=ISSUED, expires_at=ISSUED + 90)
    return [
        vector(
            "on_battery_countdown",
            "On battery, shutdown_by 120 s after issue: the agent shuts down on its own in "
            "120 s unless a newer lease arrives.",
            make(),
            {"valid": True, "action": "countdown", "shutdown_in": 120},
        ),
        vector(
            "on_battery_agent_clock_ahead",
            "The agent's clock is 30 s ahead (within the allowance): still 120 s.",
            make(),
            {"valid": True, "action": "countdown", "shutdown_in": 120},
            now=ISSUED + 30,
        ),
        vector(
            "retained_lease_read_late",
            "Read 100 s after issue (retained, Home Assistant gone): the 40 s beyond the "
            "allowance are deducted, 80 s remain.",
            make(),
            {"valid": True, "action": "countdown", "shutdown_in": 80},
            now=ISSUED + 100,
        ),
        vector(
            "fsd_live",
            "fsd set and the lease not expired: shut down now (at start too).",
            fsd,
            {"valid": True, "action": "shutdown_now"},
            now=ISSUED + 5,
        ),
        vector(
            "fsd_commit_point_ahead",
            "fsd set when the shutdown went out; shutdown_by is its commit point, 30 s "
            "ahead: the agent goes down then (a lease saying the grid is present before "
            "then cancels it).",
            make(fsd=True, shutdown_by=ISSUED + 30, expires_at=ISSUED + 120),
            {"valid": True, "action": "countdown", "shutdown_in": 30},
        ),
        vector(
            "fsd_held_in_restore_window",
            "Grid back, fsd still held for the restore confirmation time: the host stays "
            "up (a host booting now must not go down again).",
            make(grid="present", fsd=True, shutdown_by=None, soc_min=None, expires_at=ISSUED + 90),
            {"valid": True, "action": "cancel"},
        ),
        vector(
            "fsd_expired_no_boot_loop",
            "fsd set but past expires_at + allowance (a host booting after the power came "
            "back, Home Assistant still down): never acted on.",
            fsd,
            {"valid": True, "action": "ignore", "reason": "expired"},
            now=ISSUED + 90 + SKEW + 1,
        ),
        vector(
            "grid_present_cancels",
            "Grid present: a self-decided shutdown before its commit point is cancelled.",
            make(grid="present", shutdown_by=None, soc_min=None, expires_at=ISSUED + 90),
            {"valid": True, "action": "cancel"},
        ),
        vector(
            "unknown_without_deadline",
            "Grid unknown and no shutdown_by: no countdown (a running one is cancelled).",
            make(grid="unknown", shutdown_by=None, expires_at=ISSUED + 90),
            {"valid": True, "action": "cancel"},
        ),
        vector(
            "bad_signature",
            "Signed with another secret: ignored.",
            make(agent_secret=OTHER_SECRET),
            {"valid": False, "action": "ignore", "reason": "bad_signature"},
        ),
        vector(
            "other_agent",
            "A lease for another agent (same secret by mistake): ignored.",
            make(agent_id="pc-study"),
            {"valid": True, "action": "ignore", "reason": "agent"},
        ),
        vector(
            "issued_in_future",
            "issued_at beyond the allowance ahead of the agent's clock: ignored.",
            make(),
            {"valid": True, "action": "ignore", "reason": "future"},
            now=ISSUED - SKEW - 1,
        ),
        vector(
            "unsigned_with_secret",
            "No sig, to an agent holding a secret: ignored.",
            {k: v for k, v in make().items() if k != "sig"},
            {"valid": False, "action": "ignore", "reason": "unsigned"},
        ),
    ]


def build() -> dict[str, Any]:
    return {
        "protocol": 2,
        "description": (
            "Protocol 2 test vectors (v1 commands plus the power lease); format in "
            "docs/protocol.md. Regenerate with python -m tests.policy.make_vectors."
        ),
        "pinned": {
            "secret": SECRET,
            "command": signed(PINNED_COMMAND),
            "command_canonical": canonical_json(PINNED_COMMAND),
            "command_sig": sign_message(PINNED_COMMAND, SECRET),
            "ack": signed(PINNED_ACK),
            "ack_canonical": canonical_json(PINNED_ACK),
            "ack_sig": sign_message(PINNED_ACK, SECRET),
        },
        "commands": command_vectors(),
        "acks": ack_vectors(),
        "statuses": status_vectors(),
        "leases": lease_vectors(),
    }


def render() -> str:
    return json.dumps(build(), indent=2, ensure_ascii=True) + "\n"


if __name__ == "__main__":
    VECTORS_PATH.parent.mkdir(parents=True, exist_ok=True)
    VECTORS_PATH.write_text(render(), encoding="utf-8")
    print(f"wrote {VECTORS_PATH}")
