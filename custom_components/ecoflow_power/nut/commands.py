"""One NUT command line in, the reply lines out: upsd's behaviour, word for word.

Replies and their order of checks follow NUT's server/netcmds.h, netget.c,
netlist.c, netuser.c, netmisc.c, netset.c and netinstcmd.c. Our users hold
upsmon *secondary* rights only: LOGIN is granted, PRIMARY/MASTER, FSD, SET and
INSTCMD are refused with ACCESS-DENIED, because a forced shutdown of a station
is decided by its policy in Home Assistant, never by one of its clients.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
import logging
from typing import Final

from .backend import NutBackend, UpsSnapshot, UserTable
from .protocol import (
    HELP_TEXT,
    MAX_WORDS,
    PROTOCOL_VERSION,
    NutError,
    ParseError,
    err,
    is_plain_name,
    quote,
    split_words,
)
from .variables import command_description, variable_description, variable_type

_LOGGER = logging.getLogger(__name__)

GOODBYE: Final = "OK Goodbye"
SERVER_URL: Final = "https://networkupstools.org/"


@dataclass(slots=True)
class Session:
    """One client connection's protocol state."""

    address: str
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    login_ups: str | None = None
    tracking: bool = False
    logged_out: bool = False  # LOGOUT answered: close after the reply


