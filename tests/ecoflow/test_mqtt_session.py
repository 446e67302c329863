"""CloudMqttSession against a real mosquitto (password file) fed by the stand-in."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
import logging
import threading
import time

import aiomqtt
import pytest

from custom_components.ecoflow_power.ecoflow.api import EcoflowApiClient
from custom_components.ecoflow_power.ecoflow.backoff import Backoff
from custom_components.ecoflow_power.ecoflow.cloud_messages import (
    RawMessage,
    is_refused_credentials,
    latest_quotas_json,
    latest_quotas_protobuf,
)
from custom_components.ecoflow_power.ecoflow.proto import envelope_pb2, power_station_pb2
from custom_components.ecoflow_power.ecoflow.state import MessageSource
from simulator import protobuf_codec
from simulator.devices import DEFAULT_DELTA2_SN, DEFAULT_RIVER3_SN, default_devices, river3
from tests.ecoflow.cloud_world import (
    ACCESS_KEY,
    ACCOUNT,
    MQTT_PASSWORD,
    SECRET_KEY,
    World,
    cloud_world,
    wait_for,
)

pytestmark = pytest.mark.broker

OTHER_SN = "R651ZAB5XXXX0099"


def leftover_tasks(before: set[asyncio.Task[object]], world: World) -> list[asyncio.Task[object]]:
    """Tasks started since ``before`` and still alive, except the stand-in's.

    The stand-in's web server keeps one handler task per kept-alive HTTP
    connection, and its own MQTT client starts a queue reader per message;
    those belong to the stand-in, not to the session.
    """
    link_client = world.standin.link._client

    def stand_ins(task: asyncio.Task[object]) -> bool:
        coro = task.get_coro()
        if "RequestHandler" in repr(coro):
            return True
        owner = getattr(getattr(coro, "cr_frame", None), "f_locals", {}).get("self")
        return link_client is not None and owner is link_client._queue

    return [t for t in asyncio.all_tasks() - before if not t.done() and not stand_ins(t)]


@pytest.fixture
async def world(socket_enabled: None) -> AsyncIterator[World]:
    async with cloud_world(
        [*default_devices(), river3(OTHER_SN)], rotating_passwords=True
    ) as state:
        yield state


def decode_push(payload: bytes) -> tuple[envelope_pb2.Header, bytes]:
    message = envelope_pb2.HeaderMessage()
    message.ParseFromString(payload)
    assert len(message.header) == 1
    header = message.header[0]
    return header, protobuf_codec.obfuscate(header.pdata, header.seq)


async def test_receives_protobuf_and_json_for_the_selected_devices(world: World) -> None:
    session = world.session()
    await session.start()
    wanted_types = {"pdStatus", "invStatus", "emsStatus", "bmsStatus"}

    def type_codes() -> set[str]:
        quota = world.of(DEFAULT_DELTA2_SN, MessageSource.OPEN_QUOTA)
        return {m.payload["typeCode"] for m in quota if isinstance(m.payload, dict)}

    await wait_for(
        lambda: (
            len(world.of(DEFAULT_RIVER3_SN, MessageSource.PROPERTY)) >= 8
            and wanted_types <= type_codes()
        )
    )
    assert session.connected
    assert world.changes == [True]

    # River 3: obfuscated protobuf pushes, delivered as raw bytes.
    pushes = world.of(DEFAULT_RIVER3_SN, MessageSource.PROPERTY)
    assert all(isinstance(m.payload, bytes) for m in pushes)
    assert pushes[0].topic == f"/app/device/property/{DEFAULT_RIVER3_SN}"
    displays = []
    for message in pushes:
        assert isinstance(message.payload, bytes)
        header, pdata = decode_push(message.payload)
        assert header.enc_type == 1
        assert header.src != 32
        if (header.cmd_func, header.cmd_id) == (254, 21):
            displays.append(power_station_pb2.DisplayPropertyUpload.FromString(pdata))
    assert displays
    assert any(d.HasField("cms_batt_soc") for d in displays)

    # Delta 2: Open-API JSON pushes, delivered parsed.
    quota = world.of(DEFAULT_DELTA2_SN, MessageSource.OPEN_QUOTA)
    assert quota[0].topic == f"/open/{ACCOUNT}/{DEFAULT_DELTA2_SN}/quota"
    assert all(isinstance(m.payload, dict) for m in quota)

    # A device on the same account that the session was not asked about.
    await asyncio.sleep(0.5)
    assert not [m for m in world.messages if m.sn == OTHER_SN]
    assert session.stats.messages == len(world.messages)


async def test_snapshot_requests_are_answered(world: World) -> None:
    session = world.session()
    await session.start()
    await wait_for(
        lambda: (
            world.of(DEFAULT_RIVER3_SN, MessageSource.GET_REPLY)
            and world.of(DEFAULT_DELTA2_SN, MessageSource.GET_REPLY)
        )
    )
    reply = world.of(DEFAULT_RIVER3_SN, MessageSource.GET_REPLY)[0]
    assert reply.topic == f"/app/{ACCOUNT}/{DEFAULT_RIVER3_SN}/thing/property/get_reply"
    assert isinstance(reply.payload, bytes)
    envelope = envelope_pb2.HeaderMessage.FromString(reply.payload)
    kinds = [(h.cmd_func, h.cmd_id) for h in envelope.header]
    assert kinds == [(32, 2), (254, 21), (32, 50), (254, 22)]
    assert all(not h.HasField("enc_type") for h in envelope.header)  # snapshot replies are plain
    display = power_station_pb2.DisplayPropertyUpload.FromString(envelope.header[1].pdata)
    assert display.plug_in_info_ac_charger_flag == 1
    assert display.flow_info_ac_in == 2

    json_reply = world.of(DEFAULT_DELTA2_SN, MessageSource.GET_REPLY)[0].payload
    assert isinstance(json_reply, dict)
    assert json_reply["operateType"] == "latestQuotas"
    assert "bms_emsStatus.lcdShowSoc" in json_reply["data"]["quotaMap"]

    # Requests repeat on the interval (devices stop talking when nobody asks).
    first = session.stats.snapshot_requests
    await wait_for(lambda: session.stats.snapshot_requests > first)
    await wait_for(lambda: len(world.of(DEFAULT_RIVER3_SN, MessageSource.GET_REPLY)) >= 2)


async def test_quota_poll_delivers_json_devices_and_skips_1006(world: World) -> None:
    session = world.session()
    await session.start()
    await wait_for(lambda: world.of(DEFAULT_DELTA2_SN, MessageSource.HTTP_QUOTA))
    polled = world.of(DEFAULT_DELTA2_SN, MessageSource.HTTP_QUOTA)[0]
    assert isinstance(polled.payload, dict)
    assert "inv.acInVol" in polled.payload
    # Several poll rounds later the River 3 was asked exactly once.
    await wait_for(lambda: world.standin.cloud.quota_requests.get(DEFAULT_DELTA2_SN, 0) >= 3)
    assert world.standin.cloud.quota_requests[DEFAULT_RIVER3_SN] == 1
    assert not world.of(DEFAULT_RIVER3_SN, MessageSource.HTTP_QUOTA)


async def test_survives_a_broker_restart(world: World) -> None:
    session = world.session()
    await session.start()
    await wait_for(
        lambda: session.connected and world.of(DEFAULT_RIVER3_SN, MessageSource.PROPERTY)
    )

    await asyncio.to_thread(world.broker.restart)
    restarted = time.time()
    await wait_for(lambda: False in world.changes)
    await wait_for(
        lambda: (
            session.connected
            and world.of(DEFAULT_RIVER3_SN, MessageSource.PROPERTY, since=restarted)
            and world.of(DEFAULT_DELTA2_SN, MessageSource.OPEN_QUOTA, since=restarted)
        )
    )
    assert world.changes[:3] == [True, False, True]
    assert session.stats.reconnects >= 1
    assert session.stats.connects == session.stats.reconnects + 1
    # Same credentials still good: no refusal, no refresh.
    assert session.stats.refusals == 0
    assert session.stats.credential_refreshes == 0


def session_records(caplog: pytest.LogCaptureFixture, level: int) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.endswith("ecoflow.mqtt_session") and r.levelno == level
    ]


async def test_a_long_outage_is_logged_once_when_it_starts_and_once_when_it_ends(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    """Reconnect attempts go to debug: hours without the cloud are two lines, not hundreds."""
    caplog.set_level(logging.DEBUG)
    session = world.session()
    await session.start()
    await wait_for(lambda: session.connected)
    assert session_records(caplog, logging.INFO) == [
        f"Connected to EcoFlow broker {world.broker.host}:{world.broker.port}"
    ]
    caplog.clear()

    await asyncio.to_thread(world.broker.stop)
    await wait_for(
        lambda: (
            len([m for m in session_records(caplog, logging.DEBUG) if "attempt failed" in m]) >= 3
        )
    )
    await asyncio.to_thread(world.broker.start)
    await wait_for(lambda: session.connected)
    infos = session_records(caplog, logging.INFO)
    assert len(infos) == 2, infos
    assert infos[0].startswith("EcoFlow cloud connection unavailable (connection lost")
    assert infos[1] == (
        f"EcoFlow cloud connection is back (broker {world.broker.host}:{world.broker.port})"
    )
    assert not session_records(caplog, logging.WARNING)
    assert not session_records(caplog, logging.ERROR)

    # The next outage is logged again: the flag was reset by the return.
    caplog.clear()
    await asyncio.to_thread(world.broker.restart)
    await wait_for(lambda: session.connected and session.stats.reconnects >= 2)
    await wait_for(lambda: len(session_records(caplog, logging.INFO)) == 2)
    infos = session_records(caplog, logging.INFO)
    assert "unavailable" in infos[0]
    assert "is back" in infos[1]


async def test_refused_api_keys_are_a_single_warning_while_retrying(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world.api = EcoflowApiClient(
        world.http, ACCESS_KEY, "sk-wrong-SECRET", base_url=world.standin.url
    )
    session = world.session()
    await session.start()
    await wait_for(lambda: world.standin.cloud.calls.get("/iot-open/sign/certification", 0) >= 3)
    warnings = session_records(caplog, logging.WARNING)
    assert len(warnings) == 1, warnings
    assert "refused the API keys" in warnings[0]
    assert not session_records(caplog, logging.INFO)
    assert not session_records(caplog, logging.ERROR)


async def test_refused_credentials_are_refreshed(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    session = world.session()
    await session.start()
    await wait_for(
        lambda: session.connected and world.of(DEFAULT_DELTA2_SN, MessageSource.OPEN_QUOTA)
    )
    assert world.standin.cloud.certifications_issued == 1

    new_password = await world.standin.rotate_credentials()
    rotated = time.time()
    await wait_for(
        lambda: (
            session.connected
            and world.of(DEFAULT_DELTA2_SN, MessageSource.OPEN_QUOTA, since=rotated)
            and world.of(DEFAULT_RIVER3_SN, MessageSource.PROPERTY, since=rotated)
        )
    )
    assert session.stats.refusals >= 1
    assert session.stats.credential_refreshes == 1
    assert world.standin.cloud.certifications_issued == 2
    for secret in (SECRET_KEY, MQTT_PASSWORD, new_password):
        assert secret not in caplog.text
        assert secret not in repr(session.stats)


async def test_broker_refusal_is_recognised(world: World) -> None:
    with pytest.raises(aiomqtt.MqttError) as caught:
        async with aiomqtt.Client(
            world.broker.host,
            world.broker.port,
            username=ACCOUNT,
            password="not-the-password",
            protocol=aiomqtt.ProtocolVersion.V311,
        ):
            pass
    assert is_refused_credentials(caught.value)
    assert not is_refused_credentials(aiomqtt.MqttError("Disconnected during message iteration"))


async def test_staleness_is_visible_per_device(world: World) -> None:
    session = world.session()
    await session.start()
    await wait_for(
        lambda: (
            session.last_message_at(DEFAULT_RIVER3_SN)
            and session.last_message_at(DEFAULT_DELTA2_SN)
        )
    )
    world.standin.set_scenario(DEFAULT_RIVER3_SN, "stall")
    world.standin.set_scenario(DEFAULT_DELTA2_SN, "stall")
    await asyncio.sleep(0.6)  # let in-flight messages land
    frozen_river = session.last_message_at(DEFAULT_RIVER3_SN)
    frozen_delta = session.last_message_at(DEFAULT_DELTA2_SN)
    # Snapshot requests and quota polls go on all the while.
    requests_before = session.stats.snapshot_requests
    await asyncio.sleep(1.5)
    assert session.stats.snapshot_requests > requests_before
    assert session.last_message_at(DEFAULT_RIVER3_SN) == frozen_river
    assert session.last_message_at(DEFAULT_DELTA2_SN) == frozen_delta
    assert session.connected

    world.standin.set_scenario(DEFAULT_RIVER3_SN, "steady")
    await wait_for(lambda: session.last_message_at(DEFAULT_RIVER3_SN) != frozen_river)
    assert session.last_message_at(DEFAULT_DELTA2_SN) == frozen_delta
    assert session.last_message_at("UNKNOWN") is None


async def test_stop_leaves_no_task_behind(world: World) -> None:
    before = asyncio.all_tasks()
    session = world.session()
    await session.start()
    await wait_for(lambda: session.connected and session.stats.snapshot_requests)
    assert {t.get_name() for t in asyncio.all_tasks() - before} >= {
        "ecoflow-mqtt-connection",
        "ecoflow-quota-poll",
        "ecoflow-snapshot-requests",
    }
    await session.stop()
    assert leftover_tasks(before, world) == []
    assert not session.connected
    assert world.changes == [True, False]
    # Stopping twice is harmless, and a stopped session receives nothing.
    await session.stop()
    count = len(world.messages)
    await asyncio.sleep(0.5)
    assert len(world.messages) == count


async def test_stop_while_the_broker_is_down(world: World) -> None:
    before = asyncio.all_tasks()
    world.broker.stop()
    session = world.session()
    await session.start()
    await wait_for(lambda: session.stats.last_error is not None)
    await session.stop()
    assert leftover_tasks(before, world) == []
    assert session.stats.connects == 0


async def test_set_devices_follows_the_selection(world: World) -> None:
    session = world.session(devices=[DEFAULT_RIVER3_SN])
    await session.start()
    await wait_for(lambda: world.of(DEFAULT_RIVER3_SN, MessageSource.PROPERTY))
    assert not world.of(OTHER_SN, MessageSource.PROPERTY)

    session.set_devices([OTHER_SN])
    await wait_for(lambda: world.of(OTHER_SN, MessageSource.GET_REPLY))
    switched = time.time() + 0.3  # messages already in flight may still land
    await asyncio.sleep(0.8)
    assert world.of(OTHER_SN, MessageSource.PROPERTY, since=switched)
    assert not world.of(DEFAULT_RIVER3_SN, MessageSource.PROPERTY, since=switched)
    assert session.devices == [OTHER_SN]


async def test_a_failing_handler_does_not_stop_the_stream(world: World) -> None:
    calls: list[RawMessage] = []

    def explode(message: RawMessage) -> None:
        calls.append(message)
        raise RuntimeError("handler bug")

    session = world.session(devices=[DEFAULT_RIVER3_SN])
    session._on_message = explode  # the handler under test
    await session.start()
    await wait_for(lambda: len(calls) >= 5)
    assert session.connected


async def test_refused_api_keys_keep_retrying_without_leaking(
    world: World, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    world.api = EcoflowApiClient(
        world.http, ACCESS_KEY, "sk-wrong-SECRET", base_url=world.standin.url
    )
    session = world.session()
    await session.start()
    await wait_for(lambda: world.standin.cloud.calls.get("/iot-open/sign/certification", 0) >= 2)
    assert not session.connected
    assert "8513" in (session.stats.last_error or "")
    assert "sk-wrong-SECRET" not in caplog.text


async def test_tls_context_is_built_off_the_event_loop(world: World) -> None:
    world.standin.cloud.protocol = "mqtts"
    threads: list[int] = []

    def factory():  # type: ignore[no-untyped-def]
        import ssl

        threads.append(threading.get_ident())
        return ssl.create_default_context()

    session = world.session(ssl_context_factory=factory)
    await session.start()
    # The local broker speaks plain MQTT, so the TLS handshake fails; what
    # matters is that TLS was attempted with a context built in a worker thread.
    await wait_for(lambda: session.stats.last_error is not None)
    assert threads
    assert threads[0] != threading.get_ident()
    assert not session.connected
    assert len(set(threads)) == 1 or len(threads) == 1  # built once, then reused


def test_snapshot_request_payloads() -> None:
    request = latest_quotas_protobuf(seq=42)
    envelope = envelope_pb2.HeaderMessage.FromString(request)
    assert len(envelope.header) == 1
    assert getattr(envelope.header[0], "from") == "Android"
    assert envelope.header[0].seq == 42
    assert not envelope.header[0].pdata
    assert protobuf_codec.is_snapshot_request(request)

    import json

    body = json.loads(latest_quotas_json(7))
    assert body == {
        "from": "HomeAssistant",
        "id": "7",
        "version": "1.1",
        "moduleType": 0,
        "operateType": "latestQuotas",
        "params": {},
    }
    assert not protobuf_codec.is_snapshot_request(latest_quotas_json(7))


def test_backoff_is_capped_exponential_with_jitter() -> None:
    plain = Backoff(initial=1, maximum=10, jitter=0)
    assert [plain.next_delay() for _ in range(6)] == [1, 2, 4, 8, 10, 10]
    plain.reset()
    assert plain.next_delay() == 1
    low = Backoff(initial=4, maximum=100, jitter=0.25, rand=lambda: 0.0)
    high = Backoff(initial=4, maximum=100, jitter=0.25, rand=lambda: 1.0)
    assert low.next_delay() == 3.0
    assert high.next_delay() == 5.0
