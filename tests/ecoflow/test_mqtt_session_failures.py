"""CloudMqttSession when things go wrong: the cloud API, TLS setup, callbacks, odd traffic.

Against a real mosquitto (password file) fed by the stand-in (cloud_world.py);
a few routing rules are checked on the session's own dispatch, as a broker only
delivers the topics the session subscribed to.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import ssl
import time

import aiomqtt
import pytest

from custom_components.ecoflow_power.ecoflow.backoff import Backoff
from custom_components.ecoflow_power.ecoflow.cloud_messages import RawMessage
from custom_components.ecoflow_power.ecoflow.mqtt_session import CloudMqttSession
from custom_components.ecoflow_power.ecoflow.state import MessageSource
from simulator.devices import DEFAULT_DELTA2_SN, DEFAULT_RIVER3_SN, default_devices
from tests.ecoflow.cloud_world import (
    ACCOUNT,
    SIM_PASSWORD,
    SIM_USER,
    World,
    cloud_world,
    wait_for,
)

pytestmark = pytest.mark.broker


@pytest.fixture
async def cloud(socket_enabled: None) -> AsyncIterator[World]:
    async with cloud_world(
        default_devices(), quota_poll_interval=0, backoff=Backoff(initial=0.05, maximum=0.2)
    ) as state:
        yield state


async def test_the_session_names_the_account_the_cloud_certified(cloud: World) -> None:
    session = cloud.session()
    assert session.credentials_account is None
    await session.start()
    await wait_for(lambda: session.connected)
    assert session.credentials_account == ACCOUNT


async def test_starting_twice_keeps_one_connection(cloud: World) -> None:
    session = cloud.session()
    await session.start()
    await session.start()
    await wait_for(lambda: session.connected)
    names = [task.get_name() for task in asyncio.all_tasks()]
    assert names.count("ecoflow-mqtt-connection") == 1
    assert cloud.standin.cloud.certifications_issued == 1


async def test_an_api_error_fetching_credentials_is_retried_until_the_cloud_answers(
    cloud: World,
) -> None:
    cloud.standin.cloud.fail_next("/certification", code="5000", message="busy", times=3)
    session = cloud.session()
    await session.start()
    await wait_for(lambda: session.connected)
    assert cloud.standin.cloud.calls["/iot-open/sign/certification"] == 4
    await wait_for(lambda: [m for m in cloud.messages if m.sn == DEFAULT_RIVER3_SN])


async def test_a_failing_connection_callback_does_not_stop_the_session(cloud: World) -> None:
    calls: list[bool] = []

    def explode(connected: bool) -> None:
        calls.append(connected)
        raise RuntimeError("callback bug")

    session = cloud.session(on_connection_change=explode)
    await session.start()
    await wait_for(lambda: [m for m in cloud.messages if m.sn == DEFAULT_RIVER3_SN])
    assert session.connected
    assert calls == [True]


@pytest.mark.parametrize(
    ("failure", "reported"),
    [
        (
            FileNotFoundError(2, "No such file", "/etc/ssl/certs/ca-certificates.crt"),
            "FileNotFoundError",
        ),
        (RuntimeError("unforeseen"), "RuntimeError"),
    ],
)
async def test_a_tls_setup_failure_is_reported_and_retried_not_fatal(
    cloud: World, failure: Exception, reported: str
) -> None:
    cloud.standin.cloud.protocol = "mqtts"
    attempts: list[float] = []

    def broken_context() -> ssl.SSLContext:
        attempts.append(time.monotonic())
        raise failure

    session = cloud.session(ssl_context_factory=broken_context)
    await session.start()
    await wait_for(lambda: len(attempts) >= 3)
    assert session.stats.last_error == reported
    assert not session.connected
    await session.stop()
    count = len(attempts)
    await asyncio.sleep(0.3)
    assert len(attempts) == count  # stopped means stopped


async def test_a_json_looking_payload_that_is_not_json_is_delivered_as_bytes(
    cloud: World,
) -> None:
    session = cloud.session(devices=[DEFAULT_RIVER3_SN])
    await session.start()
    await wait_for(lambda: session.connected)
    topic = f"/app/device/property/{DEFAULT_RIVER3_SN}"
    async with aiomqtt.Client(
        cloud.broker.host, cloud.broker.port, username=SIM_USER, password=SIM_PASSWORD
    ) as client:
        await client.publish(topic, b"{truncated", qos=1)
        await client.publish(topic, b'["a", "list"]', qos=1)

    def odd() -> list[RawMessage]:
        return [m for m in cloud.messages if m.payload in (b"{truncated", b'["a", "list"]')]

    await wait_for(lambda: len(odd()) == 2)
    assert all(m.source is MessageSource.PROPERTY and m.topic == topic for m in odd())


async def test_a_snapshot_request_that_cannot_be_sent_is_dropped_quietly(cloud: World) -> None:
    session = cloud.session(devices=[DEFAULT_RIVER3_SN, DEFAULT_DELTA2_SN])
    never_connected = aiomqtt.Client(cloud.broker.host, cloud.broker.port)
    await session._request_snapshots(never_connected, [DEFAULT_RIVER3_SN, DEFAULT_DELTA2_SN])
    assert session.stats.snapshot_requests == 0


def _message(topic: str, payload: bytes = b"{}") -> aiomqtt.Message:
    return aiomqtt.Message(topic, payload, qos=1, retain=False, mid=1, properties=None)


@pytest.mark.parametrize(
    "topic",
    [
        f"/open/{ACCOUNT}/{DEFAULT_RIVER3_SN}/set_reply",  # a kind of /open topic not read
        f"/app/device/status/{DEFAULT_RIVER3_SN}",
        f"/app/{ACCOUNT}/{DEFAULT_RIVER3_SN}/thing/property/set_reply",
        "/something/else",
        f"/app/device/property/{DEFAULT_DELTA2_SN}",  # a device the session does not manage
    ],
)
def test_messages_on_topics_the_session_does_not_read_are_ignored(topic: str) -> None:
    delivered: list[RawMessage] = []
    session = CloudMqttSession(
        None,  # type: ignore[arg-type]  # no API call is made by routing
        client_id="routing",
        devices=[DEFAULT_RIVER3_SN],
        on_message=delivered.append,
    )
    session._dispatch(_message(topic))
    assert delivered == []
    assert session.last_message_at(DEFAULT_RIVER3_SN) is None
    assert session.last_message_at(DEFAULT_DELTA2_SN) is None


def test_a_status_notice_is_delivered_but_is_not_telemetry() -> None:
    delivered: list[RawMessage] = []
    session = CloudMqttSession(
        None,  # type: ignore[arg-type]
        client_id="routing",
        devices=[DEFAULT_RIVER3_SN],
        on_message=delivered.append,
        clock=lambda: 1234.0,
    )
    session._dispatch(_message(f"/open/{ACCOUNT}/{DEFAULT_RIVER3_SN}/status", b'{"online": 0}'))
    assert [(m.sn, m.source, m.payload) for m in delivered] == [
        (DEFAULT_RIVER3_SN, MessageSource.STATUS, {"online": 0})
    ]
    assert session.last_message_at(DEFAULT_RIVER3_SN) is None
