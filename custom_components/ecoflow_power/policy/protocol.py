"""Command protocol v1 between the integration and the host agents.

The wire format is specified in docs/protocol.md; this module is its reference
implementation. Signed messages hold only flat values (printable-ASCII strings,
non-negative integers, booleans) so that a bash agent using `jq -cS` and a
PowerShell agent produce byte-identical canonical JSON: floats, nesting and
non-ASCII text are where JSON encoders disagree, so they are refused here
rather than signed and later rejected by an agent.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
import hashlib
import hmac
import json
import re
from typing import Any, Final, TypeIs
import unicodedata

PROTOCOL_VERSION: Final = 1  # the `v` of commands, acks and statuses (unchanged in protocol 2)
DEFAULT_PREFIX: Final = "power-manager"
MAX_TEXT_LEN: Final = 200
# jq stores numbers as doubles: integers above 2**53 would not round-trip.
MAX_INT: Final = 2**53 - 1
# Agent ids become MQTT topic levels and file names on the agent.
_AGENT_ID_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$")
_SIG_RE: Final = re.compile(r"^[0-9a-f]{64}$")
_MAC_RE: Final = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")
_IPV4_RE: Final = re.compile(r"^(\d{1,3}\.){3}\d{1,3}$")


class CommandAction(StrEnum):
    SHUTDOWN = "shutdown"
    ABORT = "abort"
    PING = "ping"


class AckStatus(StrEnum):
    RECEIVED = "received"
    SCHEDULED = "scheduled"
    EXECUTING = "executing"
    ABORTED = "aborted"
    EXPIRED = "expired"
    DUPLICATE = "duplicate"
    REJECTED = "rejected"
    PONG = "pong"


class JobState(StrEnum):
    """Protocol 2: what a `duplicate` ack says about the job the id started."""

    PENDING = "pending"  # still counting down to its commit point: nothing to do
    EXECUTING = "executing"  # committed: the host is going down
    NONE = "none"  # the agent holds no job for this id (restarted, aborted, done): re-issue


class AgentState(StrEnum):
    ONLINE = "online"
    OFFLINE = "offline"


class AgentPlatform(StrEnum):
    LINUX = "linux"
    MACOS = "macos"
    WINDOWS = "windows"


@dataclass(frozen=True, slots=True)
class Ack:
    """A verified acknowledgement from an agent."""

    id: str
    agent: str
    status: AckStatus
    at: int
    detail: str = ""
    ref: str | None = None
    execute_at: int | None = None
    # protocol 2: on `duplicate`, the state of the job this id started
    job: JobState | None = None
    # protocol 2: on `scheduled`, seconds from `at` to the execution on the
    # agent's own (monotonic) clock; skew-free, unlike execute_at
    execute_in: int | None = None


@dataclass(frozen=True, slots=True)
class AgentStatus:
    """A verified (retained) status message from an agent."""

    agent: str
    state: AgentState
    hostname: str
    platform: AgentPlatform
    agent_version: str
    dry_run: bool
    shutdown_sec: int
    at: int
    # protocol 2 (absent from v1 agents): highest protocol version the agent speaks
    protocol: int = 1
    # protocol 2: the agent's own job, and the deadline its lease gave it
    job: JobState | None = None
    job_id: str | None = None
    lease_deadline: int | None = None
    # the interface the agent reaches the broker through (Wake-on-LAN), when known
    mac: str | None = None
    broadcast: str | None = None


# --------------------------------------------------------------------------
# Canonical form and signatures
# --------------------------------------------------------------------------


def _is_printable_ascii(text: str) -> bool:
    # 0x7f (DEL) is excluded on purpose: jq escapes it, Python does not.
    return all(" " <= ch <= "~" for ch in text)


def _check_flat_value(key: str, value: object) -> None:
    if isinstance(value, bool):
        return
    if isinstance(value, int):
        if not 0 <= value <= MAX_INT:
            raise ValueError(f"{key}: integers must be in 0..2**53-1")
        return
    if isinstance(value, str):
        if not _is_printable_ascii(value):
            raise ValueError(f"{key}: strings must be printable ASCII")
        return
    raise ValueError(f"{key}: only strings, non-negative integers and booleans can be signed")


def canonical_json(obj: Mapping[str, Any]) -> str:
    """Every field except `sig`, keys sorted, no whitespace, ASCII only.

    Raises ValueError for values outside the flat subset (see module doc).
    """
    body: dict[str, Any] = {}
    for key, value in obj.items():
        if key == "sig":
            continue
        if not isinstance(key, str) or not _is_printable_ascii(key):
            raise ValueError("keys must be printable ASCII strings")
        _check_flat_value(key, value)
        body[key] = value
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sign_message(obj: Mapping[str, Any], secret: str) -> str:
    """Lowercase hex HMAC-SHA256 of the canonical JSON, keyed by the secret's UTF-8."""
    if not secret:
        raise ValueError("an empty secret cannot sign")
    digest = hmac.new(secret.encode("utf-8"), canonical_json(obj).encode("utf-8"), hashlib.sha256)
    return digest.hexdigest()


