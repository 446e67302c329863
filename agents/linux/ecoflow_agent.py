#!/usr/bin/env python3
"""EcoFlow Power Management host agent for Linux (command protocol v1).

Listens on ``{prefix}/{agent_id}/cmd`` for signed commands from the Home
Assistant integration and shuts this host down cleanly when told to.

Safety rules this file keeps:

* No text from a message ever reaches a shell or an argv. Pre-shutdown and
  shutdown commands come only from the agent's own config file, which must not
  be writable by group or others.
* Every command is checked (JSON shape, version, HMAC signature, age, id never
  seen before) before anything happens; every rejection is acknowledged with
  the reason.
* Seen ids live on disk, so a restart does not replay a command.

Python 3.9+ and paho-mqtt (1.6 or 2.x) are the only requirements.
"""

from __future__ import annotations

import argparse
from collections.abc import Callable
import configparser
import contextlib
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

AGENT_VERSION = "1.0.0"
PROTOCOL_VERSION = 1
ACTIONS = ("shutdown", "abort", "ping")
MAX_PAYLOAD = 16384
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
    ) -> None:
        self.id = cid
        self.action = action
        self.delay_sec = delay_sec
        self.ttl_sec = ttl_sec
        self.issued_at = issued_at
        self.reason = reason
        self.device = device
        self.legacy = legacy

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


