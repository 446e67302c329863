"""The agent rules of docs/protocol.md section 4, as a pure function.

Not an agent: a second, independent reading of the spec that the test vectors
are checked against, so a vector cannot quietly contradict the documented rules.
"""

from __future__ import annotations

import json
from typing import Any

from custom_components.ecoflow_power.policy.protocol import canonical_json, verify_message

ACTIONS = {"shutdown", "abort", "ping"}


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
    try:
        obj = json.loads(vector["payload"])
    except ValueError:
        return False, [{"status": "rejected", "id": "", "detail_prefix": "malformed"}]
    ack_id = obj.get("id") if isinstance(obj, dict) and _printable_id(obj.get("id")) else ""
    try:
        issued_at, obj = _check(obj, vector["secret"], now, skew, set(vector["seen_ids"]))
    except Refused as refused:
        return False, [{"status": refused.status, "id": ack_id, "detail_prefix": refused.detail}]
    cid = obj["id"]
    if obj["action"] == "ping":
        return True, [{"status": "pong", "id": cid}]
    pending = vector["pending_shutdown"]
    if obj["action"] == "abort":
        if pending is None:
            return True, [{"status": "rejected", "id": cid, "detail_prefix": "nothing_pending"}]
        if now >= pending["execute_at"]:
            return True, [
                {"status": "rejected", "id": cid, "ref": pending["id"], "detail_prefix": "too_late"}
            ]
        return True, [{"status": "aborted", "id": cid, "ref": pending["id"]}]
    execute_at = issued_at + obj["delay_sec"]
    return True, [
        {"status": "received", "id": cid},
        {"status": "scheduled", "id": cid, "execute_at": execute_at},
        {"status": "executing", "id": cid},
    ]