class CommandHandler:
    """Answers commands for every session of one server."""

    def __init__(
        self,
        backend: NutBackend,
        users: UserTable,
        sessions: Callable[[], Iterable[Session]],
        *,
        version: str,
        on_login: Callable[[Session], None] | None = None,
    ) -> None:
        self._backend = backend
        self._users = users
        self._sessions = sessions
        self._version = version
        self._on_login = on_login
        self._commands: dict[str, Callable[[Session, list[str]], list[str]]] = {
            "VER": self._ver,
            "NETVER": self._netver,
            "PROTVER": self._netver,
            "HELP": self._help,
            "STARTTLS": self._starttls,
            "GET": self._get,
            "LIST": self._list,
            "USERNAME": self._username,
            "PASSWORD": self._password,
            "LOGIN": self._login,
            "LOGOUT": self._logout,
            "PRIMARY": self._primary,
            "MASTER": self._master,
            "FSD": self._fsd,
            "SET": self._set,
            "INSTCMD": self._instcmd,
        }
        self._need_user = {"LOGIN", "PRIMARY", "MASTER", "FSD", "SET", "INSTCMD"}

    @property
    def server_info(self) -> str:
        return f"Network UPS Tools upsd-compatible server (ecoflow_power {self._version})"

    def handle_line(self, session: Session, line: str) -> list[str]:
        """The reply to one line; never raises. An empty or comment line gets no reply."""
        try:
            words = split_words(line)
        except ParseError:
            return [err(NutError.INVALID_ARGUMENT)]
        if not words:
            return []
        if len(words) > MAX_WORDS:
            return [err(NutError.INVALID_ARGUMENT)]
        name = words[0].upper()
        command = self._commands.get(name)
        if command is None:
            return [err(NutError.UNKNOWN_COMMAND)]
        if name in self._need_user:
            if session.username is None:
                return [err(NutError.USERNAME_REQUIRED)]
            if session.password is None:
                return [err(NutError.PASSWORD_REQUIRED)]
        try:
            return command(session, words[1:])
        except Exception:  # a bug in one reply must not end the server
            _LOGGER.exception("NUT command %s failed", name)
            return [err(NutError.INVALID_ARGUMENT)]

    # --- helpers ------------------------------------------------------------

    def _canonical(self, name: str) -> str | None:
        """The served name `name` means: upsd compares UPS names case-insensitively."""
        if not is_plain_name(name):
            return None
        wanted = name.lower()
        return next((n for n in self._backend.ups_names() if n.lower() == wanted), None)

    def _ups(self, name: str) -> UpsSnapshot | None:
        canonical = self._canonical(name)
        return None if canonical is None else self._backend.snapshot(canonical)

    @staticmethod
    def _value(variables: Mapping[str, str], name: str) -> str | None:
        if name in variables:
            return variables[name]
        wanted = name.lower()
        return next((v for k, v in variables.items() if k.lower() == wanted), None)

    def logged_in(self, ups: str) -> list[Session]:
        return [s for s in self._sessions() if s.login_ups == ups]

    # --- misc (netmisc.c) ---------------------------------------------------

    def _ver(self, session: Session, args: list[str]) -> list[str]:
        if args:
            return [err(NutError.INVALID_ARGUMENT)]
        return [f"{self.server_info} - {SERVER_URL}"]

    def _netver(self, session: Session, args: list[str]) -> list[str]:
        if args:
            return [err(NutError.INVALID_ARGUMENT)]
        return [PROTOCOL_VERSION]

    def _help(self, session: Session, args: list[str]) -> list[str]:
        if args:
            return [err(NutError.INVALID_ARGUMENT)]
        return [HELP_TEXT]

    def _starttls(self, session: Session, args: list[str]) -> list[str]:
        # No certificate is configured: clients that try TLS carry on in plain text.
        return [err(NutError.FEATURE_NOT_CONFIGURED)]

    def _fsd(self, session: Session, args: list[str]) -> list[str]:
        if len(args) != 1:
            return [err(NutError.INVALID_ARGUMENT)]
        if self._ups(args[0]) is None:
            return [err(NutError.UNKNOWN_UPS)]
        # FSD comes from the station's policy only.
        _LOGGER.warning("NUT client %s@%s tried FSD: refused", session.username, session.address)
        return [err(NutError.ACCESS_DENIED)]

    # --- users (netuser.c) --------------------------------------------------

    def _username(self, session: Session, args: list[str]) -> list[str]:
        if len(args) != 1:
            return [err(NutError.INVALID_ARGUMENT)]
        if session.username is not None:
            return [err(NutError.ALREADY_SET_USERNAME)]
        session.username = args[0]
        return ["OK"]

    def _password(self, session: Session, args: list[str]) -> list[str]:
        if len(args) != 1:
            return [err(NutError.INVALID_ARGUMENT)]
        if session.password is not None:
            return [err(NutError.ALREADY_SET_PASSWORD)]
        session.password = args[0]
        return ["OK"]

    def _login(self, session: Session, args: list[str]) -> list[str]:
        if len(args) != 1:
            return [err(NutError.INVALID_ARGUMENT)]
        if session.login_ups is not None:
            return [err(NutError.ALREADY_LOGGED_IN)]
        canonical = self._canonical(args[0])
        if canonical is None or self._backend.snapshot(canonical) is None:
            return [err(NutError.UNKNOWN_UPS)]
        if not self._users.check(session.username, session.password):
            _LOGGER.info("NUT login refused for %s from %s", session.username, session.address)
            return [err(NutError.ACCESS_DENIED)]
        session.login_ups = canonical
        if self._on_login:
            self._on_login(session)
        return ["OK"]

    def _logout(self, session: Session, args: list[str]) -> list[str]:
        if args:
            return [err(NutError.INVALID_ARGUMENT)]
        session.logged_out = True
        return [GOODBYE]

    def _primary_check(self, args: list[str]) -> list[str]:
        if len(args) != 1:
            return [err(NutError.INVALID_ARGUMENT)]
        if self._ups(args[0]) is None:
            return [err(NutError.UNKNOWN_UPS)]
        # Primary rights would let a client set FSD: the policy keeps that for itself.
        return [err(NutError.ACCESS_DENIED)]

    def _primary(self, session: Session, args: list[str]) -> list[str]:
        return self._primary_check(args)

    def _master(self, session: Session, args: list[str]) -> list[str]:
        return self._primary_check(args)

    # --- GET (netget.c) -----------------------------------------------------

    def _get(self, session: Session, args: list[str]) -> list[str]:
        if not args:
            return [err(NutError.INVALID_ARGUMENT)]
        sub = args[0].upper()
        if sub == "TRACKING":
            if len(args) < 2:
                return ["ON" if session.tracking else "OFF"]
            if not session.tracking:
                return [err(NutError.FEATURE_NOT_CONFIGURED)]
            # Nothing is ever tracked (SET and INSTCMD are refused): upsd's
            # answer for an id it does not know.
            return ["ERR UNKNOWN"]
        if len(args) < 2:
            return [err(NutError.INVALID_ARGUMENT)]
        upsname = args[1]
        if sub == "NUMLOGINS":
            ups = self._ups(upsname)
            if ups is None:
                return [err(NutError.UNKNOWN_UPS)]
            if ups.variables is None:
                return [err(NutError.DATA_STALE)]
            count = len(self.logged_in(self._canonical(upsname) or upsname))
            return [f"NUMLOGINS {upsname} {count}"]
        if sub == "UPSDESC":
            ups = self._ups(upsname)
            if ups is None:
                return [err(NutError.UNKNOWN_UPS)]
            return [f"UPSDESC {upsname} {quote(ups.description or 'Unavailable')}"]
        if len(args) < 3:
            return [err(NutError.INVALID_ARGUMENT)]
        name = args[2]
        if sub not in {"VAR", "TYPE", "DESC", "CMDDESC"}:
            return [err(NutError.INVALID_ARGUMENT)]
        if sub == "VAR" and name.lower().startswith("server."):
            return self._server_var(upsname, name)
        ups = self._ups(upsname)
        if ups is None:
            return [err(NutError.UNKNOWN_UPS)]
        if ups.variables is None:
            return [err(NutError.DATA_STALE)]
        if not is_plain_name(name):
            return [err(NutError.INVALID_ARGUMENT)]
        if sub == "VAR":
            value = self._value(ups.variables, name)
            if value is None:
                return [err(NutError.VAR_NOT_SUPPORTED)]
            return [f"VAR {upsname} {name} {quote(value)}"]
        if sub == "TYPE":
            value = self._value(ups.variables, name)
            if value is None:
                return [err(NutError.VAR_NOT_SUPPORTED)]
            return [f"TYPE {upsname} {name} {variable_type(name, value)}"]
        if sub == "DESC":
            return [f"DESC {upsname} {name} {quote(variable_description(name))}"]
        return [f"CMDDESC {upsname} {name} {quote(command_description(name))}"]

    def _server_var(self, upsname: str, name: str) -> list[str]:
        if not is_plain_name(upsname):
            return [err(NutError.INVALID_ARGUMENT)]
        if name.lower() == "server.info":
            return [f"VAR {upsname} server.info {quote(f'{self.server_info} - {SERVER_URL}')}"]
        if name.lower() == "server.version":
            return [f"VAR {upsname} server.version {quote(self._version)}"]
        return [err(NutError.VAR_NOT_SUPPORTED)]

    # --- LIST (netlist.c) ---------------------------------------------------

    def _list(self, session: Session, args: list[str]) -> list[str]:
        if not args:
            return [err(NutError.INVALID_ARGUMENT)]
        sub = args[0].upper()
        if sub == "UPS":
            lines = ["BEGIN LIST UPS"]
            for name in self._backend.ups_names():
                ups = self._backend.snapshot(name)
                desc = ups.description if ups and ups.description else "Description unavailable"
                lines.append(f"UPS {name} {quote(desc)}")
            lines.append("END LIST UPS")
            return lines
        if len(args) < 2:
            return [err(NutError.INVALID_ARGUMENT)]
        upsname = args[1]
        if sub in {"VAR", "RW", "CMD", "CLIENT"}:
            ups = self._ups(upsname)
            if ups is None:
                return [err(NutError.UNKNOWN_UPS)]
            if sub == "CLIENT":
                canonical = self._canonical(upsname) or upsname
                body = [f"CLIENT {canonical} {s.address}" for s in self.logged_in(canonical)]
            elif ups.variables is None:
                return [err(NutError.DATA_STALE)]
            elif sub == "VAR":
                body = [
                    f"VAR {upsname} {name} {quote(value)}"
                    for name, value in sorted(ups.variables.items())
                ]
            elif sub == "RW":
                body = []  # nothing is writable
            else:
                body = [f"CMD {upsname} {name}" for name in ups.commands]
            return [f"BEGIN LIST {sub} {upsname}", *body, f"END LIST {sub} {upsname}"]
        if len(args) < 3:
            return [err(NutError.INVALID_ARGUMENT)]
        if sub not in {"ENUM", "RANGE"}:
            return [err(NutError.INVALID_ARGUMENT)]
        name = args[2]
        ups = self._ups(upsname)
        if ups is None:
            return [err(NutError.UNKNOWN_UPS)]
        if ups.variables is None:
            return [err(NutError.DATA_STALE)]
        if not is_plain_name(name) or self._value(ups.variables, name) is None:
            return [err(NutError.VAR_NOT_SUPPORTED)]
        # No variable has an enumeration or a range: the lists are empty.
        return [f"BEGIN LIST {sub} {upsname} {name}", f"END LIST {sub} {upsname} {name}"]

    # --- SET (netset.c) and INSTCMD (netinstcmd.c) --------------------------

    def _set(self, session: Session, args: list[str]) -> list[str]:
        if len(args) < 2:
            return [err(NutError.INVALID_ARGUMENT)]
        sub = args[0].upper()
        if sub == "TRACKING":
            value = args[1].upper()
            if value not in {"ON", "OFF"}:
                return [err(NutError.INVALID_ARGUMENT)]
            session.tracking = value == "ON"
            return ["OK"]
        if sub != "VAR":
            return [err(NutError.INVALID_ARGUMENT)]
        if len(args) < 4:
            return [err(NutError.INVALID_ARGUMENT)]
        ups = self._ups(args[1])
        if ups is None:
            return [err(NutError.UNKNOWN_UPS)]
        if ups.variables is None:
            return [err(NutError.DATA_STALE)]
        # upsd checks the user's SET right before the variable: ours have none.
        return [err(NutError.ACCESS_DENIED)]

    def _instcmd(self, session: Session, args: list[str]) -> list[str]:
        if len(args) < 2:
            return [err(NutError.INVALID_ARGUMENT)]
        ups = self._ups(args[0])
        if ups is None:
            return [err(NutError.UNKNOWN_UPS)]
        if ups.variables is None:
            return [err(NutError.DATA_STALE)]
        if args[1].lower() not in {c.lower() for c in ups.commands}:
            return [err(NutError.CMD_NOT_SUPPORTED)]
        return [err(NutError.ACCESS_DENIED)]