def check_command(obj: dict[str, Any], secret: str, skew: int, now: float) -> Command:
    """Shape, version, signature and age checks (the id check needs the store).

    Times compare in whole epoch seconds, as the protocol defines them.
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
    if now > issued_at + ttl + skew:
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
    def __init__(self, name: str, argv: list[str], timeout: float) -> None:
        self.name = name
        self.argv = argv
        self.timeout = timeout


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
                cfg.pre_shutdown.append(
                    PreCommand(
                        str(item.get("name", f"pre{index + 1}")),
                        parse_argv(item.get("command"), f"pre_shutdown[{index}]"),
                        float(item.get("timeout_sec", 60)),
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
            try:
                timeout = float(sec.get("timeout_sec", "60"))
            except ValueError:
                raise ConfigError(f"{path}: [{section}] bad timeout_sec") from None
            cfg.pre_shutdown.append(PreCommand(name, parse_argv(sec["command"], section), timeout))
        else:
            raise ConfigError(f"{path}: unknown section [{section}]")


# --------------------------------------------------------------------------
# Running commands from the config (never from a message)
# --------------------------------------------------------------------------


def run_argv(
    argv: list[str], timeout: float, on_start: Callable[[Any], None] | None = None
) -> tuple[bool, str]:
    """Run ``argv`` without a shell; return (ok, short description)."""
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
        try:
            os.killpg(proc.pid, signal.SIGKILL)
        except OSError:
            proc.kill()
        proc.communicate()
        return False, f"timeout after {timeout:g}s"
    text = out.decode("utf-8", "replace").strip()
    if text:
        LOG.info("  output: %s", text[-500:])
    if proc.returncode != 0:
        return False, f"exit {proc.returncode}"
    return True, "ok"


# --------------------------------------------------------------------------
# The agent
# --------------------------------------------------------------------------


class Job:
    """One pending shutdown."""

    def __init__(self, command: Command) -> None:
        self.command = command
        self.execute_at = command.execute_at
        self.state = "preparing"  # preparing, waiting, executing, aborted
        self.failed: list[str] = []
        self.proc: Any = None  # the pre-shutdown command running now


class Agent:
    def __init__(self, cfg: Config, clock: Callable[[], float] = time.time) -> None:
        self.cfg = cfg
        self.clock = clock
        self.base = f"{cfg.prefix}/{cfg.agent_id}"
        self.seen = SeenIds(cfg.state_dir, cfg.seen_retain_sec)
        self._cond = threading.Condition()
        self._job: Job | None = None
        self._last_executed: Job | None = None
        self._stop = threading.Event()
        self.client = self._make_client()

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

    def status(self, state: str) -> dict[str, Any]:
        msg: dict[str, Any] = {
            "v": PROTOCOL_VERSION,
            "agent": self.cfg.agent_id,
            "state": state,
            "hostname": sanitize(socket.gethostname()),
            "platform": "linux",
            "agent_version": AGENT_VERSION,
            "dry_run": self.cfg.dry_run,
            "shutdown_sec": self.cfg.shutdown_sec,
            "at": int(self.clock()),
        }
        if self.cfg.secret:
            msg["sig"] = sign(msg, self.cfg.secret)
        return msg

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
        client.subscribe(self.base + "/cmd", qos=1)
        client.publish(self.base + "/status", json.dumps(self.status("online")), qos=1, retain=True)

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

    # -- command handling -------------------------------------------------

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            self.handle(bytes(message.payload))
        except Exception:  # never let one message kill the network thread
            LOG.exception("unexpected error while handling a command")

    def handle(self, payload: bytes) -> None:
        now = self.clock()
        ack_id = ""
        try:
            obj, ack_id = parse_payload(payload)
            assert obj is not None
            command = check_command(obj, self.cfg.secret, self.cfg.skew_sec, now)
            keep_until = command.issued_at + command.ttl_sec + self.cfg.skew_sec
            if not self.seen.check_and_add(command.id, keep_until, now):
                raise Rejection("duplicate", "duplicate: id seen before")
        except Rejection as rej:
            LOG.warning("command %s: %s", ack_id or "-", rej.detail)
            self.ack(ack_id, rej.status, rej.detail)
            return
        LOG.info(
            "command %s: %s delay=%ss ttl=%ss reason=%r device=%r%s",
            command.id,
            command.action,
            command.delay_sec,
            command.ttl_sec,
            command.reason,
            command.device,
            " (unsigned legacy)" if command.legacy else "",
        )
        if command.action == "ping":
            self.ack(command.id, "pong")
        elif command.action == "abort":
            self._abort(command)
        else:
            self._shutdown(command)

    def _abort(self, command: Command) -> None:
        with self._cond:
            job = self._job
            if job is None:
                last = self._last_executed
                if last is not None:
                    self.ack(
                        command.id,
                        "rejected",
                        f"too_late: commit point passed at {last.execute_at}",
                        ref=last.command.id,
                    )
                else:
                    self.ack(command.id, "rejected", "nothing_pending")
                return
            if job.state == "executing" or self.clock() >= job.execute_at:
                self.ack(
                    command.id,
                    "rejected",
                    f"too_late: commit point passed at {job.execute_at}",
                    ref=job.command.id,
                )
                return
            job.state = "aborted"
            self._job = None
            self._cond.notify_all()
            if job.proc is not None and job.proc.poll() is None:
                LOG.warning("abort: stopping the running pre-shutdown command")
                with contextlib.suppress(OSError):
                    os.killpg(job.proc.pid, signal.SIGKILL)
        LOG.warning("shutdown %s aborted by %s", job.command.id, command.id)
        self.ack(command.id, "aborted", "shutdown cancelled", ref=job.command.id)

    def _shutdown(self, command: Command) -> None:
        with self._cond:
            job = self._job
            if job is not None:
                # One shutdown is already under way: keep it, and move its
                # commit point earlier if the new command asks for that.
                self.ack(command.id, "received")
                job.execute_at = min(job.execute_at, command.execute_at)
                self._cond.notify_all()
                self.ack(
                    command.id,
                    "scheduled",
                    "merged into pending shutdown",
                    ref=job.command.id,
                    execute_at=job.execute_at,
                )
                return
            job = Job(command)
            self._job = job
        self.ack(command.id, "received")
        thread = threading.Thread(target=self._run_job, args=(job,), daemon=True)
        thread.start()

    def _run_job(self, job: Job) -> None:
        cid = job.command.id
        for pre in self.cfg.pre_shutdown:
            if job.state == "aborted":
                LOG.info("shutdown %s aborted: skipping remaining pre-shutdown commands", cid)
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
            ok, what = run_argv(pre.argv, pre.timeout, on_start=lambda p: setattr(job, "proc", p))
            job.proc = None
            if job.state == "aborted":
                LOG.info("shutdown %s aborted during pre-shutdown %r", cid, pre.name)
                return
            if not ok:
                LOG.error("pre-shutdown %r failed: %s", pre.name, what)
                job.failed.append(f"{pre.name}({what})")
        failed = ", ".join(job.failed)
        with self._cond:
            if job.state == "aborted":
                return
            job.state = "waiting"
        self.ack(
            cid,
            "scheduled",
            "pre-shutdown failed: " + failed if failed else "",
            execute_at=job.execute_at,
        )
        LOG.info("shutdown %s scheduled at %s", cid, job.execute_at)
        with self._cond:
            while job.state == "waiting":
                remaining = job.execute_at - self.clock()
                if remaining <= 0:
                    break
                self._cond.wait(min(remaining, 1.0))
            if job.state != "waiting":
                return
            job.state = "executing"
            self._job = None
            self._last_executed = job
        self.ack(
            cid,
            "executing",
            "pre-shutdown failed: " + failed if failed else "",
        )
        argv = self.cfg.shutdown_command
        if self.cfg.dry_run:
            LOG.warning("DRY-RUN: would run shutdown command: %s", " ".join(argv))
            return
        LOG.warning("shutting down now: %s", argv)
        ok, what = run_argv(argv, 120)
        if not ok:
            LOG.error("shutdown command failed: %s", what)
            self.ack(cid, "rejected", "shutdown_command_failed: " + what)

    # -- life cycle --------------------------------------------------------

    def run(self) -> int:
        LOG.info(
            "ecoflow agent %s: id=%s broker=%s:%s dry_run=%s signed=%s pre-shutdown=%d",
            AGENT_VERSION,
            self.cfg.agent_id,
            self.cfg.mqtt_host,
            self.cfg.mqtt_port,
            self.cfg.dry_run,
            bool(self.cfg.secret),
            len(self.cfg.pre_shutdown),
        )
        if not self.cfg.secret:
            LOG.warning("no secret configured: commands are NOT authenticated")

        def _stop(signum: int, frame: Any) -> None:
            self._stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        self.client.connect_async(self.cfg.mqtt_host, self.cfg.mqtt_port, self.cfg.mqtt_keepalive)
        self.client.loop_start()
        while not self._stop.wait(1.0):
            pass
        LOG.info("stopping")
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
