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
        """The stored NUT options; a part of the wrong shape is left out (or its default)."""
        data = _mapping(options.get(CONF_NUT))
        users = tuple(
            NutUser(str(name), str(user.get(NUT_PASSWORD, "")))
            for name, user in _mapping(data.get(NUT_USERS)).items()
            if isinstance(user, Mapping)
        )
        stations: dict[str, NutStationConfig] = {}
        for sn, item in _mapping(data.get(NUT_STATIONS)).items():
            if not isinstance(item, Mapping) or not item.get(NUT_NAME):
                continue
            aliases = item.get(NUT_ALIASES) or ()
            stations[str(sn)] = NutStationConfig(
                name=str(item[NUT_NAME]),
                aliases=tuple(str(a) for a in aliases) if isinstance(aliases, list | tuple) else (),
                soc_threshold=_within(item.get(NUT_SOC_THRESHOLD), 0, 100),
                delay_sec=_whole(item.get(NUT_DELAY)),
            )
        port = _whole(data.get(NUT_PORT, DEFAULT_PORT))
        return cls(
            enabled=data.get(NUT_ENABLED) is True,
            host=str(data.get(NUT_HOST, DEFAULT_HOST)),
            port=port if port is not None and 1 <= port <= 65535 else DEFAULT_PORT,
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


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _within(value: Any, low: float, high: float) -> float | None:
    """A stored number within low..high, else None (the station's own setting)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return float(value) if low <= value <= high else None


def _whole(value: Any) -> int | None:
    """A stored whole number >= 0, else None."""
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        return None
    return value
