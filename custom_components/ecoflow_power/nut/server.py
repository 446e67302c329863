"""An asyncio TCP server speaking NUT's network protocol to upsmon, upsc and friends.

Bounded against bad or hostile clients: a line longer than MAX_LINE_BYTES is
answered `ERR INVALID-ARGUMENT` and skipped, a connection silent for
`idle_timeout` is closed, and connections are capped in total and per address
(the ones over the cap are closed at once, before any byte is read).
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
import logging
from typing import Final

from .backend import ClientEvent, ClientEventKind, NutBackend, UserTable
from .commands import CommandHandler, Session
from .protocol import MAX_LINE_BYTES, NutError, err

_LOGGER = logging.getLogger(__name__)

DEFAULT_IDLE_TIMEOUT: Final = 300.0
DEFAULT_MAX_CONNECTIONS: Final = 64
DEFAULT_MAX_PER_ADDRESS: Final = 8
_WRITE_TIMEOUT: Final = 10.0


@dataclass(frozen=True, slots=True)
class ServerLimits:
    idle_timeout: float = DEFAULT_IDLE_TIMEOUT
    max_connections: int = DEFAULT_MAX_CONNECTIONS
    max_per_address: int = DEFAULT_MAX_PER_ADDRESS
    max_line_bytes: int = MAX_LINE_BYTES


@dataclass(frozen=True, slots=True)
class ClientInfo:
    address: str
    username: str | None
    ups: str | None


class NutServer:
    """Serve `backend`'s UPSes on `host:port`; start() then stop()."""

    def __init__(
        self,
        backend: NutBackend,
        users: UserTable,
        *,
        host: str,
        port: int,
        version: str,
        limits: ServerLimits | None = None,
    ) -> None:
        self._backend = backend
        self._host = host
        self._port = port
        self.limits = limits or ServerLimits()
        self._sessions: dict[asyncio.Task[None], Session] = {}
        self._per_address: Counter[str] = Counter()
        self._server: asyncio.Server | None = None
        self.refused_connections = 0
        self._stopping = False  # our own close is not a client leaving: no events
        self.handler = CommandHandler(
            backend,
            users,
            lambda: list(self._sessions.values()),
            version=version,
            on_login=self._on_login,
        )

    # --- life cycle ---------------------------------------------------------

    async def start(self) -> None:
        self._stopping = False
        self._server = await asyncio.start_server(
            self._serve, self._host or None, self._port, reuse_address=True
        )

    @property
    def port(self) -> int:
        """The bound port (useful when started on port 0)."""
        if self._server is None or not self._server.sockets:
            return self._port
        return int(self._server.sockets[0].getsockname()[1])

    @property
    def running(self) -> bool:
        return self._server is not None and self._server.is_serving()

    async def stop(self) -> None:
        self._stopping = True
        server, self._server = self._server, None
        if server is not None:
            server.close()
        tasks = list(self._sessions)
        for task in tasks:
            task.cancel()
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if server is not None:
            await server.wait_closed()

    # --- views --------------------------------------------------------------

    def clients(self, ups: str | None = None) -> list[ClientInfo]:
        """Connected sessions, or only those logged into `ups`."""
        return [
            ClientInfo(s.address, s.username, s.login_ups)
            for s in self._sessions.values()
            if ups is None or s.login_ups == ups
        ]

    def logins(self, names: Sequence[str]) -> list[ClientInfo]:
        return [c for c in self.clients() if c.ups in names]

    # --- connections --------------------------------------------------------

    def _on_login(self, session: Session) -> None:
        self._notify(ClientEventKind.LOGIN, session)

    def _notify(self, kind: ClientEventKind, session: Session) -> None:
        if session.login_ups is None or self._stopping:
            return
        try:
            self._backend.client_event(
                ClientEvent(kind, session.login_ups, session.address, session.username or "")
            )
        except Exception:
            _LOGGER.exception("NUT client event handler failed")

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        address = str(peer[0]) if isinstance(peer, tuple) and peer else "unknown"
        if address.startswith("::ffff:"):
            address = address.removeprefix("::ffff:")
        task = asyncio.current_task()
        assert task is not None
        if (
            len(self._sessions) >= self.limits.max_connections
            or self._per_address[address] >= self.limits.max_per_address
        ):
            self.refused_connections += 1
            _LOGGER.debug("NUT connection from %s refused: too many connections", address)
            writer.close()
            return
        session = Session(address=address)
        self._sessions[task] = session
        self._per_address[address] += 1
        kind = ClientEventKind.DROPPED
        try:
            kind = await self._converse(session, reader, writer)
        except ConnectionError, TimeoutError, asyncio.IncompleteReadError:
            pass
        except asyncio.CancelledError:
            pass
        finally:
            del self._sessions[task]
            self._per_address[address] -= 1
            if self._per_address[address] <= 0:
                del self._per_address[address]
            self._notify(kind, session)
            writer.close()

    async def _converse(
        self, session: Session, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> ClientEventKind:
        limit = self.limits.max_line_bytes
        buffer = bytearray()
        skipping = False  # inside an over-long line: drop bytes up to its newline
        while True:
            chunk = await asyncio.wait_for(reader.read(4096), self.limits.idle_timeout)
            if not chunk:
                return ClientEventKind.DROPPED
            buffer += chunk
            while True:
                newline = buffer.find(b"\n")
                if newline < 0:
                    if len(buffer) > limit:
                        if not skipping:
                            await self._send(writer, [err(NutError.INVALID_ARGUMENT)])
                        skipping = True
                        buffer.clear()
                    break
                raw = bytes(buffer[:newline])
                del buffer[: newline + 1]
                if skipping:
                    skipping = False
                    continue
                if len(raw) > limit:
                    await self._send(writer, [err(NutError.INVALID_ARGUMENT)])
                    continue
                # latin-1 maps every byte to one character and back: nothing can fail.
                replies = self.handler.handle_line(session, raw.decode("latin-1"))
                await self._send(writer, replies)
                if session.logged_out:
                    return ClientEventKind.LOGOUT

    async def _send(self, writer: asyncio.StreamWriter, lines: list[str]) -> None:
        if not lines:
            return
        writer.write("".join(f"{line}\n" for line in lines).encode("utf-8"))
        await asyncio.wait_for(writer.drain(), _WRITE_TIMEOUT)
