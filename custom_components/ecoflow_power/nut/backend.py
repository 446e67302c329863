"""What the NUT server asks of whoever feeds it (the Home Assistant glue, or a test)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
import hmac
from typing import Protocol


@dataclass(frozen=True, slots=True)
class UpsSnapshot:
    """One UPS as clients see it right now.

    `variables` None means nothing is known (every data query answers
    `ERR DATA-STALE`); the UPS is still listed and clients may still log in.
    """

    description: str
    variables: Mapping[str, str] | None
    commands: Sequence[str] = ()


class ClientEventKind(StrEnum):
    LOGIN = "login"
    LOGOUT = "logout"  # the client said LOGOUT
    DROPPED = "dropped"  # the connection ended without LOGOUT (timeout, reset, close)


@dataclass(frozen=True, slots=True)
class ClientEvent:
    kind: ClientEventKind
    ups: str
    address: str
    username: str


class NutBackend(Protocol):
    def ups_names(self) -> Sequence[str]:
        """Every UPS name served, aliases included, in listing order."""
        ...

    def snapshot(self, ups: str) -> UpsSnapshot | None:
        """The UPS `ups` (exact name), or None if no such UPS is served."""
        ...

    def client_event(self, event: ClientEvent) -> None:
        """A client logged into or left a UPS (called on the server's loop; must not block)."""
        ...


@dataclass(frozen=True, slots=True)
class NutUser:
    username: str
    password: str = field(repr=False)


class UserTable:
    """The users allowed to LOGIN (upsmon secondary rights, nothing more)."""

    def __init__(self, users: Sequence[NutUser]) -> None:
        self._users = {user.username: user.password for user in users}

    def check(self, username: str | None, password: str | None) -> bool:
        if username is None or password is None:
            return False
        expected = self._users.get(username)
        # compare_digest on bytes: the same time whatever the password holds.
        supplied = password.encode("utf-8", "surrogateescape")
        if expected is None:
            hmac.compare_digest(supplied, supplied)
            return False
        return hmac.compare_digest(expected.encode("utf-8", "surrogateescape"), supplied)
