"""A real mosquitto broker on a free loopback port, owned by one test.

Tests that cross MQTT start their own broker so they never depend on one left
running. Run as root (as CI is), mosquitto drops to its own user, so its files
live in a world-readable temporary folder.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib
import os
from pathlib import Path
import shutil
import socket
import subprocess
import tempfile
import time


def free_port() -> int:
    """Return a TCP port on 127.0.0.1 that nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def mosquitto_binary() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("mosquitto is not installed: run scripts/setup")


class MosquittoBroker:
    """Start, stop and restart one mosquitto; optionally with a password file."""

    def __init__(self, users: dict[str, str] | None = None, port: int | None = None) -> None:
        self.host = "127.0.0.1"
        self.port = port or free_port()
        self._dir = Path(tempfile.mkdtemp(prefix="ecoflow-mosquitto-"))
        self._dir.chmod(0o755)
        self._users = dict(users or {})
        self._process: subprocess.Popen[bytes] | None = None
        self._write_config()

    @property
    def log_path(self) -> Path:
        return self._dir / "mosquitto.log"

    def _write_config(self) -> None:
        lines = [
            f"listener {self.port} 127.0.0.1",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type all",
            "max_queued_messages 10000",
        ]
        if self._users:
            password_file = self._dir / "passwd"
            password_file.write_text("".join(f"{u}:{p}\n" for u, p in self._users.items()))
            subprocess.run(
                ["mosquitto_passwd", "-U", str(password_file)], check=True, capture_output=True
            )
            password_file.chmod(0o644)
            lines += ["allow_anonymous false", f"password_file {password_file}"]
        else:
            lines.append("allow_anonymous true")
        config = self._dir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o644)
        self.log_path.touch()
        self.log_path.chmod(0o666)

    def set_users(self, users: dict[str, str]) -> None:
        """Replace the accepted users; takes effect at the next start/restart."""
        self._users = dict(users)
        self._write_config()

    def start(self, timeout: float = 10.0) -> None:
        self._process = subprocess.Popen(  # noqa: S603 - our own fixed command line
            [mosquitto_binary(), "-c", str(self._dir / "mosquitto.conf")],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"mosquitto exited at once: {err} {self.log_path.read_text()}")
            with contextlib.suppress(OSError), socket.create_connection((self.host, self.port), 0.2):
                return
            time.sleep(0.05)
        raise RuntimeError(f"mosquitto did not listen on {self.port} within {timeout}s")

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(5)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(5)
        if self._process.stderr:
            self._process.stderr.close()
        self._process = None

    def restart(self) -> None:
        self.stop()
        self.start()

    def cleanup(self) -> None:
        self.stop()
        shutil.rmtree(self._dir, ignore_errors=True)


@contextlib.contextmanager
def running_broker(users: dict[str, str] | None = None) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(users)
    broker.start()
    try:
        yield broker
    finally:
        broker.cleanup()
