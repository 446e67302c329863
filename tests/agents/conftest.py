"""Run the host agents as real processes against a real mosquitto.

`agent_kind` parametrizes every test over the Linux (Python) agent and the
macOS (bash) agent, so both run the same cases. Commands are built and signed
here with `hmac`; acks and status messages are collected by a paho client.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
import contextlib
from dataclasses import dataclass, field
import hashlib
import hmac
import json
import os
from pathlib import Path
import signal
import subprocess
import sys
import threading
import time
from typing import Any
import uuid

import paho.mqtt.client as mqtt
import pytest

from tests.helpers.mosquitto import MosquittoBroker

ROOT = Path(__file__).resolve().parents[2]
LINUX_AGENT = ROOT / "agents" / "linux" / "ecoflow_agent.py"
MACOS_AGENT = ROOT / "agents" / "macos" / "ecoflow-agent.sh"
SECRET = "s3cr3t-agent-key-for-tests-only"
PREFIX = "power-manager"
DRY_RUN_SHUTDOWN_LINE = "DRY-RUN: would run shutdown command"


def canonical(obj: dict[str, Any]) -> str:
    body = {k: v for k, v in obj.items() if k != "sig"}
    return json.dumps(body, sort_keys=True, separators=(",", ":"), ensure_ascii=True)


def sign(obj: dict[str, Any], secret: str = SECRET) -> str:
    return hmac.new(secret.encode(), canonical(obj).encode(), hashlib.sha256).hexdigest()


def command(
    action: str = "ping",
    *,
    delay_sec: int = 0,
    ttl_sec: int = 300,
    issued_at: int | None = None,
    cid: str | None = None,
    secret: str | None = SECRET,
    **extra: Any,
) -> dict[str, Any]:
    """A v1 command, signed with `secret` (unsigned when secret is None)."""
    msg: dict[str, Any] = {
        "v": 1,
        "id": str(uuid.uuid4()) if cid is None else cid,
        "action": action,
        "delay_sec": delay_sec,
        "ttl_sec": ttl_sec,
        "issued_at": int(time.time()) if issued_at is None else issued_at,
        "reason": "grid lost and soc_min 19.5 <= 20",
        "device": "R651ZAB5XXXX0001",
    }
    msg.update(extra)
    if secret is not None:
        msg["sig"] = sign(msg, secret)
    return msg


def lease(
    *,
    agent_id: str,
    grid: str = "on_battery",
    shutdown_by: int | None = None,
    fsd: bool = False,
    issued_at: int | None = None,
    expires_at: int | None = None,
    secret: str | None = SECRET,
    **extra: Any,
) -> dict[str, Any]:
    """A protocol-2 power lease, signed with `secret` (unsigned when None)."""
    issued = int(time.time()) if issued_at is None else issued_at
    msg: dict[str, Any] = {
        "v": 2,
        "type": "lease",
        "agent": agent_id,
        "device": "R651ZAB5XXXX0001",
        "grid": grid,
        "fsd": fsd,
        "issued_at": issued,
        "expires_at": expires_at if expires_at is not None else issued + 90,
        "soc_min": "19.5",
    }
    if shutdown_by is not None:
        msg["shutdown_by"] = shutdown_by
    msg.update(extra)
    if secret is not None:
        msg["sig"] = sign(msg, secret)
    return msg


def signature_ok(msg: dict[str, Any], secret: str = SECRET) -> bool:
    return isinstance(msg.get("sig"), str) and hmac.compare_digest(sign(msg, secret), msg["sig"])


@dataclass
class Received:
    topic: str
    payload: dict[str, Any]
    retained: bool


@dataclass
class Collector:
    """Everything the agent publishes on its ack and status topics."""

    messages: list[Received] = field(default_factory=list)
    lock: threading.Lock = field(default_factory=threading.Lock)

    def add(self, item: Received) -> None:
        with self.lock:
            self.messages.append(item)

    def on(self, suffix: str) -> list[Received]:
        with self.lock:
            return [m for m in self.messages if m.topic.endswith("/" + suffix)]

    def acks(self, cid: str | None = None) -> list[dict[str, Any]]:
        return [m.payload for m in self.on("ack") if cid is None or m.payload.get("id") == cid]

    def wait(
        self, predicate: Callable[[], Any], timeout: float = 8.0, what: str = "condition"
    ) -> Any:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            result = predicate()
            if result:
                return result
            time.sleep(0.02)
        raise AssertionError(f"timed out waiting for {what}; got {self.messages!r}")

    def wait_ack(self, cid: str, status: str, timeout: float = 8.0) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for ack in self.acks(cid):
                if ack.get("status") == status:
                    return ack
            return None

        return self.wait(find, timeout, f"ack {status} for {cid!r}")

    def wait_status(self, state: str, after: int = 0, timeout: float = 8.0) -> dict[str, Any]:
        def find() -> dict[str, Any] | None:
            for m in self.on("status")[after:]:
                if m.payload.get("state") == state:
                    return m.payload
            return None

        return self.wait(find, timeout, f"status {state}")


class AgentProcess:
    """One agent (linux or macos flavour) as a real process."""

    def __init__(self, kind: str, broker: MosquittoBroker, workdir: Path, agent_id: str) -> None:
        self.kind = kind
        self.broker = broker
        self.workdir = workdir
        self.agent_id = agent_id
        self.state_dir = workdir / "state"
        self.config_path = workdir / ("agent.conf" if kind == "linux" else "agent.env")
        self.log_path = workdir / "agent.log"
        self.proc: subprocess.Popen[bytes] | None = None
        self._log = None

    def write_config(
        self,
        *,
        secret: str | None = SECRET,
        dry_run: bool = True,
        shutdown_argv: list[str] | None = None,
        pre: list[tuple[Any, ...]] | None = None,
        mode: int = 0o600,
        allow_unauthenticated: bool | None = None,
        extra: dict[str, Any] | None = None,
    ) -> None:
        """`pre`: (name, argv, timeout[, undo argv]); `extra`: more keys, by Linux name."""
        shutdown_argv = shutdown_argv or ["/bin/false", "never-run-in-dry-run"]
        pre = pre if pre is not None else [("sync", ["/bin/sync"], 5)]
        if allow_unauthenticated is None:
            allow_unauthenticated = not secret
        extra = dict(extra or {})
        if allow_unauthenticated:
            extra["allow_unauthenticated"] = True
        if self.kind == "linux":
            lines = [
                "[mqtt]",
                f"host = {self.broker.host}",
                f"port = {self.broker.port}",
                "[agent]",
                f"agent_id = {self.agent_id}",
                f"secret = {secret or ''}",
                f"dry_run = {'true' if dry_run else 'false'}",
                f"state_dir = {self.state_dir}",
                "skew_sec = 60",
                "shutdown_sec = 45",
                f"shutdown_command = {json.dumps(shutdown_argv)}",
            ]
            for key, value in extra.items():
                text = str(value).lower() if isinstance(value, bool) else str(value)
                lines.append(f"{key} = {text}")
            for name, argv, timeout, *undo in pre:
                lines += [f"[pre_shutdown:{name}]", f"command = {json.dumps(argv)}"]
                lines.append(f"timeout_sec = {timeout}")
                if undo:
                    lines.append(f"undo = {json.dumps(undo[0])}")
        else:
            lines = [
                "# test config",
                f"MQTT_HOST={self.broker.host}",
                f"MQTT_PORT={self.broker.port}",
                f"AGENT_ID={self.agent_id}",
                f'SECRET="{secret or ""}"',
                f"DRY_RUN={'1' if dry_run else '0'}",
                f"STATE_DIR={self.state_dir}",
                "SKEW_SEC=60",
                "SHUTDOWN_SEC=45",
                "HEARTBEAT_SEC=2",
                f"SHUTDOWN_COMMAND={' '.join(shutdown_argv)}",
            ]
            for key, value in extra.items():
                text = ("1" if value else "0") if isinstance(value, bool) else str(value)
                lines.append(f"{key.upper()}={text}")
            for index, (_name, argv, timeout, *undo) in enumerate(pre, start=1):
                lines += [f"PRE_SHUTDOWN_{index}={' '.join(argv)}"]
                lines.append(f"PRE_SHUTDOWN_{index}_TIMEOUT={timeout}")
                if undo:
                    lines.append(f"PRE_SHUTDOWN_{index}_UNDO={' '.join(undo[0])}")
        self.config_path.write_text("\n".join(lines) + "\n")
        self.config_path.chmod(mode)

    def argv(self) -> list[str]:
        if self.kind == "linux":
            return [sys.executable, str(LINUX_AGENT), "--config", str(self.config_path)]
        return ["bash", str(MACOS_AGENT), "--config", str(self.config_path)]

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("ECOFLOW_AGENT_")}
        env["TMPDIR"] = str(self.workdir)
        return env

    def start(self) -> None:
        self._log = self.log_path.open("ab")
        self.proc = subprocess.Popen(
            self.argv(),
            stdin=subprocess.DEVNULL,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=self.env(),
            start_new_session=True,
        )

    def run_to_exit(self, timeout: float = 10.0) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            self.argv(),
            check=False,
            capture_output=True,
            text=True,
            env=self.env(),
            timeout=timeout,
        )

    def _signal_group(self, sig: int) -> None:
        if self.proc is not None and self.proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.proc.pid, sig)

    def stop(self) -> None:
        """Graceful stop (SIGTERM to the process group, as systemd/launchd do)."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGTERM)
        try:
            self.proc.wait(10)
        except subprocess.TimeoutExpired:
            self._signal_group(signal.SIGKILL)
            self.proc.wait(5)
        self._close()

    def kill(self) -> None:
        """Hard kill of the whole process group: no goodbye, the will must fire."""
        if self.proc is None:
            return
        self._signal_group(signal.SIGKILL)
        self.proc.wait(5)
        self._close()

    def _close(self) -> None:
        self.proc = None
        if self._log is not None:
            self._log.close()
            self._log = None

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""


