"""A private mosquitto for ``python -m simulator --spawn-broker``.

With its own password file the stand-in can rotate the MQTT password for
real: the broker restarts and the old password stops working, as when the
cloud's credentials expire.
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


def _mosquitto() -> str:
    for candidate in (shutil.which("mosquitto"), "/usr/sbin/mosquitto"):
        if candidate and os.access(candidate, os.X_OK):
            return candidate
    raise RuntimeError("mosquitto is not installed (scripts/setup installs it)")


class ManagedBroker:
    """One mosquitto process with a password file, on ``host:port``."""

    def __init__(self, host: str, port: int, users: dict[str, str]) -> None:
        self.host = host
        self.port = port
        self._users = dict(users)
        # World-readable: started as root, mosquitto drops to its own user.
        self._dir = Path(tempfile.mkdtemp(prefix="ecoflow-sim-broker-"))
        self._dir.chmod(0o755)
        self._process: subprocess.Popen[bytes] | None = None

    def _write_config(self) -> Path:
        passwd = self._dir / "passwd"
        passwd.write_text("".join(f"{u}:{p}\n" for u, p in self._users.items()))
        subprocess.run(  # noqa: S603 - fixed command line
            ["mosquitto_passwd", "-U", str(passwd)],  # noqa: S607 - a tool on PATH by design
            check=True,
            capture_output=True,
        )
        passwd.chmod(0o644)
        config = self._dir / "mosquitto.conf"
        config.write_text(
            f"listener {self.port} {self.host}\n"
            "persistence false\n"
            "allow_anonymous false\n"
            f"password_file {passwd}\n"
        )
        config.chmod(0o644)
        return config

    def set_users(self, users: dict[str, str]) -> None:
        self._users = dict(users)

    def start(self, timeout: float = 10.0) -> None:
        config = self._write_config()
        self._process = subprocess.Popen(  # noqa: S603 - fixed command line
            [_mosquitto(), "-c", str(config)],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
        )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                err = self._process.stderr.read().decode() if self._process.stderr else ""
                raise RuntimeError(f"mosquitto exited at once: {err}")
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
