"""Splitting a command line into words as NUT's parseconf does, and quoting replies."""

from __future__ import annotations

import pytest

from custom_components.ecoflow_power.nut.protocol import (
    ParseError,
    encode,
    is_plain_name,
    quote,
    split_words,
)


@pytest.mark.parametrize(
    ("line", "words"),
    [
        ("GET VAR ups ups.status", ["GET", "VAR", "ups", "ups.status"]),
        ("  LIST   UPS\t\r", ["LIST", "UPS"]),
        ('SET VAR ups ups.id "My UPS"', ["SET", "VAR", "ups", "ups.id", "My UPS"]),
        ('PASSWORD "a \\"quoted\\" \\\\ word"', ["PASSWORD", 'a "quoted" \\ word']),
        ("PASSWORD a\\ b", ["PASSWORD", "a b"]),
        ('PASSWORD ""', ["PASSWORD", ""]),
        ("LIST UPS # a comment", ["LIST", "UPS"]),
        ("LIST UPS#comment", ["LIST", "UPS"]),
        ('USERNAME "a"b', ["USERNAME", "a", "b"]),
        ('USERNAME a"b', ["USERNAME", 'a"b']),
        ("SET a=b", ["SET", "a", "=", "b"]),
        ("", []),
        ("# only a comment", []),
    ],
)
def test_lines_split_like_parseconf(line: str, words: list[str]) -> None:
    assert split_words(line) == words


@pytest.mark.parametrize("line", ['PASSWORD "open', 'PASSWORD "has # inside"', "USERNAME x\\"])
def test_unbalanced_lines_are_refused(line: str) -> None:
    with pytest.raises(ParseError):
        split_words(line)


def test_values_are_escaped_so_a_client_reads_them_back_unchanged() -> None:
    value = 'Rack "A" \\ shelf'
    assert encode(value) == 'Rack \\"A\\" \\\\ shelf'
    assert split_words(f"VAR ups x {quote(value)}") == ["VAR", "ups", "x", value]


@pytest.mark.parametrize(
    ("name", "plain"),
    [("ups.status", True), ("a b", False), ('a"', False), ("", False), ("x" * 129, False)],
)
def test_only_plain_names_are_echoed(name: str, plain: bool) -> None:
    assert is_plain_name(name) is plain