class Harness:
    """Broker + paho collector/sender + one agent."""

    def __init__(
        self,
        kind: str,
        broker: Any,
        workdir: Path,
        *,
        agent_id: str | None = None,
        username: str | None = None,
        password: str | None = None,
    ) -> None:
        self.kind = kind
        self.broker = broker
        self.agent_id = agent_id or f"test-{kind}"
        self.base = f"{PREFIX}/{self.agent_id}"
        self.collector = Collector()
        self.agent = AgentProcess(kind, broker, workdir, self.agent_id)
        self.client = mqtt.Client(
            mqtt.CallbackAPIVersion.VERSION2, client_id=f"pytest-{uuid.uuid4().hex[:8]}"
        )
        self.client.on_message = self._on_message
        self.client.reconnect_delay_set(0.1, 0.5)
        self._subscribed = threading.Event()
        self.client.on_subscribe = lambda *args: self._subscribed.set()
        self.client.on_connect = lambda client, *args: client.subscribe(
            [(self.base + "/ack", 1), (self.base + "/status", 1)]
        )
        if username:
            self.client.username_pw_set(username, password)
        self.client.connect(broker.host, broker.port, 30)
        self.client.loop_start()
        assert self._subscribed.wait(5), "collector could not subscribe"

    def _on_message(self, client: Any, userdata: Any, message: Any) -> None:
        try:
            payload = json.loads(message.payload)
        except ValueError:
            payload = {"_raw": message.payload.decode(errors="replace")}
        self.collector.add(Received(message.topic, payload, bool(message.retain)))

    def start_agent(self, **config: Any) -> dict[str, Any]:
        """Write the config, start the agent and wait for its online status."""
        before = len(self.collector.on("status"))
        self.agent.write_config(**config)
        self.agent.start()
        try:
            return self.collector.wait_status("online", after=before, timeout=15)
        except AssertionError:
            raise AssertionError(f"agent did not come online:\n{self.agent.log()}") from None

    def send(self, msg: dict[str, Any] | bytes | str) -> None:
        if isinstance(msg, dict):
            payload: bytes = json.dumps(msg).encode()
        elif isinstance(msg, str):
            payload = msg.encode()
        else:
            payload = msg
        info = self.client.publish(self.base + "/cmd", payload, qos=1)
        info.wait_for_publish(5)

    def publish_lease(self, lease: dict[str, Any] | bytes, retain: bool = True) -> None:
        payload = json.dumps(lease).encode() if isinstance(lease, dict) else lease
        info = self.client.publish(self.base + "/power", payload, qos=1, retain=retain)
        info.wait_for_publish(5)

    def clear_lease(self) -> None:
        self.publish_lease(b"", retain=True)

    def close(self) -> None:
        try:
            self.clear_lease()
            self.agent.stop()
        finally:
            self.client.disconnect()
            self.client.loop_stop()


def read_retained(broker: MosquittoBroker, topic: str, timeout: float = 5.0) -> dict | None:
    """The retained message on `topic`, as a fresh subscriber sees it."""
    got: list[dict[str, Any]] = []
    done = threading.Event()

    def on_message(client: Any, userdata: Any, message: Any) -> None:
        if message.retain:
            got.append(json.loads(message.payload))
            done.set()

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="pytest-late-subscriber")
    client.on_message = on_message
    client.on_connect = lambda c, *args: c.subscribe(topic, 1)
    client.connect(broker.host, broker.port, 30)
    client.loop_start()
    try:
        done.wait(timeout)
    finally:
        client.disconnect()
        client.loop_stop()
    return got[0] if got else None


@pytest.fixture(params=["linux", "macos"])
def agent_kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def harness(
    socket_enabled: None, mosquitto: MosquittoBroker, agent_kind: str, tmp_path: Path
) -> Iterator[Harness]:
    h = Harness(agent_kind, mosquitto, tmp_path)
    try:
        yield h
    finally:
        h.close()
