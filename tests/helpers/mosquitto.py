"""A real mosquitto broker on a free loopback port, owned by one test.

The runner itself lives in `simulator/broker.py` (the stand-in spawns its
private broker with it); this module gives tests their names for it.
"""

from __future__ import annotations

from collections.abc import Iterator
import contextlib

from simulator.broker import ManagedBroker, free_port, mosquitto_binary

__all__ = ["MosquittoBroker", "free_port", "mosquitto_binary", "running_broker"]


class MosquittoBroker(ManagedBroker):
    """`MosquittoBroker(users={...})`: anonymous unless users are given."""

    def __init__(self, users: dict[str, str] | None = None, port: int | None = None) -> None:
        super().__init__("127.0.0.1", port, users)


@contextlib.contextmanager
def running_broker(users: dict[str, str] | None = None) -> Iterator[MosquittoBroker]:
    broker = MosquittoBroker(users)
    broker.start()
    try:
        yield broker
    finally:
        broker.cleanup()
