"""One mosquitto process on a loopback port, owned by whoever started it.

Used by ``python -m simulator --spawn-broker`` (a private broker whose password
the stand-in can rotate for real: the broker restarts and the old password
stops working, as when the cloud's credentials expire) and by the tests, which
each start their own broker so they never depend on one left running.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path
import shutil
import socket
import subprocess
import tempfile
import time


def mosquitto_binary() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("mosquitto is not installed (scripts/setup installs it)")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return int(sock.getsockname()[1])


class ManagedBroker:
    """mosquitto on ``host:port``; anonymous, or with a password file when given users."""

    def __init__(
        self, host: str = "127.0.0.1", port: int | None = None, users: dict[str, str] | None = None
    ) -> None:
        self.host = host
        self.port = port or free_port(host)
        self._users = dict(users or {})
        # World-readable: started as root, mosquitto drops to its own user and
        # exits at once when it cannot read its files.
        self._dir = Path(tempfile.mkdtemp(prefix="ecoflow-mosquitto-"))
        self._dir.chmod(0o755)
        self._process: subprocess.Popen[bytes] | None = None

    @property
    def log_path(self) -> Path:
        return self._dir / "mosquitto.log"

    def _write_config(self) -> Path:
        lines = [
            f"listener {self.port} {self.host}",
            "persistence false",
            f"log_dest file {self.log_path}",
            "log_type all",
            "max_queued_messages 10000",
        ]
        if self._users:
            passwd = self._dir / "passwd"
            passwd.write_text("".join(f"{u}:{p}\n" for u, p in self._users.items()))
            subprocess.run(  # noqa: S603 - fixed command line
                ["mosquitto_passwd", "-U", str(passwd)],  # noqa: S607 - a tool on PATH by design
                check=True,
                capture_output=True,
            )
            passwd.chmod(0o644)
            lines += ["allow_anonymous false", f"password_file {passwd}"]
        else:
            lines.append("allow_anonymous true")
        config = self._dir / "mosquitto.conf"
        config.write_text("\n".join(lines) + "\n")
        config.chmod(0o644)
        self.log_path.touch()
        self.log_path.chmod(0o666)
        return config

    def set_users(self, users: dict[str, str]) -> None:
        """Replace the accepted users; takes effect at the next start or restart."""
        self._users = dict(users)

    def start(self, timeout: float = 10.0) -> None:
        config = self._write_config()
        self._process = subprocess.Popen(  # noqa: S603 - fixed command line
            [mosquitto_binary(), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"mosquitto exited at once: {err} {self.log_path.read_text()}")
            with (
                contextlib.suppress(OSError),
                socket.create_connection((self.host, self.port), 0.2),
            ):
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
