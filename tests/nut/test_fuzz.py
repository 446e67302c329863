"""Any line at all: the parser splits or refuses it, the handler answers, nothing raises."""

from __future__ import annotations

import asyncio

from hypothesis import given, settings, strategies as st

from custom_components.ecoflow_power.nut import NutServer, ServerLimits
from custom_components.ecoflow_power.nut.commands import CommandHandler, Session
from custom_components.ecoflow_power.nut.protocol import ParseError, quote, split_words

from .fakes import USERS, FakeBackend

_WORDS = st.sampled_from(
    [
        "GET",
        "LIST",
        "VAR",
        "UPS",
        "delta",
        "ups",
        "ups.status",
        "LOGIN",
        "USERNAME",
        "PASSWORD",
        "SET",
        "INSTCMD",
        "FSD",
        "PRIMARY",
        "TRACKING",
        "ON",
        "CLIENT",
        "TYPE",
        "DESC",
        "NUMLOGINS",
        "RW",
        "ENUM",
        "RANGE",
        "CMD",
        "monitor",
        "LOGOUT",
        "UPSDESC",
        "CMDDESC",
        "server.info",
    ]
)
_LINES = st.one_of(
    st.text(max_size=200),
    st.lists(st.one_of(_WORDS, st.text(max_size=12)), max_size=8).map(" ".join),
    st.binary(max_size=200).map(lambda b: b.decode("latin-1")),
)


@given(st.text(max_size=300))
def test_split_words_splits_or_refuses(line: str) -> None:
    try:
        words = split_words(line)
    except ParseError:
        return
    assert all(isinstance(w, str) for w in words)


@given(st.lists(st.text(min_size=0, max_size=20), max_size=6))
def test_quoted_words_come_back_unchanged(words: list[str]) -> None:
    line = " ".join(quote(w) for w in words if "#" not in w)
    assert split_words(line) == [w for w in words if "#" not in w]


@settings(max_examples=300)
@given(st.lists(_LINES, min_size=1, max_size=10))
def test_the_handler_answers_every_line_without_raising(lines: list[str]) -> None:
    sessions: list[Session] = []
    handler = CommandHandler(FakeBackend(), USERS, lambda: sessions, version="0.1.0")
    session = Session(address="198.51.100.7")
    sessions.append(session)
    for line in lines:
        replies = handler.handle_line(session, line)
        for reply in replies:
            assert "\n" not in reply
            assert reply
        if replies and replies[0].startswith("ERR "):
            assert len(replies) == 1
            assert replies[0].split()[1].isupper()


class _Writer:
    def __init__(self) -> None:
        self.data = bytearray()

    def write(self, data: bytes) -> None:
        self.data += data

    async def drain(self) -> None:
        return None


@settings(max_examples=150, deadline=None)
@given(st.lists(st.binary(max_size=200), max_size=8))
def test_any_bytes_in_any_chunks_get_whole_reply_lines(chunks: list[bytes]) -> None:
    server = NutServer(
        FakeBackend(),
        USERS,
        host="127.0.0.1",
        port=0,
        version="0.1.0",
        limits=ServerLimits(max_line_bytes=64, idle_timeout=5),
    )

    async def converse() -> bytes:
        reader = asyncio.StreamReader()
        for chunk in chunks:
            reader.feed_data(chunk)
        reader.feed_eof()
        writer = _Writer()
        await server._converse(Session(address="198.51.100.8"), reader, writer)  # type: ignore[arg-type]
        return bytes(writer.data)

    out = asyncio.run(converse())
    assert not out or out.endswith(b"\n")
    for line in out.decode().splitlines():
        assert line
