"""The asyncio server over real sockets: limits, timeouts, logins and client events."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable

import pytest

from custom_components.ecoflow_power.nut import ClientEventKind, NutServer, ServerLimits

from .fakes import USERS, FakeBackend


@pytest.fixture
async def served(socket_enabled: None) -> AsyncIterator[tuple[NutServer, FakeBackend]]:
    backend = FakeBackend()
    server = NutServer(
        backend,
        USERS,
        host="127.0.0.1",
        port=0,
        version="0.1.0",
        limits=ServerLimits(
            idle_timeout=0.5, max_connections=6, max_per_address=3, max_line_bytes=64
        ),
    )
    await server.start()
    yield server, backend
    await server.stop()


class Conn:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader, self.writer = reader, writer

    async def ask(self, line: str | bytes, replies: int = 1) -> list[str]:
        data = line if isinstance(line, bytes) else f"{line}\n".encode()
        self.writer.write(data)
        await self.writer.drain()
        return [
            (await asyncio.wait_for(self.reader.readline(), 5)).decode().rstrip("\n")
            for _ in range(replies)
        ]

    async def closed(self) -> bool:
        return await asyncio.wait_for(self.reader.read(), 5) == b""

    async def close(self) -> None:
        self.writer.close()


async def connect(server: NutServer) -> Conn:
    return Conn(*await asyncio.open_connection("127.0.0.1", server.port))


async def until(predicate: Callable[[], bool]) -> None:
    async with asyncio.timeout(5):
        while not predicate():  # noqa: ASYNC110 - polling the server's own bookkeeping
            await asyncio.sleep(0.01)


async def test_a_monitor_logs_in_reads_and_logs_out(served: tuple[NutServer, FakeBackend]) -> None:
    server, backend = served
    conn = await connect(server)
    assert await conn.ask("USERNAME monitor") == ["OK"]
    assert await conn.ask('PASSWORD "s3cret pass"') == ["OK"]
    assert await conn.ask("LOGIN ups") == ["OK"]
    assert [c.ups for c in server.clients()] == ["ups"]
    assert await conn.ask("GET VAR ups ups.status") == ['VAR ups ups.status "OL CHRG"']
    assert await conn.ask("LOGOUT") == ["OK Goodbye"]
    assert await conn.closed()
    await until(lambda: len(backend.events) == 2)
    assert [e.kind for e in backend.events] == [ClientEventKind.LOGIN, ClientEventKind.LOGOUT]
    assert backend.events[0].address == "127.0.0.1"
    assert backend.events[0].username == "monitor"
    assert server.clients() == []


async def test_a_dropped_logged_in_client_is_reported_as_dropped(
    served: tuple[NutServer, FakeBackend],
) -> None:
    server, backend = served
    conn = await connect(server)
    await conn.ask("USERNAME nas")
    await conn.ask("PASSWORD pw2")
    await conn.ask("LOGIN delta")
    await conn.close()
    await until(lambda: len(backend.events) == 2)
    assert backend.events[1].kind is ClientEventKind.DROPPED
    assert backend.events[1].ups == "delta"


async def test_an_idle_connection_is_closed(served: tuple[NutServer, FakeBackend]) -> None:
    server, _ = served
    conn = await connect(server)
    assert await conn.ask("NETVER") == ["1.3"]
    assert await conn.closed()  # idle_timeout 0.5 s


async def test_an_over_long_line_is_refused_and_skipped(
    served: tuple[NutServer, FakeBackend],
) -> None:
    server, _ = served
    conn = await connect(server)
    assert await conn.ask(b"GET VAR " + b"x" * 200 + b"\n") == ["ERR INVALID-ARGUMENT"]
    # A long line sent in pieces is refused once (as soon as it is too long), then
    # the rest of it up to its newline is skipped and the stream resyncs.
    conn.writer.write(b"USERNAME " + b"y" * 100)
    await conn.writer.drain()
    line = await asyncio.wait_for(conn.reader.readline(), 5)
    assert line == b"ERR INVALID-ARGUMENT\n"
    assert await conn.ask(b"z" * 100 + b"\nNETVER\n") == ["1.3"]


async def test_a_failing_client_event_handler_never_takes_the_server_down(
    served: tuple[NutServer, FakeBackend], caplog: pytest.LogCaptureFixture
) -> None:
    server, backend = served

    def broken(event: object) -> None:
        raise RuntimeError("handler bug")

    backend.client_event = broken  # type: ignore[method-assign]
    conn = await connect(server)
    await conn.ask("USERNAME nas")
    await conn.ask("PASSWORD pw2")
    assert await conn.ask("LOGIN delta") == ["OK"]
    await conn.close()
    await until(lambda: "NUT client event handler failed" in caplog.text)
    # The next client is served as before.
    again = await connect(server)
    assert await again.ask("NETVER") == ["1.3"]


def test_the_port_before_start_is_the_one_asked_for() -> None:
    server = NutServer(FakeBackend(), USERS, host="127.0.0.1", port=3493, version="0.1.0")
    assert server.port == 3493


async def test_binary_garbage_gets_an_error_never_a_crash(
    served: tuple[NutServer, FakeBackend],
) -> None:
    server, _ = served
    conn = await connect(server)
    assert await conn.ask(b"\x00\xff\xfe GET\r\n") == ["ERR UNKNOWN-COMMAND"]
    assert await conn.ask(b'GET VAR \xff "\\\n') == ["ERR INVALID-ARGUMENT"]
    assert await conn.ask("GET VAR delta ups.status\r") == ['VAR delta ups.status "OL CHRG"']


async def test_a_flood_from_one_address_is_bounded(served: tuple[NutServer, FakeBackend]) -> None:
    server, _ = served
    conns = [await connect(server) for _ in range(3)]
    for conn in conns:
        assert await conn.ask("NETVER") == ["1.3"]
    extra = await connect(server)
    assert await extra.closed()
    assert server.refused_connections == 1
    await conns[0].close()
    await until(lambda: len(server.clients()) == 2)
    again = await connect(server)
    assert await again.ask("NETVER") == ["1.3"]


async def test_stop_closes_every_connection_without_reporting_clients_as_gone(
    served: tuple[NutServer, FakeBackend],
) -> None:
    server, backend = served
    conn = await connect(server)
    await conn.ask("USERNAME monitor")
    await conn.ask('PASSWORD "s3cret pass"')
    await conn.ask("LOGIN delta")
    await server.stop()
    assert await conn.closed()
    assert not server.running
    # A reload of the integration is not a NAS leaving: no logout/drop event.
    assert [e.kind for e in backend.events] == [ClientEventKind.LOGIN]
