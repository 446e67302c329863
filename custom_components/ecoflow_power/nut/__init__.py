"""A NUT (Network UPS Tools) server: each managed station is a UPS its NUT clients follow.

No Home Assistant imports here: protocol (`protocol`, `commands`), the asyncio
server (`server`), the variables a client sees (`variables`) and the station's
NUT clients as a consumer of its policy (`consumer`). `nut_server.py` next to
this package is the Home Assistant glue.
"""

from .backend import ClientEvent, ClientEventKind, NutBackend, NutUser, UpsSnapshot, UserTable
from .server import ClientInfo, NutServer, ServerLimits

__all__ = [
    "ClientEvent",
    "ClientEventKind",
    "ClientInfo",
    "NutBackend",
    "NutServer",
    "NutUser",
    "ServerLimits",
    "UpsSnapshot",
    "UserTable",
]