def verify_message(obj: Mapping[str, Any], secret: str) -> bool:
    """True when `obj["sig"]` is the signature of `obj` under `secret`.

    Never raises: anything unsignable or unsigned is simply not verified.
    """
    sig = obj.get("sig")
    if not secret or not isinstance(sig, str) or not _SIG_RE.match(sig):
        return False
    try:
        expected = sign_message(obj, secret)
    except ValueError:
        return False
    return hmac.compare_digest(expected, sig)


def sanitize_text(text: object, max_len: int = MAX_TEXT_LEN) -> str:
    """Printable ASCII only, whitespace runs folded to one space, at most max_len chars.

    Reasons and device names come from users and device firmware; anything that
    jq or PowerShell could render differently is dropped before signing.
    """
    if max_len < 0:
        raise ValueError("max_len must be >= 0")
    # NFKD splits "é" into "e" + accent, so names keep their letters.
    raw = unicodedata.normalize("NFKD", "" if text is None else str(text))
    out: list[str] = []
    for ch in raw:
        if ch.isspace():
            if out and out[-1] != " ":
                out.append(" ")
        elif " " < ch <= "~":
            out.append(ch)
    return "".join(out).strip()[:max_len].rstrip()


# --------------------------------------------------------------------------
# Topics
# --------------------------------------------------------------------------


def is_valid_agent_id(agent_id: str) -> bool:
    return bool(_AGENT_ID_RE.match(agent_id))


def _topic(prefix: str, agent_id: str, leaf: str) -> str:
    prefix = prefix.strip("/")
    if not prefix or any(ch in prefix for ch in "+#\0"):
        raise ValueError(f"invalid topic prefix {prefix!r}")
    if not is_valid_agent_id(agent_id):
        raise ValueError(f"invalid agent id {agent_id!r}")
    return f"{prefix}/{agent_id}/{leaf}"


def command_topic(prefix: str, agent_id: str) -> str:
    """QoS 1, not retained: a retained shutdown would replay on every reconnect."""
    return _topic(prefix, agent_id, "cmd")


def ack_topic(prefix: str, agent_id: str) -> str:
    return _topic(prefix, agent_id, "ack")


def status_topic(prefix: str, agent_id: str) -> str:
    return _topic(prefix, agent_id, "status")


def power_topic(prefix: str, agent_id: str) -> str:
    """Protocol 2: the agent's power lease; QoS 1, retained (see policy/lease.py)."""
    return _topic(prefix, agent_id, "power")


# --------------------------------------------------------------------------
# Building and parsing messages
# --------------------------------------------------------------------------


def _require_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ValueError(f"{name} must be an integer >= {minimum}")
    return value


