"""A real mosquitto fed by the stand-in, and CloudMqttSessions against it.

Shared by the session tests (test_mqtt_session.py) and its failure cases
(test_mqtt_session_failures.py): the broker checks the password the stand-in's
certification hands out, like the EcoFlow cloud broker.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
import contextlib
from dataclasses import dataclass, field
import time
from typing import Any

import aiohttp

from custom_components.ecoflow_power.ecoflow.api import EcoflowApiClient
from custom_components.ecoflow_power.ecoflow.backoff import Backoff
from custom_components.ecoflow_power.ecoflow.cloud_messages import RawMessage
from custom_components.ecoflow_power.ecoflow.mqtt_session import CloudMqttSession
from custom_components.ecoflow_power.ecoflow.state import MessageSource
from simulator.devices import DEFAULT_DELTA2_SN, DEFAULT_RIVER3_SN
from simulator.standin import StandIn
from tests.helpers.mosquitto import MosquittoBroker

ACCESS_KEY = "ak-session-test"
SECRET_KEY = "sk-session-SECRET-123"
ACCOUNT = "open-test-account"
MQTT_PASSWORD = "first-MQTT-password"
SIM_USER = "simulator"
SIM_PASSWORD = "simulator-password"


@dataclass
class World:
    broker: MosquittoBroker
    standin: StandIn
    api: EcoflowApiClient
    http: aiohttp.ClientSession
    session_defaults: dict[str, Any]
    sessions: list[CloudMqttSession] = field(default_factory=list)
    messages: list[RawMessage] = field(default_factory=list)
    changes: list[bool] = field(default_factory=list)

    def session(self, devices: list[str] | None = None, **kwargs: object) -> CloudMqttSession:
        """A session for `devices` (both default stations when None), stopped at the end."""
        options = {
            "on_connection_change": self.changes.append,
            **self.session_defaults,
            **kwargs,
        }
        session = CloudMqttSession(
            self.api,
            client_id="ecoflow-power-test",
            devices=devices if devices is not None else [DEFAULT_RIVER3_SN, DEFAULT_DELTA2_SN],
            on_message=self.messages.append,
            **options,
        )
        self.sessions.append(session)
        return session

    def of(self, sn: str, source: MessageSource, since: float = 0.0) -> list[RawMessage]:
        return [
            m for m in self.messages if m.sn == sn and m.source is source and m.received_at >= since
        ]


async def wait_for(predicate: Callable[[], object], within: float = 8.0) -> None:
    deadline = time.monotonic() + within
    while not predicate():
        if time.monotonic() > deadline:
            raise AssertionError("condition not met in time")
        await asyncio.sleep(0.05)


@contextlib.asynccontextmanager
async def cloud_world(
    devices: list[Any], *, rotating_passwords: bool = False, **session_defaults: object
) -> AsyncIterator[World]:
    """The broker and stand-in for `devices`; `session_defaults` override the session's.

    With `rotating_passwords`, a credential rotation at the stand-in also
    changes the broker's password file, as the real cloud does on its side.
    """
    broker = MosquittoBroker(users={ACCOUNT: MQTT_PASSWORD, SIM_USER: SIM_PASSWORD})
    broker.start()

    async def apply_new_password(account: str, password: str) -> None:
        broker.set_users({account: password, SIM_USER: SIM_PASSWORD})
        await asyncio.to_thread(broker.restart)

    standin = StandIn(
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        broker_host=broker.host,
        broker_port=broker.port,
        devices=devices,
        account=ACCOUNT,
        mqtt_password=MQTT_PASSWORD,
        publisher_username=SIM_USER,
        publisher_password=SIM_PASSWORD,
        time_scale=60,
        publish_interval=0.2,
        on_credentials_rotated=apply_new_password if rotating_passwords else None,
    )
    http = aiohttp.ClientSession()
    await standin.start()
    defaults: dict[str, Any] = {
        "snapshot_interval": 0.5,
        "quota_poll_interval": 0.5,
        "backoff": Backoff(initial=0.1, maximum=0.5),
        "keepalive": 5,
        "connect_timeout": 3,
        **session_defaults,
    }
    api = EcoflowApiClient(http, ACCESS_KEY, SECRET_KEY, base_url=standin.url)
    world = World(broker, standin, api, http, defaults)
    try:
        yield world
    finally:
        for session in world.sessions:
            await session.stop()
        await standin.stop()
        await http.close()
        broker.cleanup()
