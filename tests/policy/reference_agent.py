"""The agent rules of docs/protocol.md sections 4 and 7, as pure functions.

Not an agent: a second, independent reading of the spec that the test vectors
are checked against, so a vector cannot quietly contradict the documented rules.
"""

from __future__ import annotations

import json
from typing import Any

from custom_components.ecoflow_power.policy.protocol import canonical_json, verify_message

ACTIONS = {"shutdown", "abort", "ping"}
MAX_PAYLOAD = 8192


class Refused(Exception):
    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


def _uint(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _printable_id(value: object) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 128 and all(" " <= c <= "~" for c in value)


def _check(obj: Any, secret: str | None, now: int, skew: int, seen: set[str]) -> tuple[int, dict]:
    """Returns (issued_at, obj) or raises Refused; the order is the documented one."""
    if not isinstance(obj, dict):
        raise Refused("rejected", "malformed")
    try:
        canonical_json(obj)  # flat values only
    except ValueError:
        raise Refused("rejected", "malformed") from None
    if not _printable_id(obj.get("id")) or obj.get("action") not in ACTIONS:
        raise Refused("rejected", "malformed")
    for key in ("delay_sec", "ttl_sec", "issued_at"):
        if key in obj and not _uint(obj[key]):
            raise Refused("rejected", "malformed")
    if "ttl_sec" not in obj or (obj["action"] == "shutdown" and "delay_sec" not in obj):
        raise Refused("rejected", "malformed")
    legacy = not {"v", "issued_at", "sig"} & obj.keys()
    if not legacy:
        if obj.get("v") != 1:
            raise Refused("rejected", "unsupported_version")
        if "issued_at" not in obj:
            raise Refused("rejected", "malformed")
    if secret:
        if "sig" not in obj:
            raise Refused("rejected", "unsigned")
        if not verify_message(obj, secret):
            raise Refused("rejected", "bad_signature")
    issued_at = now if legacy else obj["issued_at"]
    if issued_at > now + skew:
        raise Refused("rejected", "future")
    if now > issued_at + obj["ttl_sec"] + skew:
        raise Refused("expired", "expired")
    if obj["id"] in seen:
        raise Refused("duplicate", "duplicate")
    return issued_at, obj


def expected_acks(vector: dict[str, Any]) -> tuple[bool, list[dict[str, Any]]]:
    """(accepted, acks) the documented rules produce for one command vector."""
    now, skew = vector["now"], vector["clock_skew_sec"]
    if len(vector["payload"].encode()) > MAX_PAYLOAD:
        return False, []  # dropped before parsing
    try:
        obj = json.loads(vector["payload"])
    except ValueError:
        return False, [{"status": "rejected", "id": "", "detail_prefix": "malformed"}]
    ack_id = obj.get("id") if isinstance(obj, dict) and _printable_id(obj.get("id")) else ""
    pending = vector["pending_shutdown"]
    try:
        issued_at, obj = _check(obj, vector["secret"], now, skew, set(vector["seen_ids"]))
    except Refused as refused:
        ack = {"status": refused.status, "id": ack_id, "detail_prefix": refused.detail}
        if refused.status == "duplicate":
            ack["job"] = "none"
            if pending is not None and pending["id"] == ack_id:
                executed = now >= pending["execute_at"]
                ack["job"] = "executing" if executed else "pending"
                if not executed:
                    ack["execute_at"] = pending["execute_at"]
        return False, [ack]
    cid = obj["id"]
    if obj["action"] == "ping":
        return True, [{"status": "pong", "id": cid}]
    if obj["action"] == "abort":
        ref = obj.get("ref")
        if ref is not None and (pending is None or pending["id"] != ref):
            return True, [
                {"status": "rejected", "id": cid, "ref": ref, "detail_prefix": "nothing_pending"}
            ]
        if pending is None:
            return True, [{"status": "rejected", "id": cid, "detail_prefix": "nothing_pending"}]
        if now >= pending["execute_at"]:
            return True, [
                {"status": "rejected", "id": cid, "ref": pending["id"], "detail_prefix": "too_late"}
            ]
        return True, [{"status": "aborted", "id": cid, "ref": pending["id"]}]
    execute_at = issued_at + obj["delay_sec"]
    scheduled = {"status": "scheduled", "id": cid, "execute_at": execute_at}
    # relative countdown: age up to the allowance is skew, not transit
    left = obj["delay_sec"] - max(0, (now - issued_at) - skew)
    if left > 0:  # else: late delivery, executes after the agent's grace
        scheduled["execute_in"] = left
    return True, [{"status": "received", "id": cid}, scheduled, {"status": "executing", "id": cid}]


def lease_outcome(vector: dict[str, Any]) -> dict[str, Any]:
    """What an agent with empty state does with one lease (section 7)."""
    now, skew, secret = vector["now"], vector["clock_skew_sec"], vector["secret"]
    payload = vector["payload"]
    if len(payload.encode()) > MAX_PAYLOAD:
        return {"action": "ignore", "reason": "size"}
    obj = json.loads(payload)
    try:
        canonical_json(obj)
    except ValueError:
        return {"action": "ignore", "reason": "malformed"}
    if obj.get("v") != 2 or obj.get("type") != "lease":
        return {"action": "ignore", "reason": "malformed"}
    if obj.get("agent") != vector["agent_id"]:
        return {"action": "ignore", "reason": "agent"}
    if secret:
        if "sig" not in obj:
            return {"action": "ignore", "reason": "unsigned"}
        if not verify_message(obj, secret):
            return {"action": "ignore", "reason": "bad_signature"}
    if obj["issued_at"] > now + skew:
        return {"action": "ignore", "reason": "future"}
    if now > obj["expires_at"] + skew:
        return {"action": "ignore", "reason": "expired"}
    if obj["grid"] == "present" or ("shutdown_by" not in obj and not obj["fsd"]):
        return {"action": "cancel"}
    late = max(0, (now - obj["issued_at"]) - skew)
    left = obj.get("shutdown_by", obj["issued_at"]) - obj["issued_at"] - late
    if left <= 0:
        return {"action": "shutdown_now"}
    return {"action": "countdown", "shutdown_in": left}
