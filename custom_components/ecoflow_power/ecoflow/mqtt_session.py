"""One long-lived connection to the EcoFlow cloud broker for a set of devices.

The session owns three background jobs: the MQTT connection (with reconnects
and credential refresh), periodic snapshot requests (devices go quiet when
nobody asks), and a slow ``quota/all`` poll over HTTPS as a safety net. It
delivers every message as a ``RawMessage``; decoding is someone else's job.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable, Mapping, Sequence
import contextlib
from dataclasses import dataclass
import logging
import random
import ssl
import time
from typing import Any

import aiomqtt

from .api import PATH_QUOTA_ALL, EcoflowApiClient, MqttCredentials
from .backoff import Backoff
from .cloud_messages import (
    RawMessage,
    device_topics,
    is_refused_credentials,
    latest_quotas_json,
    latest_quotas_protobuf,
    maybe_json,
    route,
)
from .errors import EcoflowAuthError, EcoflowDeviceNotSupportedError, EcoflowError
from .state import MessageSource

_LOGGER = logging.getLogger(__name__)

# After this many failed attempts in a row, refresh the credentials anyway: an
# expired password is not always reported as a refusal.
_REFRESH_AFTER_FAILURES = 5


@dataclass
class SessionStats:
    connects: int = 0
    reconnects: int = 0
    credential_refreshes: int = 0
    refusals: int = 0
    messages: int = 0
    snapshot_requests: int = 0
    quota_polls: int = 0
    quota_unchanged: int = 0
    last_error: str | None = None


class CloudMqttSession:
    """Subscribe to the devices' topics on the cloud broker and keep data coming."""

    def __init__(
        self,
        api: EcoflowApiClient,
        *,
        client_id: str,
        devices: Sequence[str],
        on_message: Callable[[RawMessage], None],
        on_connection_change: Callable[[bool], None] | None = None,
        snapshot_interval: float = 30,
        quota_poll_interval: float = 300,
        clock: Callable[[], float] = time.time,
        ssl_context_factory: Callable[[], ssl.SSLContext] | None = None,
        backoff: Backoff | None = None,
        keepalive: int = 60,
        connect_timeout: float = 15,
    ) -> None:
        self._api = api
        self._client_id = client_id
        self._devices: list[str] = list(dict.fromkeys(devices))
        self._on_message = on_message
        self._on_connection_change = on_connection_change
        self._snapshot_interval = snapshot_interval
        self._quota_poll_interval = quota_poll_interval
        self._clock = clock
        self._ssl_context_factory = ssl_context_factory or ssl.create_default_context
        self._backoff = backoff or Backoff(initial=1.0, maximum=300.0)
        self._keepalive = keepalive
        self._connect_timeout = connect_timeout

        self.stats = SessionStats()
        self._connected = False
        self._credentials: MqttCredentials | None = None
        self._ssl_context: ssl.SSLContext | None = None
        self._client: aiomqtt.Client | None = None
        self._subscribed: set[str] = set()
        self._last_message: dict[str, float] = {}
        self._last_quota: dict[str, dict[str, Any]] = {}
        # Learned from traffic: which request a device answers. Unknown
        # devices get both kinds; each family ignores the other's.
        self._json_devices: set[str] = set()
        self._protobuf_devices: set[str] = set()
        self._not_supported: set[str] = set()
        self._request_ids = random.randint(100_000_000, 900_000_000)
        self._tasks: set[asyncio.Task[Any]] = set()
        self._running = False
        self._certifications = 0
        # True from the first failure logged until the session connects again.
        self._outage_logged = False

    # -- public -----------------------------------------------------------------

    @property
    def connected(self) -> bool:
        return self._connected

    @property
    def devices(self) -> list[str]:
        return list(self._devices)

    @property
    def credentials_account(self) -> str | None:
        return self._credentials.username if self._credentials else None

    def _account(self) -> str:
        return self._credentials.username if self._credentials else ""

    def last_message_at(self, sn: str) -> float | None:
        """When telemetry for ``sn`` last arrived (status notices do not count)."""
        return self._last_message.get(sn)

    async def start(self) -> None:
        """Start the background jobs and return at once."""
        if self._running:
            return
        self._running = True
        self._spawn(self._connection_loop(), "ecoflow-mqtt-connection")
        if self._quota_poll_interval > 0:
            self._spawn(self._quota_poll_loop(), "ecoflow-quota-poll")

    async def stop(self) -> None:
        """Stop every job and disconnect; nothing keeps running afterwards."""
        self._running = False
        tasks = list(self._tasks)
        for task in tasks:
            task.cancel()
        for task in tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        # aiomqtt cancels its own queue-reader task on the way out; one loop
        # turn lets that cancellation finish before we report stopped.
        await asyncio.sleep(0)
        self._client = None
        self._subscribed.clear()
        self._set_connected(False)

    def set_devices(self, sns: Iterable[str]) -> None:
        """Follow a new set of devices: (un)subscribe and ask the new ones for data."""
        self._devices = list(dict.fromkeys(sns))
        client = self._client
        if client is not None and self._connected:
            self._spawn(self._sync_subscriptions(client), "ecoflow-mqtt-resubscribe")

    # -- connection ---------------------------------------------------------------

    def _spawn(self, coro: Any, name: str) -> asyncio.Task[Any]:
        task = asyncio.create_task(coro, name=name)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    def _set_connected(self, value: bool) -> None:
        if self._connected == value:
            return
        self._connected = value
        if self._on_connection_change is not None:
            try:
                self._on_connection_change(value)
            except Exception:
                _LOGGER.exception("connection-change callback failed")

    def _log_failure(
        self, reason: str, *, level: int = logging.INFO, exc_info: bool = False
    ) -> None:
        """The first failure since the cloud was last reachable is logged; later attempts at debug.

        A cloud that stays away for hours retries every few minutes: one line
        says it went, one (in _connect_and_listen) says it is back.
        """
        if self._outage_logged:
            _LOGGER.debug("EcoFlow cloud reconnect attempt failed: %s", reason, exc_info=exc_info)
            return
        self._outage_logged = True
        _LOGGER.log(
            level,
            "EcoFlow cloud connection unavailable (%s); reconnecting in the background",
            reason,
            exc_info=exc_info,
        )

    async def _connection_loop(self) -> None:
        failures = 0
        while True:
            connects_before = self.stats.connects
            try:
                if self._credentials is None or failures >= _REFRESH_AFTER_FAILURES:
                    await self._refresh_credentials()
                    failures = 0
                await self._connect_and_listen()
                # Only returns after a clean end of the message stream.
                self._log_failure("the broker ended the session")
            except EcoflowAuthError as err:
                self.stats.last_error = str(err)
                self._log_failure(f"EcoFlow refused the API keys: {err}", level=logging.WARNING)
            except EcoflowError as err:
                self.stats.last_error = str(err)
                self._log_failure(f"cannot fetch the MQTT credentials: {err}")
            except aiomqtt.MqttError as err:
                self.stats.last_error = f"{type(err).__name__}: {err}"
                if is_refused_credentials(err):
                    self.stats.refusals += 1
                    # Forget them so the next attempt starts with fresh ones.
                    self._credentials = None
                    self._log_failure("the broker refused the credentials; refreshing them")
                else:
                    self._log_failure(f"connection lost: {err}")
            except OSError as err:
                self.stats.last_error = f"{type(err).__name__}"
                self._log_failure(f"connection failed: {type(err).__name__}")
            except Exception as err:
                # The session is what keeps a UPS informed: log and retry
                # rather than die on something unforeseen.
                self.stats.last_error = f"{type(err).__name__}"
                self._log_failure(
                    f"unexpected error: {type(err).__name__}", level=logging.ERROR, exc_info=True
                )
            finally:
                self._client = None
                self._subscribed.clear()
                self._set_connected(False)
            failures = 1 if self.stats.connects > connects_before else failures + 1
            delay = self._backoff.next_delay()
            _LOGGER.debug("Next EcoFlow cloud connection attempt in %.1f s", delay)
            await asyncio.sleep(delay)

    async def _refresh_credentials(self) -> None:
        credentials = await self._api.certification()
        if self._certifications:
            self.stats.credential_refreshes += 1
        self._certifications += 1
        self._credentials = credentials

    async def _tls_context(self, credentials: MqttCredentials) -> ssl.SSLContext | None:
        if not credentials.use_tls:
            return None
        if self._ssl_context is None:
            # Loading the CA bundle reads files: keep it off the event loop.
            self._ssl_context = await asyncio.to_thread(self._ssl_context_factory)
        return self._ssl_context

    async def _connect_and_listen(self) -> None:
        credentials = self._credentials
        assert credentials is not None
        client = aiomqtt.Client(
            credentials.host,
            credentials.port,
            username=credentials.username,
            password=credentials.password,
            # One stable id: the cloud limits distinct ids per account and day.
            identifier=self._client_id,
            protocol=aiomqtt.ProtocolVersion.V311,
            clean_session=True,
            keepalive=self._keepalive,
            timeout=self._connect_timeout,
            tls_context=await self._tls_context(credentials),
        )
        try:
            async with client:
                if self.stats.connects:
                    self.stats.reconnects += 1
                self.stats.connects += 1
                self._backoff.reset()
                self._client = client
                await self._sync_subscriptions(client)
                self._set_connected(True)
                if self._outage_logged:
                    self._outage_logged = False
                    _LOGGER.info(
                        "EcoFlow cloud connection is back (broker %s:%s)",
                        credentials.host,
                        credentials.port,
                    )
                else:  # the first connection: every later one follows a logged outage
                    _LOGGER.info(
                        "Connected to EcoFlow broker %s:%s", credentials.host, credentials.port
                    )
                snapshots = self._spawn(self._snapshot_loop(client), "ecoflow-snapshot-requests")
                try:
                    async for message in client.messages:
                        self._dispatch(message)
                finally:
                    snapshots.cancel()
                    with contextlib.suppress(asyncio.CancelledError):
                        await snapshots
        finally:
            _consume_disconnect_error(client)

    # -- topics -----------------------------------------------------------------

    async def _sync_subscriptions(self, client: aiomqtt.Client) -> None:
        account = self._account()
        wanted = {topic for sn in self._devices for topic in device_topics(account, sn)}
        added = sorted(wanted - self._subscribed)
        removed = sorted(self._subscribed - wanted)
        if removed:
            await client.unsubscribe(removed)
        if added:
            await client.subscribe([(topic, 1) for topic in added])
        self._subscribed = wanted
        new_devices = [
            sn for sn in self._devices if any(t in added for t in device_topics(account, sn))
        ]
        if new_devices and self._connected:
            await self._request_snapshots(client, new_devices)

    def _dispatch(self, message: aiomqtt.Message) -> None:
        topic = str(message.topic)
        routed = route(topic)
        if routed is None:
            return
        sn, source = routed
        if sn not in self._devices:
            return
        raw = message.payload
        data = bytes(raw) if isinstance(raw, bytes | bytearray) else str(raw or "").encode()
        payload = maybe_json(data)
        now = self._clock()
        if source is not MessageSource.STATUS:
            self._last_message[sn] = now
            if source in (MessageSource.PROPERTY, MessageSource.GET_REPLY):
                (
                    self._json_devices if isinstance(payload, Mapping) else self._protobuf_devices
                ).add(sn)
            elif source is MessageSource.OPEN_QUOTA:
                self._json_devices.add(sn)
        self._deliver(RawMessage(sn, source, payload, now, topic))

    def _deliver(self, message: RawMessage) -> None:
        self.stats.messages += 1
        try:
            self._on_message(message)
        except Exception:
            _LOGGER.exception("message handler failed for %s", message.sn)

    # -- snapshot requests --------------------------------------------------------

    async def _snapshot_loop(self, client: aiomqtt.Client) -> None:
        while True:
            await self._request_snapshots(client, self._devices)
            await asyncio.sleep(self._snapshot_interval)

    async def _request_snapshots(self, client: aiomqtt.Client, sns: Iterable[str]) -> None:
        account = self._account()
        for sn in sns:
            topic = f"/app/{account}/{sn}/thing/property/get"
            self._request_ids += 1
            payloads = []
            if sn not in self._protobuf_devices:
                payloads.append(latest_quotas_json(self._request_ids))
            if sn not in self._json_devices:
                payloads.append(latest_quotas_protobuf(self._request_ids))
            for payload in payloads:
                try:
                    await client.publish(topic, payload, qos=1)
                except aiomqtt.MqttError as err:
                    _LOGGER.debug("snapshot request for %s not sent: %s", sn, err)
                    return
                self.stats.snapshot_requests += 1

    # -- HTTPS safety net ---------------------------------------------------------

    async def _quota_poll_loop(self) -> None:
        while True:
            for sn in list(self._devices):
                if sn not in self._not_supported:
                    await self._poll_quota(sn)
            await asyncio.sleep(self._quota_poll_interval)

    async def _poll_quota(self, sn: str) -> None:
        try:
            data = await self._api.quota_all(sn)
        except EcoflowDeviceNotSupportedError:
            # River 3 family: MQTT only. Do not ask again.
            self._not_supported.add(sn)
            _LOGGER.debug("%s is not served by quota/all; MQTT only", sn)
            return
        except EcoflowError as err:
            _LOGGER.debug("quota/all for %s failed: %s", sn, err)
            return
        self.stats.quota_polls += 1
        if data == self._last_quota.get(sn):
            # A byte-identical full snapshot is the cloud's cached copy, not
            # news: it must not make frozen telemetry look fresh.
            self.stats.quota_unchanged += 1
            return
        self._last_quota[sn] = data
        now = self._clock()
        self._last_message[sn] = now
        self._json_devices.add(sn)
        self._deliver(
            RawMessage(sn, MessageSource.HTTP_QUOTA, data, now, f"{PATH_QUOTA_ALL}?sn={sn}")
        )


def _consume_disconnect_error(client: aiomqtt.Client) -> None:
    # aiomqtt keeps why a connection ended in a future nobody awaits when the
    # drop happens outside message iteration; reading it keeps asyncio from
    # logging "Future exception was never retrieved" on every outage.
    future = getattr(client, "_disconnected", None)
    if isinstance(future, asyncio.Future) and future.done() and not future.cancelled():
        future.exception()
