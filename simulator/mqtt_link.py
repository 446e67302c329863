"""The devices' side of the broker: publish telemetry, answer snapshot requests.

Runs as its own MQTT user, so rotating the account handed out by
certification never cuts the simulated devices off. Reconnects on its own
when the broker restarts (tests do that on purpose).
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Iterable
import contextlib
import logging

import aiomqtt

from .devices import Outgoing

_LOGGER = logging.getLogger(__name__)

GET_FILTER = "/app/+/+/thing/property/get"

# (account, sn, payload) -> what to publish in answer.
GetHandler = Callable[[str, str, bytes], Iterable[Outgoing]]


class MqttLink:
    def __init__(
        self,
        host: str,
        port: int,
        *,
        username: str | None,
        password: str | None,
        client_id: str = "ecoflow-simulator",
        on_get: GetHandler,
        on_connect: Callable[[], Awaitable[None]] | None = None,
        retry_delay: float = 0.3,
    ) -> None:
        self._host = host
        self._port = port
        self._username = username
        self._password = password
        self._client_id = client_id
        self._on_get = on_get
        self._on_connect = on_connect
        self._retry_delay = retry_delay
        self._client: aiomqtt.Client | None = None
        self._task: asyncio.Task[None] | None = None
        self._connected = asyncio.Event()

    @property
    def connected(self) -> bool:
        return self._client is not None

    async def start(self) -> None:
        self._task = asyncio.create_task(self._run(), name="simulator-mqtt-link")

    async def wait_connected(self, limit: float = 10) -> None:
        async with asyncio.timeout(limit):
            await self._connected.wait()

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        self._client = None

    async def publish(self, out: Outgoing) -> bool:
        client = self._client
        if client is None:
            return False
        try:
            await client.publish(out.topic, out.payload, qos=0)
        except aiomqtt.MqttError, OSError:
            # The broker went away mid-publish; the run loop reconnects.
            return False
        return True

    async def _run(self) -> None:
        while True:
            client: aiomqtt.Client | None = None
            try:
                client = aiomqtt.Client(
                    self._host,
                    self._port,
                    username=self._username,
                    password=self._password,
                    identifier=self._client_id,
                    protocol=aiomqtt.ProtocolVersion.V311,
                    keepalive=10,
                    # Bounds every publish: one lost on a dying socket must
                    # not hold up the ticker for long.
                    timeout=2,
                )
                async with client:
                    await client.subscribe(GET_FILTER, qos=1)
                    self._client = client
                    self._connected.set()
                    _LOGGER.debug("simulator link connected to %s:%s", self._host, self._port)
                    if self._on_connect is not None:
                        await self._on_connect()
                    async for message in client.messages:
                        await self._handle(message)
            except aiomqtt.MqttError as err:
                _LOGGER.debug("simulator link lost: %s", err)
            except Exception:
                # Never let the devices fall silent for good over one bad moment.
                _LOGGER.exception("simulator link failed; reconnecting")
            finally:
                self._client = None
                self._connected.clear()
                if client is not None:
                    _consume_disconnect_error(client)
            await asyncio.sleep(self._retry_delay)

    async def _handle(self, message: aiomqtt.Message) -> None:
        parts = str(message.topic).split("/")
        # "", "app", account, sn, "thing", "property", "get"
        if len(parts) != 7:
            return
        payload = bytes(message.payload) if isinstance(message.payload, bytes | bytearray) else b""
        for out in self._on_get(parts[2], parts[3], payload):
            await self.publish(out)


def _consume_disconnect_error(client: aiomqtt.Client) -> None:
    # aiomqtt stores why the connection ended in a future that nobody awaits
    # when the drop happens outside message iteration; reading it here keeps
    # asyncio from logging "Future exception was never retrieved".
    future = getattr(client, "_disconnected", None)
    if isinstance(future, asyncio.Future) and future.done() and not future.cancelled():
        future.exception()