def build_command(
    *,
    action: CommandAction | str,
    agent_secret: str,
    device: str,
    reason: str,
    delay_sec: int,
    ttl_sec: int,
    issued_at: int,
    command_id: str,
    ref: str | None = None,
) -> dict[str, Any]:
    """A signed v1 command, ready for json.dumps onto `command_topic`.

    `ref` (protocol 2, aborts only): the id of the shutdown the abort cancels.
    A protocol-2 agent cancels only that job; a v1 agent ignores the field.
    """
    if not command_id or not _is_printable_ascii(command_id) or len(command_id) > 128:
        raise ValueError("command_id must be 1..128 printable ASCII characters")
    message: dict[str, Any] = {
        "v": PROTOCOL_VERSION,
        "id": command_id,
        "action": str(CommandAction(action)),
        "delay_sec": _require_int("delay_sec", delay_sec, 0),
        "ttl_sec": _require_int("ttl_sec", ttl_sec, 1),
        "issued_at": _require_int("issued_at", issued_at, 0),
        "reason": sanitize_text(reason),
        "device": sanitize_text(device),
    }
    if ref is not None:
        if action != CommandAction.ABORT:
            raise ValueError("only an abort names a ref")
        if not ref or not _is_printable_ascii(ref) or len(ref) > 128:
            raise ValueError("ref must be 1..128 printable ASCII characters")
        message["ref"] = ref
    message["sig"] = sign_message(message, agent_secret)
    return message


def _load_object(payload: bytes | str) -> dict[str, Any] | None:
    try:
        obj = json.loads(payload)
    except ValueError:  # JSONDecodeError and UnicodeDecodeError both subclass it
        return None
    return obj if isinstance(obj, dict) else None


def _is_uint(value: object) -> TypeIs[int]:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def parse_ack(payload: bytes | str, secret: str) -> Ack | None:
    """The ack in `payload`, or None if it is malformed or not signed by `secret`."""
    obj = _load_object(payload)
    if obj is None or obj.get("v") != PROTOCOL_VERSION or not verify_message(obj, secret):
        return None
    ack_id, agent, detail = obj.get("id"), obj.get("agent"), obj.get("detail", "")
    ref, execute_at, at = obj.get("ref"), obj.get("execute_at"), obj.get("at")
    if not (isinstance(ack_id, str) and isinstance(agent, str) and isinstance(detail, str)):
        return None
    if not _is_uint(at) or (ref is not None and not isinstance(ref, str)):
        return None
    if execute_at is not None and not _is_uint(execute_at):
        return None
    execute_in, job = obj.get("execute_in"), obj.get("job")
    if execute_in is not None and not _is_uint(execute_in):
        return None
    try:
        status = AckStatus(str(obj.get("status")))
        job_state = None if job is None else JobState(job)
    except ValueError:
        return None
    return Ack(
        id=ack_id,
        agent=agent,
        status=status,
        at=at,
        detail=detail,
        ref=ref,
        execute_at=execute_at,
        job=job_state,
        execute_in=execute_in,
    )


def parse_status(payload: bytes | str, secret: str) -> AgentStatus | None:
    """The agent status in `payload`, or None if malformed or not signed by `secret`."""
    obj = _load_object(payload)
    if obj is None or obj.get("v") != PROTOCOL_VERSION or not verify_message(obj, secret):
        return None
    texts = [obj.get(key) for key in ("agent", "hostname", "agent_version")]
    if not all(isinstance(text, str) for text in texts):
        return None
    dry_run, shutdown_sec, at = obj.get("dry_run"), obj.get("shutdown_sec"), obj.get("at")
    if not isinstance(dry_run, bool) or not _is_uint(shutdown_sec) or not _is_uint(at):
        return None
    protocol, job, job_id = obj.get("protocol", 1), obj.get("job"), obj.get("job_id")
    deadline = obj.get("lease_deadline")
    if not _is_uint(protocol) or (job_id is not None and not isinstance(job_id, str)):
        return None
    if deadline is not None and not _is_uint(deadline):
        return None
    mac, broadcast = obj.get("mac"), obj.get("broadcast")
    if mac is not None and not (isinstance(mac, str) and _MAC_RE.match(mac)):
        return None
    if broadcast is not None and not (isinstance(broadcast, str) and _IPV4_RE.match(broadcast)):
        return None
    try:
        state = AgentState(str(obj.get("state")))
        platform = AgentPlatform(str(obj.get("platform")))
        job_state = None if job is None else JobState(job)
    except ValueError:
        return None
    return AgentStatus(
        agent=obj["agent"],
        state=state,
        hostname=obj["hostname"],
        platform=platform,
        agent_version=obj["agent_version"],
        dry_run=dry_run,
        shutdown_sec=shutdown_sec,
        at=at,
        protocol=protocol,
        job=job_state,
        job_id=job_id,
        lease_deadline=deadline,
        mac=mac,
        broadcast=broadcast,
    )
