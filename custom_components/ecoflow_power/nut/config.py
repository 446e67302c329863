"""The NUT server's settings as the options store them, with their validation rules."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
import ipaddress
import re
import secrets
from typing import Any, Final

from .backend import NutUser
from .protocol import DEFAULT_PORT

CONF_NUT: Final = "nut"
NUT_ENABLED: Final = "enabled"
NUT_HOST: Final = "host"
NUT_PORT: Final = "port"
NUT_USERS: Final = "users"
NUT_STATIONS: Final = "stations"
NUT_PASSWORD: Final = "password"
NUT_NAME: Final = "name"
NUT_ALIASES: Final = "aliases"
NUT_SOC_THRESHOLD: Final = "soc_threshold"
NUT_DELAY: Final = "delay_sec"

DEFAULT_HOST: Final = "0.0.0.0"  # noqa: S104 - NAS boxes on the LAN are the clients

# UPS names some NAS systems insist on (they cannot be configured there).
KNOWN_ALIASES: Final = {"ups": "Synology DSM", "qnapups": "QNAP QTS"}
# Credentials some NAS systems hard-code. Public knowledge: offered only when chosen.
PRESETS: Final = {"synology": ("monuser", "secret"), "qnap": ("admin", "123456")}

_NAME_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,31}$")
_USER_RE: Final = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,31}$")


def is_valid_ups_name(name: str) -> bool:
    return bool(_NAME_RE.match(name))


def is_valid_username(name: str) -> bool:
    return bool(_USER_RE.match(name))


def is_valid_host(host: str) -> bool:
    """An IP address to listen on ("0.0.0.0" / "::" for all interfaces)."""
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


def generate_password() -> str:
    """24 URL-safe characters: no quotes, spaces or `#`, which NAS UIs mangle."""
    return secrets.token_urlsafe(18)


def default_ups_name(model_name: str, taken: set[str]) -> str:
    base = re.sub(r"[^a-z0-9]+", "", model_name.lower()) or "ecoflow"
    base = base[:28]
    name, n = base, 2
    while name in taken:
        name, n = f"{base}-{n}", n + 1
    return name


@dataclass(frozen=True, slots=True)
class NutStationConfig:
    name: str
    aliases: tuple[str, ...] = ()
    soc_threshold: float | None = None
    delay_sec: int | None = None


@dataclass(frozen=True, slots=True)
class NutConfig:
    enabled: bool = False
    host: str = DEFAULT_HOST
    port: int = DEFAULT_PORT
    users: tuple[NutUser, ...] = ()
    stations: Mapping[str, NutStationConfig] = field(default_factory=dict)

    @classmethod
    def from_options(cls, options: Mapping[str, Any]) -> NutConfig:
        data: Mapping[str, Any] = options.get(CONF_NUT) or {}
        users = tuple(
            NutUser(name, str(user.get(NUT_PASSWORD, "")))
            for name, user in (data.get(NUT_USERS) or {}).items()
        )
        stations = {
            sn: NutStationConfig(
                name=str(item[NUT_NAME]),
                aliases=tuple(item.get(NUT_ALIASES) or ()),
                soc_threshold=item.get(NUT_SOC_THRESHOLD),
                delay_sec=item.get(NUT_DELAY),
            )
            for sn, item in (data.get(NUT_STATIONS) or {}).items()
            if item.get(NUT_NAME)
        }
        return cls(
            enabled=bool(data.get(NUT_ENABLED, False)),
            host=str(data.get(NUT_HOST, DEFAULT_HOST)),
            port=int(data.get(NUT_PORT, DEFAULT_PORT)),
            users=users,
            stations=stations,
        )

    def names_in_use(self, *, except_sn: str | None = None) -> set[str]:
        """Every UPS name and alias (lower case: NUT compares names case-insensitively)."""
        return {
            name.lower()
            for sn, station in self.stations.items()
            if sn != except_sn
            for name in (station.name, *station.aliases)
        }
