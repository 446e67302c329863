#!/usr/bin/env python3
"""EcoFlow Power Management host agent for Linux (protocol 2, accepts v1 commands).

Listens on ``{prefix}/{agent_id}/cmd`` for signed commands and on
``{prefix}/{agent_id}/power`` for the signed, retained power lease of the Home
Assistant integration, and shuts this host down cleanly when told to, or on
its own when the lease's deadline passes with no newer lease (Home Assistant,
the broker or the cloud gone during an outage).

Safety rules this file keeps:

* No text from a message ever reaches a shell or an argv. Pre-shutdown and
  shutdown commands come only from the agent's own config file, which must not
  be writable by group or others.
* Every command is checked (JSON shape, version, HMAC signature, age, id never
  seen before) before anything happens; every rejection is acknowledged with
  the reason.
* Seen ids and the pending job live on disk, so a restart neither replays a
  command nor forgets a countdown.
* Fail closed: without a secret the agent refuses to start unless its config
  says ``allow_unauthenticated = true``.

Python 3.9+ and paho-mqtt (1.6 or 2.x) are the only requirements.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import configparser
import contextlib
import fcntl
import hashlib
import hmac
import json
import logging
import os
import re
import shlex
import signal
import socket
import stat
import struct
import subprocess
import sys
import tempfile
import threading
import time
from typing import Any
import unicodedata

try:
    import paho.mqtt.client as mqtt
except ImportError:  # pragma: no cover - reported at start-up
    mqtt = None  # type: ignore[assignment]

AGENT_VERSION = "2.0.0"
PROTOCOL_VERSION = 1  # the `v` of commands, acks and statuses
PROTOCOL_LEVEL = 2  # what this agent speaks (announced as `protocol` in its status)
LEASE_VERSION = 2
ACTIONS = ("shutdown", "abort", "ping")
MAX_PAYLOAD = 8192  # bigger payloads are dropped before parsing
REJECT_BURST = 20  # rejection acks: a burst of this many, then...
REJECT_PER_SEC = 2.0  # ... this many per second
MAX_ID_LEN = 128
MAX_SEEN_IDS = 20000
MAX_SAFE_INT = 2**53 - 1
MAX_DETAIL = 200
DEFAULT_CONFIG = "/etc/ecoflow-agent/agent.conf"
ENV_PREFIX = "ECOFLOW_AGENT_"

LOG = logging.getLogger("ecoflow_agent")


# --------------------------------------------------------------------------
# Protocol helpers
# --------------------------------------------------------------------------


def canonical_json(obj: dict[str, Any]) -> str:
    """All fields except ``sig``, keys sorted, no whitespace, ASCII."""
    body = {k: v for k, v in obj.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sign(obj: dict[str, Any], secret: str) -> str:
    return hmac.new(
        secret.encode("utf-8"), canonical_json(obj).encode("ascii"), hashlib.sha256
    ).hexdigest()


def verify(obj: dict[str, Any], secret: str) -> bool:
    sig = obj.get("sig")
    if not isinstance(sig, str):
        return False
    return hmac.compare_digest(sign(obj, secret), sig.lower())


AGENT_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}\Z")


def sanitize(text: str) -> str:
    """Printable ASCII only (accents folded), whitespace runs folded, at most 200 chars."""
    folded = unicodedata.normalize("NFKD", str(text))
    kept = "".join(ch if 32 <= ord(ch) < 127 else " " if ch.isspace() else "" for ch in folded)
    return " ".join(kept.split())[:MAX_DETAIL]


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _printable(value: str) -> bool:
    return all(32 <= ord(ch) < 127 for ch in value)


class Rejection(Exception):
    """A command that fails a check: ``status`` and ``detail`` go into the ack."""

    def __init__(self, status: str, detail: str) -> None:
        super().__init__(detail)
        self.status = status
        self.detail = detail


class Command:
    """A checked command."""

    def __init__(
        self,
        *,
        cid: str,
        action: str,
        delay_sec: int,
        ttl_sec: int,
        issued_at: int,
        reason: str,
        device: str,
        legacy: bool,
        ref: str | None = None,
    ) -> None:
        self.id = cid
        self.action = action
        self.delay_sec = delay_sec
        self.ttl_sec = ttl_sec
        self.issued_at = issued_at
        self.reason = reason
        self.device = device
        self.legacy = legacy
        self.ref = ref

    @property
    def execute_at(self) -> int:
        return self.issued_at + self.delay_sec


def parse_payload(payload: bytes) -> tuple[dict[str, Any] | None, str]:
    """Return (object, id-for-ack). Raises Rejection for non-JSON/non-object."""
    if len(payload) > MAX_PAYLOAD:
        raise Rejection("rejected", "malformed: payload too large")
    try:
        obj = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError) as err:
        raise Rejection("rejected", f"malformed: not JSON ({type(err).__name__})") from None
    if not isinstance(obj, dict):
        raise Rejection("rejected", "malformed: not a JSON object")
    cid = obj.get("id")
    ack_id = cid if isinstance(cid, str) and len(cid) <= MAX_ID_LEN and _printable(cid) else ""
    return obj, ack_id


def check_command(
    obj: dict[str, Any],
    secret: str,
    skew: int,
    now: float,
    pending_ids: frozenset[str] = frozenset(),
) -> Command:
    """Shape, version, signature and age checks (the id check needs the store).

    Times compare in whole epoch seconds, as the protocol defines them. An
    abort naming (``ref``) a job still pending is not refused as expired: it
    can only cancel that one job, and it may have been queued behind a late
    shutdown that waits its grace for it.
    """
    now = int(now)
    legacy = "v" not in obj and "sig" not in obj and "issued_at" not in obj
    # -- shape: only flat values (printable-ASCII strings, integers 0..2^53-1, booleans)
    for key, value in obj.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            if not 0 <= value <= MAX_SAFE_INT:
                raise Rejection("rejected", f"malformed: {key} out of range")
        elif isinstance(value, str):
            if not _printable(value):
                raise Rejection("rejected", f"malformed: {key} is not printable ASCII")
        else:
            raise Rejection("rejected", f"malformed: {key} is not a flat value")
    cid = obj.get("id")
    if not isinstance(cid, str) or not cid or len(cid) > MAX_ID_LEN or not _printable(cid):
        raise Rejection("rejected", "malformed: id must be a non-empty printable string")
    action = obj.get("action")
    if action not in ACTIONS:
        raise Rejection("rejected", "malformed: unknown action")
    for key in ("delay_sec", "ttl_sec", "issued_at"):
        if key in obj and not (_is_int(obj[key]) and obj[key] >= 0):
            raise Rejection("rejected", f"malformed: {key} must be a non-negative integer")
    for key in ("reason", "device"):
        if key in obj and not isinstance(obj[key], str):
            raise Rejection("rejected", f"malformed: {key} must be a string")
    ref = obj.get("ref")
    if ref is not None and (not isinstance(ref, str) or not ref or len(ref) > MAX_ID_LEN):
        raise Rejection("rejected", "malformed: ref must be a non-empty printable string")
    if "ttl_sec" not in obj:
        raise Rejection("rejected", "malformed: ttl_sec missing")
    if action == "shutdown" and "delay_sec" not in obj:
        raise Rejection("rejected", "malformed: delay_sec missing")
    # -- version
    if not legacy:
        if obj.get("v") != PROTOCOL_VERSION or not _is_int(obj.get("v")):
            raise Rejection("rejected", "unsupported_version")
        if "issued_at" not in obj:
            raise Rejection("rejected", "malformed: issued_at missing")
    # -- signature
    if secret:
        if "sig" not in obj:
            raise Rejection("rejected", "unsigned: a signature is required")
        if not verify(obj, secret):
            raise Rejection("rejected", "bad_signature")
    # -- age
    issued_at = int(now) if legacy else int(obj["issued_at"])
    ttl = int(obj["ttl_sec"])
    if issued_at > now + skew:
        raise Rejection("rejected", "future: issued_at beyond the clock skew allowance")
    late_abort = action == "abort" and obj.get("ref") in pending_ids
    if now > issued_at + ttl + skew and not late_abort:
        raise Rejection("expired", f"expired: issued_at {issued_at} + ttl_sec {ttl}")
    return Command(
        cid=cid,
        action=str(action),
        delay_sec=int(obj.get("delay_sec", 0)),
        ttl_sec=ttl,
        issued_at=issued_at,
        reason=str(obj.get("reason", "")),
        device=str(obj.get("device", "")),
        legacy=legacy,
        ref=ref if action == "abort" else None,
    )


# --------------------------------------------------------------------------
# Seen-id store
# --------------------------------------------------------------------------


class SeenIds:
    """Command ids on disk with the time until which each must be remembered."""

    def __init__(self, state_dir: str, retain_sec: int) -> None:
        self.path = os.path.join(state_dir, "seen_ids.json")
        self.retain_sec = retain_sec
        self._ids: dict[str, float] = {}
        self._lock = threading.Lock()
        os.makedirs(state_dir, mode=0o700, exist_ok=True)
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
            ids = data.get("ids", {}) if isinstance(data, dict) else {}
            self._ids = {str(k): float(v) for k, v in ids.items()}
        except FileNotFoundError:
            pass
        except (OSError, ValueError, TypeError, AttributeError) as err:
            LOG.error("seen-id store %s unreadable (%s); starting empty", self.path, err)

    def check_and_add(self, cid: str, keep_until: float, now: float) -> bool:
        """True if ``cid`` is new (and now remembered), False if seen before."""
        with self._lock:
            if cid in self._ids:
                return False
            self._ids = {k: v for k, v in self._ids.items() if v > now}
            if len(self._ids) >= MAX_SEEN_IDS:
                for key in sorted(self._ids, key=self._ids.__getitem__)[: len(self._ids) // 10]:
                    del self._ids[key]
            self._ids[cid] = max(keep_until, now + self.retain_sec)
            self._save()
            return True

    def _save(self) -> None:
        directory = os.path.dirname(self.path)
        fd, tmp = tempfile.mkstemp(prefix=".seen_ids.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump({"v": 1, "ids": self._ids}, handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError as err:
            LOG.error("cannot write seen-id store %s: %s", self.path, err)
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# --------------------------------------------------------------------------
# Configuration
# --------------------------------------------------------------------------


class PreCommand:
    def __init__(
        self,
        name: str,
        argv: list[str],
        timeout: float,
        undo: list[str] | None = None,
        undo_timeout: float = 60.0,
    ) -> None:
        self.name = name
        self.argv = argv
        self.timeout = timeout
        self.undo = undo  # early mode: run on abort if this command was started
        self.undo_timeout = undo_timeout


class Config:
    def __init__(self) -> None:
        self.mqtt_host = "127.0.0.1"
        self.mqtt_port = 1883
        self.mqtt_username = ""
        self.mqtt_password = ""
        self.mqtt_tls = False
        self.mqtt_ca_file = ""
        self.mqtt_cert_file = ""
        self.mqtt_key_file = ""
        self.mqtt_tls_insecure = False
        self.mqtt_keepalive = 30
        self.agent_id = socket.gethostname().split(".")[0]
        self.secret = ""
        self.prefix = "power-manager"
        self.skew_sec = 60
        self.dry_run = False
        self.state_dir = "/var/lib/ecoflow-agent"
        self.seen_retain_sec = 7 * 86400
        self.shutdown_command = ["systemctl", "poweroff"]
        self.shutdown_sec = 60
        self.pre_shutdown: list[PreCommand] = []
        self.log_level = "INFO"
        self.allow_unauthenticated = False
        self.pre_shutdown_mode = "commit"  # or "early" (with undo commands on abort)
        self.kill_grace_sec = 5.0
        self.late_grace_sec = 3.0


_BOOL_TRUE = ("1", "true", "yes", "on")
_BOOL_FALSE = ("0", "false", "no", "off", "")

# key -> (attribute, kind)
_KEYS = {
    "mqtt_host": "str",
    "mqtt_port": "int",
    "mqtt_username": "str",
    "mqtt_password": "str",
    "mqtt_tls": "bool",
    "mqtt_ca_file": "str",
    "mqtt_cert_file": "str",
    "mqtt_key_file": "str",
    "mqtt_tls_insecure": "bool",
    "mqtt_keepalive": "int",
    "agent_id": "str",
    "secret": "str",
    "prefix": "str",
    "skew_sec": "int",
    "dry_run": "bool",
    "state_dir": "str",
    "seen_retain_sec": "int",
    "shutdown_command": "argv",
    "shutdown_sec": "int",
    "log_level": "str",
    "allow_unauthenticated": "bool",
    "pre_shutdown_mode": "str",
    "kill_grace_sec": "float",
    "late_grace_sec": "float",
}


_CONVERSION_ERRORS = (TypeError, ValueError)


class ConfigError(Exception):
    pass


def parse_argv(value: Any, what: str) -> list[str]:
    """An argv from a JSON list or a shlex-split string (parsing only, no shell)."""
    if isinstance(value, list):
        argv = value
    elif isinstance(value, str):
        text = value.strip()
        if text.startswith("["):
            try:
                argv = json.loads(text)
            except ValueError as err:
                raise ConfigError(f"{what}: bad JSON list ({err})") from None
        else:
            argv = shlex.split(text)
    else:
        raise ConfigError(f"{what}: must be a list or a string")
    if not argv or not all(isinstance(a, str) for a in argv):
        raise ConfigError(f"{what}: must be a non-empty list of strings")
    return list(argv)


def _set(cfg: Config, key: str, value: Any, source: str) -> None:
    kind = _KEYS[key]
    try:
        if kind == "str":
            result: Any = str(value)
        elif kind == "int":
            result = int(value)
        elif kind == "float":
            result = float(value)
            if not 0 <= result <= 3600:
                raise ValueError(value)
        elif kind == "bool":
            if isinstance(value, bool):
                result = value
            elif str(value).strip().lower() in _BOOL_TRUE:
                result = True
            elif str(value).strip().lower() in _BOOL_FALSE:
                result = False
            else:
                raise ValueError(value)
        else:
            result = parse_argv(value, key)
    except _CONVERSION_ERRORS:
        raise ConfigError(f"{source}: bad value for {key}") from None
    setattr(cfg, key, result)


def check_config_file_permissions(path: str) -> None:
    info = os.stat(path)
    if not stat.S_ISREG(info.st_mode):
        raise ConfigError(f"{path} is not a regular file")
    if info.st_mode & (stat.S_IWGRP | stat.S_IWOTH):
        raise ConfigError(
            f"{path} is writable by group or others (mode {stat.S_IMODE(info.st_mode):o}); "
            f"refusing it: run chmod 600 {path}"
        )
    if info.st_uid not in (0, os.geteuid()):
        raise ConfigError(f"{path} is owned by uid {info.st_uid}, not root")
    if info.st_mode & (stat.S_IRGRP | stat.S_IROTH):
        LOG.warning("%s is readable by group/others: it holds the secret; chmod 600 it", path)


def load_config(path: str | None, environ: dict[str, str]) -> Config:
    """Defaults < config file (INI or JSON) < ECOFLOW_AGENT_* environment."""
    cfg = Config()
    if path:
        check_config_file_permissions(path)
        with open(path, encoding="utf-8") as handle:
            text = handle.read()
        if text.lstrip().startswith("{"):
            _load_json(cfg, text, path)
        else:
            _load_ini(cfg, text, path)
    for key in _KEYS:
        env_key = ENV_PREFIX + key.upper()
        if env_key in environ:
            _set(cfg, key, environ[env_key], env_key)
    if not AGENT_ID_RE.match(cfg.agent_id):
        raise ConfigError("agent_id must match " + AGENT_ID_RE.pattern)
    if cfg.skew_sec < 0 or cfg.shutdown_sec < 0:
        raise ConfigError("skew_sec and shutdown_sec must be >= 0")
    if cfg.pre_shutdown_mode not in ("commit", "early"):
        raise ConfigError("pre_shutdown_mode must be commit or early")
    if not cfg.secret and not cfg.allow_unauthenticated:
        raise ConfigError(
            "no secret configured: refusing to start (paste the secret Home Assistant "
            "generated for this agent, or set allow_unauthenticated = true to accept "
            "unsigned commands from anyone on the broker)"
        )
    return cfg


def _load_json(cfg: Config, text: str, path: str) -> None:
    try:
        data = json.loads(text)
    except ValueError as err:
        raise ConfigError(f"{path}: bad JSON ({err})") from None
    for key, value in data.items():
        if key == "pre_shutdown":
            if not isinstance(value, list):
                raise ConfigError(f"{path}: pre_shutdown must be a list")
            for index, item in enumerate(value):
                if not isinstance(item, dict):
                    raise ConfigError(f"{path}: pre_shutdown[{index}] must be an object")
                undo = item.get("undo")
                cfg.pre_shutdown.append(
                    PreCommand(
                        str(item.get("name", f"pre{index + 1}")),
                        parse_argv(item.get("command"), f"pre_shutdown[{index}]"),
                        float(item.get("timeout_sec", 60)),
                        None if undo is None else parse_argv(undo, f"pre_shutdown[{index}].undo"),
                        float(item.get("undo_timeout_sec", 60)),
                    )
                )
        elif key in _KEYS:
            _set(cfg, key, value, path)
        else:
            raise ConfigError(f"{path}: unknown key {key}")


def _load_ini(cfg: Config, text: str, path: str) -> None:
    parser = configparser.ConfigParser(interpolation=None)
    try:
        parser.read_string(text, source=path)
    except configparser.Error as err:
        raise ConfigError(f"{path}: {err}") from None
    for section in parser.sections():
        if section in ("mqtt", "agent"):
            for key, value in parser.items(section):
                full = "mqtt_" + key if section == "mqtt" else key
                if full not in _KEYS:
                    raise ConfigError(f"{path}: unknown key [{section}] {key}")
                _set(cfg, full, value, path)
        elif section.startswith("pre_shutdown"):
            sec = parser[section]
            if "command" not in sec:
                raise ConfigError(f"{path}: [{section}] needs command")
            name = sec.get("name", section.partition(":")[2] or section)
            unknown = set(sec) - {"command", "name", "timeout_sec", "undo", "undo_timeout_sec"}
            if unknown:
                raise ConfigError(f"{path}: [{section}] unknown key {sorted(unknown)[0]}")
            try:
                timeout = float(sec.get("timeout_sec", "60"))
                undo_timeout = float(sec.get("undo_timeout_sec", "60"))
            except ValueError:
                raise ConfigError(f"{path}: [{section}] bad timeout_sec") from None
            undo = parse_argv(sec["undo"], section + " undo") if "undo" in sec else None
            cfg.pre_shutdown.append(
                PreCommand(name, parse_argv(sec["command"], section), timeout, undo, undo_timeout)
            )
        else:
            raise ConfigError(f"{path}: unknown section [{section}]")


# --------------------------------------------------------------------------
# Running commands from the config (never from a message)
# --------------------------------------------------------------------------


def stop_tree(proc: Any, grace: float) -> None:
    """End ``proc`` and everything it started: TERM to its process group, KILL after ``grace``."""
    if proc.poll() is not None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except OSError:
            with contextlib.suppress(OSError):
                proc.send_signal(sig)
        try:
            proc.wait(wait)
            # the leader is gone; make sure no member of its group lingers
            with contextlib.suppress(OSError):
                os.killpg(proc.pid, signal.SIGKILL)
            return
        except subprocess.TimeoutExpired:
            continue


def run_argv(
    argv: list[str],
    timeout: float,
    on_start: Callable[[Any], None] | None = None,
    grace: float = 5.0,
) -> tuple[bool, str]:
    """Run ``argv`` without a shell in its own process group; return (ok, description)."""
    try:
        proc = subprocess.Popen(
            argv,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            close_fds=True,
        )
    except OSError as err:
        return False, f"cannot start: {err.strerror or err}"
    if on_start is not None:
        on_start(proc)
    try:
        out, _ = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        stop_tree(proc, grace)
        with contextlib.suppress(subprocess.TimeoutExpired, ValueError, OSError):
            proc.communicate(timeout=5)
        return False, f"timeout after {timeout:g}s"
    except (ValueError, OSError) as err:  # pipes closed by a concurrent stop
        LOG.debug("output of %s lost: %s", argv[0], err)
        proc.wait()
        out = b""
    text = out.decode("utf-8", "replace").strip()
    if text:
        LOG.info("  output: %s", text[-500:])
    if proc.returncode != 0:
        return False, f"exit {proc.returncode}"
    return True, "ok"


# --------------------------------------------------------------------------
# The interface the broker is reached through (MAC and broadcast, for Wake-on-LAN)
# --------------------------------------------------------------------------

_SIOCGIFADDR = 0x8915
_SIOCGIFBRDADDR = 0x8919
_MAC_RE = re.compile(r"^[0-9a-f]{2}(:[0-9a-f]{2}){5}$")


def broker_interface(host: str, port: int) -> dict[str, str]:
    """``{"mac", "broadcast"}`` of the IPv4 interface that routes to ``host``.

    Empty when unknown (IPv6, loopback, no such interface, not Linux): the
    integration then asks the user for the MAC. Connecting a UDP socket sends
    nothing; it only makes the kernel pick the route.
    """
    try:
        info = socket.getaddrinfo(host, port, socket.AF_INET, socket.SOCK_DGRAM)
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as probe:
            probe.connect(info[0][4])
            local_ip = probe.getsockname()[0]
            for _index, name in socket.if_nameindex():
                packed = struct.pack("256s", name.encode()[:15])
                try:
                    addr = fcntl.ioctl(probe.fileno(), _SIOCGIFADDR, packed)[20:24]
                except OSError:
                    continue  # no IPv4 address on it
                if socket.inet_ntoa(addr) != local_ip:
                    continue
                with open(f"/sys/class/net/{name}/address", encoding="ascii") as handle:
                    mac = handle.read().strip().lower()
                brd = socket.inet_ntoa(fcntl.ioctl(probe.fileno(), _SIOCGIFBRDADDR, packed)[20:24])
                if not _MAC_RE.match(mac) or mac == "00:00:00:00:00:00":
                    return {}
                result = {"mac": mac}
                if brd != "0.0.0.0":  # noqa: S104 - a value read back, not a bind
                    result["broadcast"] = brd
                return result
    except (OSError, IndexError, ValueError) as err:
        LOG.debug("interface towards %s unknown: %s", host, err)
    return {}


# --------------------------------------------------------------------------
# Power lease (protocol 2)
# --------------------------------------------------------------------------

LEASE_GRIDS = ("present", "on_battery", "unknown")


class Lease:
    def __init__(self, obj: dict[str, Any]) -> None:
        self.obj = obj
        self.issued_at = int(obj["issued_at"])
        self.expires_at = int(obj["expires_at"])
        self.grid = str(obj["grid"])
        self.fsd = bool(obj["fsd"])
        self.shutdown_by: int | None = obj.get("shutdown_by")
        self.sig = str(obj.get("sig", ""))


def check_lease(obj: Any, agent_id: str, secret: str, skew: int, now: float) -> Lease:
    """Shape, signature and age of a lease; raises ValueError with the reason."""
    if not isinstance(obj, dict):
        raise ValueError("not a JSON object")
    for key, value in obj.items():
        if isinstance(value, bool):
            continue
        if isinstance(value, int):
            if not 0 <= value <= MAX_SAFE_INT:
                raise ValueError(f"{key} out of range")
        elif not isinstance(value, str) or not _printable(value):
            raise ValueError(f"{key} is not a flat value")
    if obj.get("v") != LEASE_VERSION or obj.get("type") != "lease":
        raise ValueError("not a version 2 lease")
    if obj.get("agent") != agent_id:
        raise ValueError("lease for another agent")
    if obj.get("grid") not in LEASE_GRIDS or not isinstance(obj.get("fsd"), bool):
        raise ValueError("bad grid or fsd")
    for key in ("issued_at", "expires_at"):
        if not _is_int(obj.get(key)):
            raise ValueError(f"{key} missing")
    if "shutdown_by" in obj and not _is_int(obj["shutdown_by"]):
        raise ValueError("bad shutdown_by")
    if secret:
        if "sig" not in obj:
            raise ValueError("unsigned")
        if not verify(obj, secret):
            raise ValueError("bad_signature")
    if obj["issued_at"] > int(now) + skew:
        raise ValueError("issued in the future")
    if int(now) > obj["expires_at"] + skew:
        raise ValueError(f"expired at {obj['expires_at']}")
    return Lease(obj)


def countdown(issued_at: int, seconds: int, skew: int, now: float) -> float:
    """Seconds left of a countdown of ``seconds`` from ``issued_at``, kept relative.

    An age (our clock minus the sender's ``issued_at``) up to the skew
    allowance is taken as clock skew, not as time spent in transit: the
    countdown runs its full length from receipt, so a skewed clock neither
    shortens nor lengthens it. Only the age beyond the allowance (a message
    queued while we were away) is deducted.
    """
    late = max(0.0, (now - issued_at) - skew)
    return seconds - late


# --------------------------------------------------------------------------
# Persistent state: the pending job and the lease, next to the seen ids
# --------------------------------------------------------------------------


class StateFile:
    def __init__(self, state_dir: str) -> None:
        self.path = os.path.join(state_dir, "job.json")

    def load(self) -> dict[str, Any]:
        try:
            with open(self.path, encoding="utf-8") as handle:
                data = json.load(handle)
            return data if isinstance(data, dict) else {}
        except FileNotFoundError:
            return {}
        except (OSError, ValueError) as err:
            LOG.error("state file %s unreadable (%s); starting without it", self.path, err)
            return {}

    def save(self, data: dict[str, Any]) -> None:
        directory = os.path.dirname(self.path)
        fd, tmp = tempfile.mkstemp(prefix=".job.", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as handle:
                json.dump(data, handle, separators=(",", ":"))
                handle.flush()
                os.fsync(handle.fileno())
            os.replace(tmp, self.path)
        except OSError as err:
            LOG.error("cannot write state file %s: %s", self.path, err)
            with contextlib.suppress(OSError):
                os.unlink(tmp)


# --------------------------------------------------------------------------
# The agent
# --------------------------------------------------------------------------


class Job:
    """The one shutdown under way: from a command, from the lease deadline, or from fsd."""

    def __init__(
        self,
        cid: str,
        kind: str,
        commit_at: int,
        deadline: float,
        *,
        issued_at: int = 0,
        ttl_sec: int = 0,
    ) -> None:
        self.id = cid
        self.kind = kind  # command, lease, fsd
        self.ids = {cid}  # merged shutdowns answer for the same job
        self.commit_at = commit_at  # the commit point on the sender's clock (acks)
        self.deadline = deadline  # when we execute, on our own wall clock
        self.issued_at = issued_at
        self.ttl_sec = ttl_sec
        self.state = "pending"  # pending, preparing, executing, aborted, done
        self.failed: list[str] = []
        self.started: list[PreCommand] = []  # early mode: what may need undoing
        self.proc: Any = None  # the pre-shutdown command running now

    def to_dict(self) -> dict[str, Any]:
        return {
            "id": self.id,
            "kind": self.kind,
            "ids": sorted(self.ids),
            "commit_at": self.commit_at,
            "deadline": self.deadline,
            "issued_at": self.issued_at,
            "ttl_sec": self.ttl_sec,
            "state": "executing" if self.state in ("executing", "done") else "pending",
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Job:
        job = cls(
            str(data["id"]),
            str(data["kind"]),
            int(data["commit_at"]),
            float(data["deadline"]),
            issued_at=int(data.get("issued_at", 0)),
            ttl_sec=int(data.get("ttl_sec", 0)),
        )
        job.ids = {str(i) for i in data.get("ids", [job.id])}
        job.state = str(data.get("state", "pending"))
        return job


class RateLimit:
    def __init__(self, burst: int, per_sec: float, clock: Callable[[], float]) -> None:
        self.burst, self.per_sec, self.clock = burst, per_sec, clock
        self.tokens = float(burst)
        self.at = clock()
        self.dropped = 0

    def allow(self) -> bool:
        now = self.clock()
        self.tokens = min(self.burst, self.tokens + (now - self.at) * self.per_sec)
        self.at = now
        if self.tokens >= 1:
            self.tokens -= 1
            return True
        self.dropped += 1
        return False


class Agent:
    def __init__(self, cfg: Config, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.base = f"{cfg.prefix}/{cfg.agent_id}"
        self.seen = SeenIds(cfg.state_dir, cfg.seen_retain_sec)
        self.store = StateFile(cfg.state_dir)
        self._cond = threading.Condition()
        self._job: Job | None = None
        self._last_executed: Job | None = None
        self._lease: Lease | None = None
        self._lease_deadline: float | None = None  # our wall clock
        self._executed_lease = 0  # issued_at of the lease whose deadline we executed
        # this host already went down in this outage: no own countdown until a
        # lease says the grid is present (fsd is a level; no boot loop)
        self._episode_done = False
        self._rejects = RateLimit(REJECT_BURST, REJECT_PER_SEC, time.monotonic)
        self._oversize = RateLimit(3, 0.1, time.monotonic)
        self._stop = threading.Event()
        self._interface: dict[str, str] = {}
        self._restore()
        self.client = self._make_client()

    # -- persistence -------------------------------------------------------

    def _restore(self) -> None:
        data = self.store.load()
        now = self.clock()
        self._executed_lease = int(data.get("executed_lease", 0) or 0)
        self._episode_done = bool(data.get("episode_done", False))
        job_data = data.get("job")
        if isinstance(job_data, dict):
            try:
                job = Job.from_dict(job_data)
            except (KeyError, TypeError, ValueError) as err:
                LOG.error("pending job in %s unreadable (%s): dropped", self.store.path, err)
                job = None
            if job is not None and job.state == "executing":
                # a new run (the host came back, or the agent was restarted):
                # never repeated; answered like any other unknown id
                LOG.info("job %s was executing before this start: not repeated", job.id)
            elif job is not None and job.kind == "command":
                valid_until = job.issued_at + job.ttl_sec + self.cfg.skew_sec
                if now > valid_until:
                    LOG.warning("pending shutdown %s expired while stopped: dropped", job.id)
                else:
                    LOG.warning(
                        "resuming pending shutdown %s: executes in %.0fs",
                        job.id,
                        max(0.0, job.deadline - now),
                    )
                    self._job = job
        lease_obj = data.get("lease")
        if isinstance(lease_obj, dict):
            try:
                lease = check_lease(
                    lease_obj, self.cfg.agent_id, self.cfg.secret, self.cfg.skew_sec, now
                )
            except (ValueError, KeyError, TypeError) as err:
                LOG.info("stored lease not used at start: %s", err)
            else:
                self._lease = lease
                deadline = data.get("lease_deadline")
                if isinstance(deadline, (int, float)) and not self._episode_done:
                    self._lease_deadline = float(deadline)
                    LOG.warning(
                        "resuming the lease countdown: own shutdown in %.0fs",
                        max(0.0, deadline - now),
                    )

    def _persist(self) -> None:
        """Write the job and lease (call with the lock held, before acking)."""
        job = self._job
        if job is None and self._last_executed is not None:
            job = self._last_executed
        self.store.save(
            {
                "v": 1,
                "job": None if job is None or job.kind != "command" else job.to_dict(),
                "lease": None if self._lease is None else self._lease.obj,
                "lease_deadline": self._lease_deadline,
                "executed_lease": self._executed_lease,
                "episode_done": self._episode_done,
            }
        )

    # -- MQTT plumbing -----------------------------------------------------

    def _make_client(self) -> Any:
        client_id = f"ecoflow-agent-{self.cfg.agent_id}"
        if hasattr(mqtt, "CallbackAPIVersion"):  # paho-mqtt 2.x
            client = mqtt.Client(
                mqtt.CallbackAPIVersion.VERSION2, client_id=client_id, clean_session=False
            )
        else:  # paho-mqtt 1.x
            client = mqtt.Client(client_id=client_id, clean_session=False)
        if self.cfg.mqtt_username:
            client.username_pw_set(self.cfg.mqtt_username, self.cfg.mqtt_password or None)
        if self.cfg.mqtt_tls:
            client.tls_set(
                ca_certs=self.cfg.mqtt_ca_file or None,
                certfile=self.cfg.mqtt_cert_file or None,
                keyfile=self.cfg.mqtt_key_file or None,
            )
            if self.cfg.mqtt_tls_insecure:
                client.tls_insecure_set(True)
        client.reconnect_delay_set(min_delay=1, max_delay=60)
        client.on_connect = self._on_connect
        client.on_disconnect = self._on_disconnect
        client.on_message = self._on_message
        self._set_will(client)
        return client

    def _job_fields(self) -> dict[str, Any]:
        job = self._job
        fields: dict[str, Any] = {"job": "none"}
        if job is not None:
            fields["job"] = "executing" if job.state == "executing" else "pending"
            fields["job_id"] = job.id
        if self._lease_deadline is not None and self._lease is not None:
            by = self._lease.shutdown_by
            if by is not None:
                fields["lease_deadline"] = int(by)
        return fields

    def status(self, state: str) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "protocol": PROTOCOL_LEVEL,
            "agent": self.cfg.agent_id,
            "state": state,
            "hostname": sanitize(socket.gethostname()),
            "platform": "linux",
            "agent_version": AGENT_VERSION,
            "dry_run": self.cfg.dry_run,
            "shutdown_sec": self.cfg.shutdown_sec,
            "at": int(self.clock()),
        }
        if state == "online":
            msg.update(self._job_fields())
            msg.update(self._interface)
        if self.cfg.secret:
            msg["sig"] = sign(msg, self.cfg.secret)
        return msg

    def publish_status(self) -> None:
        self.client.publish(self.base + "/status", json.dumps(self.status("online")), 1, True)

    def _set_will(self, client: Any) -> None:
        client.will_set(
            self.base + "/status", json.dumps(self.status("offline")), qos=1, retain=True
        )

    def _on_connect(self, client: Any, userdata: Any, flags: Any, rc: Any, *rest: Any) -> None:
        if rc != 0:
            LOG.warning("broker refused the connection: %s", rc)
            return
        LOG.info("connected to %s:%s", self.cfg.mqtt_host, self.cfg.mqtt_port)
        sock = client.socket()
        if sock is not None:  # acks are tiny: do not let Nagle hold them back
            with contextlib.suppress(OSError, AttributeError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        client.subscribe([(self.base + "/cmd", 1), (self.base + "/power", 1)])
        self._interface = broker_interface(self.cfg.mqtt_host, self.cfg.mqtt_port)
        self.publish_status()

    def _on_disconnect(self, client: Any, userdata: Any, *rest: Any) -> None:
        if self._stop.is_set():
            return
        LOG.warning("disconnected from the broker; reconnecting")
        self._set_will(client)  # a fresh, signed will for the next CONNECT

    def ack(self, cid: str, status: str, detail: str = "", **extra: Any) -> None:
        msg: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "id": cid,
            "agent": self.cfg.agent_id,
            "status": status,
            "at": int(self.clock()),
            "detail": sanitize(detail),
        }
        msg.update(extra)
        if self.cfg.secret:
            msg["sig"] = sign(msg, self.cfg.secret)
        LOG.info("ack %s id=%s %s", status, cid or "-", detail)
        self.client.publish(self.base + "/ack", json.dumps(msg), qos=1)

    # -- messages ----------------------------------------------------------

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            payload = bytes(message.payload)
            if len(payload) > MAX_PAYLOAD:
                # dropped before parsing: no JSON parser ever sees it, no ack
                if self._oversize.allow():
                    LOG.warning("dropped a %d-byte payload on %s", len(payload), message.topic)
                return
            if message.topic.endswith("/power"):
                self.handle_lease(payload)
            else:
                self.handle(payload)
        except Exception:  # never let one message kill the network thread
            LOG.exception("unexpected error while handling a message")

    def _reject(self, cid: str, status: str, detail: str) -> None:
        if self._rejects.allow():
            self.ack(cid, status, detail)
        else:
            LOG.warning("rejection ack for %s not sent (rate limit): %s", cid or "-", detail)

    def handle(self, payload: bytes) -> None:
        now = self.clock()
        ack_id = ""
        try:
            obj, ack_id = parse_payload(payload)
            assert obj is not None
            with self._cond:
                job = self._job
                pending = frozenset(job.ids if job is not None and job.state != "executing" else ())
            command = check_command(obj, self.cfg.secret, self.cfg.skew_sec, now, pending)
            keep_until = command.issued_at + command.ttl_sec + self.cfg.skew_sec
            if not self.seen.check_and_add(command.id, keep_until, now):
                self._duplicate(command.id)
                return
        except Rejection as rej:
            LOG.warning("command %s: %s", ack_id or "-", rej.detail)
            self._reject(ack_id, rej.status, rej.detail)
            return
        LOG.info(
            "command %s: %s delay=%ss ttl=%ss reason=%r device=%r%s%s",
            command.id,
            command.action,
            command.delay_sec,
            command.ttl_sec,
            command.reason,
            command.device,
            f" ref={command.ref}" if command.ref else "",
            " (unsigned legacy)" if command.legacy else "",
        )
        if command.action == "ping":
            self.ack(command.id, "pong")
        elif command.action == "abort":
            self._abort(command)
        else:
            self._shutdown(command, now)

    def _duplicate(self, cid: str) -> None:
        LOG.warning("command %s: id seen before", cid)
        with self._cond:
            job, last = self._job, self._last_executed
            extra: dict[str, Any] = {"job": "none"}
            if job is not None and cid in job.ids:
                extra["job"] = "executing" if job.state == "executing" else "pending"
                extra["execute_at"] = job.commit_at
            elif last is not None and cid in last.ids:
                extra["job"] = "executing"
        if self._rejects.allow():
            self.ack(cid, "duplicate", "duplicate: id seen before", **extra)

    # -- leases ------------------------------------------------------------

    def handle_lease(self, payload: bytes) -> None:
        if not payload:
            LOG.info("lease cleared by Home Assistant")
            return
        now = self.clock()
        try:
            obj = json.loads(payload.decode("utf-8"))
            lease = check_lease(obj, self.cfg.agent_id, self.cfg.secret, self.cfg.skew_sec, now)
        except (UnicodeDecodeError, ValueError) as err:
            LOG.warning("lease ignored: %s", err)
            return
        with self._cond:
            current = self._lease
            if current is not None and (
                lease.issued_at < current.issued_at
                or (lease.issued_at == current.issued_at and lease.sig == current.sig)
            ):
                return  # an older lease, or the one we hold (retained copy on reconnect)
            self._lease = lease
            self._apply_lease(lease, now)
            self._persist()
            self._cond.notify_all()
        self.publish_status()

    def _apply_lease(self, lease: Lease, now: float) -> None:
        LOG.info(
            "lease: grid=%s fsd=%s shutdown_by=%s issued_at=%s expires_at=%s",
            lease.grid,
            lease.fsd,
            lease.shutdown_by,
            lease.issued_at,
            lease.expires_at,
        )
        if lease.grid == "present":
            # the outage is over (fsd may still be held for the restore
            # confirmation time): the own countdown stops, a later outage counts anew
            if self._lease_deadline is not None:
                LOG.warning("lease says the grid is present: own shutdown cancelled")
            self._lease_deadline = None
            self._episode_done = False
            return
        if not lease.fsd and lease.shutdown_by is None:
            if self._lease_deadline is not None:
                LOG.warning("lease without deadline (grid %s): own shutdown cancelled", lease.grid)
            self._lease_deadline = None
            return
        if self._episode_done:
            return  # this host already shut down in this outage
        # fsd: the shutdown is due, at its commit point (shutdown_by) or now
        span = 0 if lease.shutdown_by is None else lease.shutdown_by - lease.issued_at
        left = max(0.0, countdown(lease.issued_at, span, self.cfg.skew_sec, now))
        self._lease_deadline = now + left
        LOG.warning(
            "lease%s: own shutdown in %.0fs unless a newer lease arrives",
            " says fsd" if lease.fsd else "",
            left,
        )

    def _execute_now(self, kind: str, lease: Lease) -> None:
        """fsd or the lease deadline: a pending job commits now, or a new one starts."""
        job = self._job
        now = self.clock()
        if job is not None:
            if job.state in ("pending", "preparing"):
                job.deadline = min(job.deadline, now)
                self._cond.notify_all()
            return
        job = Job(f"{kind}-{lease.issued_at}", kind, int(now), now)
        self._job = job
        threading.Thread(target=self._run_job, args=(job,), daemon=True).start()

    # -- commands ----------------------------------------------------------

    def _abort(self, command: Command) -> None:
        with self._cond:
            job, last = self._job, self._last_executed
            ref = command.ref
            if job is not None and job.kind == "command" and (ref is None or ref in job.ids):
                target = ref or job.id
                if job.state == "executing" or self.clock() >= job.deadline:
                    self.ack(
                        command.id,
                        "rejected",
                        f"too_late: commit point passed at {job.commit_at}",
                        ref=target,
                    )
                    return
                job.state = "aborted"
                self._job = None
                self._persist()
                self._cond.notify_all()
                proc = job.proc
            elif last is not None and (ref is None or ref in last.ids):
                self.ack(
                    command.id,
                    "rejected",
                    f"too_late: commit point passed at {last.commit_at}",
                    ref=ref or last.id,
                )
                return
            else:
                detail = "nothing_pending" if ref is None else f"nothing_pending: {ref}"
                self.ack(command.id, "rejected", detail, **({"ref": ref} if ref else {}))
                return
        if proc is not None:
            LOG.warning("abort: stopping the running pre-shutdown command")
            stop_tree(proc, self.cfg.kill_grace_sec)
        LOG.warning("shutdown %s aborted by %s", job.id, command.id)
        self.ack(command.id, "aborted", "shutdown cancelled", ref=target)
        if job.started:
            threading.Thread(target=self._undo, args=(job,), daemon=True).start()

    def _undo(self, job: Job) -> None:
        for pre in reversed(job.started):
            if pre.undo is None:
                continue
            LOG.warning("abort: undoing pre-shutdown %r: %s", pre.name, pre.undo)
            ok, what = run_argv(pre.undo, pre.undo_timeout, grace=self.cfg.kill_grace_sec)
            if not ok:
                LOG.error("undo of %r failed: %s", pre.name, what)

    def _shutdown(self, command: Command, now: float) -> None:
        left = countdown(command.issued_at, command.delay_sec, self.cfg.skew_sec, now)
        late = left <= 0
        if late:
            # after its commit point: a short grace for an abort queued behind it
            left = self.cfg.late_grace_sec
        with self._cond:
            job = self._job
            if job is not None and job.state != "executing":
                # One shutdown is already under way: keep it, and move its
                # commit point earlier if the new command asks for that.
                job.ids.add(command.id)
                job.commit_at = min(job.commit_at, command.execute_at)
                job.deadline = min(job.deadline, now + left)
                self._persist()
                self._cond.notify_all()
                self.ack(command.id, "received")
                self.ack(
                    command.id,
                    "scheduled",
                    "merged into pending shutdown",
                    ref=job.id,
                    execute_at=job.commit_at,
                    execute_in=max(0, int(job.deadline - now + 0.999)),
                )
                return
            job = Job(
                command.id,
                "command",
                command.execute_at,
                now + left,
                issued_at=command.issued_at,
                ttl_sec=command.ttl_sec,
            )
            self._job = job
            self._persist()
        self.ack(command.id, "received", "late: commit point passed" if late else "")
        threading.Thread(target=self._run_job, args=(job,), daemon=True).start()
        self.publish_status()

    def _run_pre(self, job: Job) -> None:
        for pre in self.cfg.pre_shutdown:
            if job.state == "aborted":
                LOG.info("shutdown %s aborted: skipping remaining pre-shutdown commands", job.id)
                return
            if self.cfg.dry_run:
                LOG.info(
                    "DRY-RUN: would run pre-shutdown %r: %s (timeout %gs)",
                    pre.name,
                    " ".join(shlex.quote(a) for a in pre.argv),
                    pre.timeout,
                )
                continue
            LOG.info("running pre-shutdown %r: %s", pre.name, pre.argv)
            job.started.append(pre)
            ok, what = run_argv(
                pre.argv,
                pre.timeout,
                on_start=lambda p: setattr(job, "proc", p),
                grace=self.cfg.kill_grace_sec,
            )
            job.proc = None
            if job.state == "aborted":
                LOG.info("shutdown %s aborted during pre-shutdown %r", job.id, pre.name)
                return
            if not ok:
                LOG.error("pre-shutdown %r failed: %s", pre.name, what)
                job.failed.append(f"{pre.name}({what})")

    def _detail(self, job: Job) -> str:
        return "pre-shutdown failed: " + ", ".join(job.failed) if job.failed else ""

    def _run_job(self, job: Job) -> None:
        early = self.cfg.pre_shutdown_mode == "early" and job.kind == "command"
        if early:
            with self._cond:
                job.state = "preparing"
            self._run_pre(job)
            with self._cond:
                if job.state == "aborted":
                    return
                job.state = "pending"
        if job.kind == "command":
            self.ack(
                job.id,
                "scheduled",
                self._detail(job),
                execute_at=job.commit_at,
                execute_in=max(0, int(job.deadline - self.clock() + 0.999)),
            )
            LOG.info("shutdown %s: commit point in %.1fs", job.id, job.deadline - self.clock())
        with self._cond:
            while job.state == "pending":
                remaining = job.deadline - self.clock()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 1.0))
            if job.state != "pending":
                return
            job.state = "executing"
            self._persist()
        self.publish_status()
        if not early:
            self._run_pre(job)  # at the commit point: nothing irreversible before it
        if job.kind == "command":
            self.ack(job.id, "executing", self._detail(job))
        else:
            LOG.warning("self-decided shutdown (%s), no command from Home Assistant", job.kind)
        with self._cond:
            job.state = "done"
            if self._job is job:
                self._job = None
            self._last_executed = job
            # one shutdown per outage: the lease countdown does not repeat it
            self._episode_done = True
            self._lease_deadline = None
            self._persist()
        self.publish_status()
        argv = self.cfg.shutdown_command
        if self.cfg.dry_run:
            LOG.warning("DRY-RUN: would run shutdown command: %s", " ".join(argv))
            return
        LOG.warning("shutting down now: %s", argv)
        ok, what = run_argv(argv, 120, grace=self.cfg.kill_grace_sec)
        if not ok:
            LOG.error("shutdown command failed: %s", what)
            if job.kind == "command":
                self.ack(job.id, "rejected", "shutdown_command_failed: " + what)

    def _lease_watch(self) -> None:
        """The lease countdown: our own shutdown when no newer lease came in time."""
        with self._cond:
            while not self._stop.is_set():
                deadline = self._lease_deadline
                if deadline is not None and self.clock() >= deadline:
                    lease = self._lease
                    self._lease_deadline = None
                    if lease is not None:
                        self._executed_lease = lease.issued_at
                        self._episode_done = True
                        LOG.warning(
                            "no newer lease by shutdown_by %s (fsd %s): shutting down on our own",
                            lease.shutdown_by,
                            lease.fsd,
                        )
                        self._execute_now("fsd" if lease.fsd else "lease", lease)
                        self._persist()
                    continue
                wait = 1.0 if deadline is None else min(1.0, max(0.0, deadline - self.clock()))
                self._cond.wait(max(wait, 0.01))

    # -- life cycle --------------------------------------------------------

    def run(self) -> int:
        LOG.info(
            "ecoflow agent %s: id=%s broker=%s:%s dry_run=%s signed=%s pre-shutdown=%d (%s)",
            AGENT_VERSION,
            self.cfg.agent_id,
            self.cfg.mqtt_host,
            self.cfg.mqtt_port,
            self.cfg.dry_run,
            bool(self.cfg.secret),
            len(self.cfg.pre_shutdown),
            self.cfg.pre_shutdown_mode,
        )
        if not self.cfg.secret:
            LOG.warning("no secret configured: commands are NOT authenticated")

        def _stop(signum: int, frame: Any) -> None:
            self._stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        with self._cond:
            job = self._job
        if job is not None:  # resumed from disk
            threading.Thread(target=self._run_job, args=(job,), daemon=True).start()
        threading.Thread(target=self._lease_watch, daemon=True).start()
        self.client.connect_async(self.cfg.mqtt_host, self.cfg.mqtt_port, self.cfg.mqtt_keepalive)
        self.client.loop_start()
        while not self._stop.wait(1.0):
            pass
        LOG.info("stopping")
        with self._cond:
            self._cond.notify_all()
            proc = self._job.proc if self._job is not None else None
        if proc is not None:
            stop_tree(proc, self.cfg.kill_grace_sec)
        info = self.client.publish(
            self.base + "/status", json.dumps(self.status("offline")), qos=1, retain=True
        )
        with contextlib.suppress(RuntimeError, ValueError):
            info.wait_for_publish(2.0)
        self.client.disconnect()
        self.client.loop_stop()
        return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description="EcoFlow Power Management host agent")
    parser.add_argument("--config", "-c", default=None, help="config file (INI or JSON)")
    parser.add_argument("--dry-run", action="store_true", help="log instead of shutting down")
    parser.add_argument("--check-config", action="store_true", help="validate config and exit")
    args = parser.parse_args(argv)
    environ = dict(os.environ)
    level = environ.get(ENV_PREFIX + "LOG_LEVEL", "INFO").upper()
    logging.basicConfig(
        level=getattr(logging, level, logging.INFO),
        format="%(asctime)s %(levelname)s %(message)s",
        stream=sys.stderr,
    )
    path = args.config
    if path is None and os.path.exists(DEFAULT_CONFIG):
        path = DEFAULT_CONFIG
    try:
        cfg = load_config(path, environ)
    except (ConfigError, OSError) as err:
        LOG.error("configuration error: %s", err)
        return 2
    if args.dry_run:
        cfg.dry_run = True
    if args.check_config:
        print(f"config OK: agent_id={cfg.agent_id} dry_run={cfg.dry_run}")
        return 0
    if mqtt is None:
        LOG.error("paho-mqtt is not installed (pip install paho-mqtt, or apt python3-paho-mqtt)")
        return 2
    return Agent(cfg).run()


if __name__ == "__main__":
    sys.exit(main())
