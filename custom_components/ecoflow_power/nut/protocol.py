"""NUT network protocol 1.3: words on a line, quoting, and the error codes.

Lines are parsed the way NUT's `parseconf` does it (docs/net-protocol.txt:
"This protocol is intended to be interpreted with parseconf"): words are
separated by white space, `"..."` bounds a word that may hold spaces, a
backslash takes the next character literally (inside or outside quotes), `#`
outside quotes starts a comment, and `=` alone is a word of its own. A `#`
inside quotes is an error in parseconf; so is a quote left open at the end of
the line here (upsd would read on into the next line; a network client that
does this is broken, and carrying state across lines is how a parser is made
to misread the next command).
"""

from __future__ import annotations

from enum import StrEnum
from typing import Final

PROTOCOL_VERSION: Final = "1.3"
DEFAULT_PORT: Final = 3493
# upsd's reply to HELP, word for word (PRIMARY/MASTER and FSD are not listed there either).
HELP_TEXT: Final = (
    "Commands: HELP VER PROTVER GET LIST SET INSTCMD LOGIN LOGOUT USERNAME PASSWORD STARTTLS"
)
MAX_LINE_BYTES: Final = 1024
MAX_WORDS: Final = 16


class NutError(StrEnum):
    """The <message> of `ERR <message>` (NUT's server/neterr.h)."""

    ACCESS_DENIED = "ACCESS-DENIED"
    UNKNOWN_UPS = "UNKNOWN-UPS"
    VAR_NOT_SUPPORTED = "VAR-NOT-SUPPORTED"
    CMD_NOT_SUPPORTED = "CMD-NOT-SUPPORTED"
    INVALID_ARGUMENT = "INVALID-ARGUMENT"
    INSTCMD_FAILED = "INSTCMD-FAILED"
    SET_FAILED = "SET-FAILED"
    READONLY = "READONLY"
    TOO_LONG = "TOO-LONG"
    FEATURE_NOT_SUPPORTED = "FEATURE-NOT-SUPPORTED"
    FEATURE_NOT_CONFIGURED = "FEATURE-NOT-CONFIGURED"
    ALREADY_SSL_MODE = "ALREADY-SSL-MODE"
    DRIVER_NOT_CONNECTED = "DRIVER-NOT-CONNECTED"
    DATA_STALE = "DATA-STALE"
    ALREADY_LOGGED_IN = "ALREADY-LOGGED-IN"
    INVALID_PASSWORD = "INVALID-PASSWORD"
    ALREADY_SET_PASSWORD = "ALREADY-SET-PASSWORD"
    INVALID_USERNAME = "INVALID-USERNAME"
    ALREADY_SET_USERNAME = "ALREADY-SET-USERNAME"
    USERNAME_REQUIRED = "USERNAME-REQUIRED"
    PASSWORD_REQUIRED = "PASSWORD-REQUIRED"
    UNKNOWN_COMMAND = "UNKNOWN-COMMAND"
    INVALID_VALUE = "INVALID-VALUE"


def err(code: NutError) -> str:
    return f"ERR {code}"


class ParseError(ValueError):
    """The line cannot be split into words (open quote, `#` inside quotes)."""


def split_words(line: str) -> list[str]:
    """The words of one line (without its newline), as parseconf splits them."""
    words: list[str] = []
    word: list[str] = []
    in_word = False  # a word has started (it may still be empty: "")
    quoted = False
    escaped = False
    for ch in line:
        if escaped:
            word.append(ch)
            escaped = False
            in_word = True
            continue
        if ch == "\\":
            escaped = True
            in_word = True
            continue
        if quoted:
            if ch == '"':
                quoted = False
                words.append("".join(word))
                word, in_word = [], False
            elif ch == "#":
                raise ParseError("unescaped # in quotes")
            else:
                word.append(ch)
            continue
        if ch == "#":
            break
        if ch.isspace():
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            continue
        if ch == '"' and not in_word:
            quoted = True
            in_word = True
            continue
        if ch == "=":
            if in_word:
                words.append("".join(word))
                word, in_word = [], False
            words.append("=")
            continue
        word.append(ch)
        in_word = True
    if quoted or escaped:
        raise ParseError("line ends inside a quoted word or after a backslash")
    if in_word:
        words.append("".join(word))
    return words


def encode(value: str) -> str:
    """A value for inside "quotes": backslashes and quotes escaped (pconf_encode)."""
    return value.replace("\\", "\\\\").replace('"', '\\"')


def quote(value: str) -> str:
    return f'"{encode(value)}"'


def is_plain_name(name: str) -> bool:
    """A UPS, variable or command name that can be echoed back in a reply unquoted."""
    return 0 < len(name) <= 128 and all("!" <= ch <= "~" and ch not in '"\\#=' for ch in name)
