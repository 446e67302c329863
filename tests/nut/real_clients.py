"""Running Debian's nut-client tools (upsc, upsmon) against our server."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import contextlib
import os
from pathlib import Path
import shutil
import signal

UPSC = shutil.which("upsc") or "/usr/bin/upsc"
UPSMON = "/lib/nut/upsmon"


def require_nut_client() -> None:
    missing = [p for p in (UPSC, UPSMON) if not os.access(p, os.X_OK)]
    assert not missing, f"{missing} missing: scripts/setup installs Debian's nut-client"


async def upsc(*args: str) -> str:
    proc = await asyncio.create_subprocess_exec(
        UPSC, *args, stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE
    )
    out, errs = await asyncio.wait_for(proc.communicate(), 20)
    assert proc.returncode == 0, errs.decode()
    return out.decode()


def parse_upsc(text: str) -> dict[str, str]:
    values: dict[str, str] = {}
    for line in text.splitlines():
        name, _, value = line.partition(": ")
        values[name] = value
    return values


class Upsmon:
    """A real upsmon as a secondary whose SHUTDOWNCMD only writes a file."""

    def __init__(self, folder: Path, port: int, *, ups: str, user: str, password: str) -> None:
        self.folder = folder
        self.ran = folder / "shutdown-ran"
        self.notes = folder / "notifications"
        notify = folder / "notify.sh"
        notify.write_text(f'#!/bin/sh\necho "$NOTIFYTYPE $*" >> {self.notes}\n')
        notify.chmod(0o755)
        flags = "\n".join(
            f"NOTIFYFLAG {kind} SYSLOG+EXEC"
            for kind in ("ONLINE", "ONBATT", "LOWBATT", "FSD", "COMMOK", "COMMBAD", "SHUTDOWN")
        )
        conf = folder / "upsmon.conf"
        conf.write_text(
            f"MONITOR {ups}@127.0.0.1:{port} 1 {user} {password} secondary\n"
            "MINSUPPLIES 1\n"
            f'SHUTDOWNCMD "/usr/bin/touch {self.ran}"\n'
            f"NOTIFYCMD {notify}\n{flags}\n"
            "POLLFREQ 1\nPOLLFREQALERT 1\nHOSTSYNC 5\nDEADTIME 15\nFINALDELAY 0\n"
            f"POWERDOWNFLAG {folder}/killpower\n"
        )
        conf.chmod(0o640)
        self.proc: asyncio.subprocess.Process | None = None
        self.log = bytearray()

    async def start(self) -> None:
        env = {**os.environ, "NUT_CONFPATH": str(self.folder), "NUT_STATEPATH": str(self.folder)}
        self.proc = await asyncio.create_subprocess_exec(
            UPSMON,
            "-F",
            "-D",
            "-p",
            env=env,
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        self._reader = asyncio.create_task(self._collect())

    async def _collect(self) -> None:
        assert self.proc is not None
        assert self.proc.stdout is not None
        while chunk := await self.proc.stdout.read(4096):
            self.log += chunk

    def notifications(self) -> list[str]:
        return self.notes.read_text().splitlines() if self.notes.exists() else []

    async def stop(self) -> None:
        if self.proc is not None and self.proc.returncode is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                await asyncio.wait_for(self.proc.wait(), 10)
            except TimeoutError:
                self.proc.kill()
                await self.proc.wait()
        with contextlib.suppress(asyncio.CancelledError):
            await self._reader


@contextlib.asynccontextmanager
async def running_upsmon(
    folder: Path, port: int, *, ups: str, user: str, password: str
) -> AsyncIterator[Upsmon]:
    monitor = Upsmon(folder, port, ups=ups, user=user, password=password)
    await monitor.start()
    try:
        yield monitor
    finally:
        await monitor.stop()
