"""The Open API client when the cloud answers something odd: a clear error, never a crash.

The stand-in answers like the real cloud; these answers are ones it never gives
(a truncated certification, a device list that is no list, a bare JSON value),
so a small local HTTP server plays the cloud here, over real HTTP.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from typing import Any

from aiohttp import ClientSession, web
from aiohttp.test_utils import TestServer
import pytest

from custom_components.ecoflow_power.ecoflow.api import (
    PATH_CERTIFICATION,
    PATH_DEVICE_LIST,
    PATH_QUOTA_ALL,
    DeviceInfo,
    EcoflowApiClient,
)
from custom_components.ecoflow_power.ecoflow.errors import EcoflowServiceError

ACCESS_KEY = "ak-odd-answers-0001"
SECRET_KEY = "sk-odd-answers-SECRET"

Answers = dict[str, Any]


@pytest.fixture
async def odd_cloud(
    socket_enabled: None,
) -> AsyncIterator[Callable[[Answers], Any]]:
    """Start a cloud that answers each path with the body given for it."""
    servers: list[TestServer] = []
    sessions: list[ClientSession] = []

    async def start(answers: Answers) -> EcoflowApiClient:
        async def handler(request: web.Request) -> web.Response:
            return web.json_response(answers[request.path])

        app = web.Application()
        for path in answers:
            app.router.add_get(path, handler)
        server = TestServer(app, host="127.0.0.1")
        await server.start_server()
        servers.append(server)
        session = ClientSession()
        sessions.append(session)
        return EcoflowApiClient(
            session, ACCESS_KEY, SECRET_KEY, base_url=str(server.make_url("")).rstrip("/")
        )

    yield start
    for session in sessions:
        await session.close()
    for server in servers:
        await server.close()


def ok(data: Any) -> dict[str, Any]:
    return {"code": "0", "message": "Success", "data": data}


async def test_a_certification_without_the_broker_account_is_a_service_error(
    odd_cloud: Callable[[Answers], Any],
) -> None:
    client = await odd_cloud({PATH_CERTIFICATION: ok({"url": "mqtt.example", "port": "8883"})})
    with pytest.raises(EcoflowServiceError, match="lacks the broker address or account"):
        await client.certification()


async def test_a_certification_with_a_port_that_is_no_number_is_a_service_error(
    odd_cloud: Callable[[Answers], Any],
) -> None:
    answer = {
        "url": "mqtt.example",
        "port": "eighty",
        "certificateAccount": "open-x",
        "certificatePassword": "pw",
    }
    client = await odd_cloud({PATH_CERTIFICATION: ok(answer)})
    with pytest.raises(EcoflowServiceError):
        await client.certification()


async def test_a_certification_that_is_no_object_is_a_service_error(
    odd_cloud: Callable[[Answers], Any],
) -> None:
    client = await odd_cloud({PATH_CERTIFICATION: ok(["not", "an", "object"])})
    with pytest.raises(EcoflowServiceError, match="certification data is not an object"):
        await client.certification()


async def test_a_device_list_that_is_no_list_is_a_service_error(
    odd_cloud: Callable[[Answers], Any],
) -> None:
    client = await odd_cloud({PATH_DEVICE_LIST: ok({"sn": "R651ZAB5XXXX0001"})})
    with pytest.raises(EcoflowServiceError, match="device list is not a list"):
        await client.devices()


async def test_device_list_entries_without_a_serial_are_skipped(
    odd_cloud: Callable[[Answers], Any],
) -> None:
    client = await odd_cloud(
        {
            PATH_DEVICE_LIST: ok(
                [
                    "garbage",
                    {"productName": "DELTA 2"},
                    {"sn": "", "productName": "RIVER 3"},
                    {"sn": "R331ZEB4ZEA00001", "online": "online"},
                ]
            )
        }
    )
    assert await client.devices() == [
        DeviceInfo(
            sn="R331ZEB4ZEA00001", product_name="", device_name="R331ZEB4ZEA00001", online=True
        )
    ]


async def test_an_answer_that_is_no_json_object_is_a_service_error(
    odd_cloud: Callable[[Answers], Any],
) -> None:
    client = await odd_cloud({PATH_QUOTA_ALL: ["code", "0"]})
    with pytest.raises(EcoflowServiceError, match="not a JSON object"):
        await client.quota_all("R331ZEB4ZEA00001")


async def test_an_error_message_echoing_the_secret_key_hides_it(
    odd_cloud: Callable[[Answers], Any],
) -> None:
    client = await odd_cloud(
        {PATH_DEVICE_LIST: {"code": "1234", "message": f"bad signature for {SECRET_KEY}"}}
    )
    with pytest.raises(EcoflowServiceError) as caught:
        await client.devices()
    assert SECRET_KEY not in str(caught.value)
    assert "***" in str(caught.value)


def test_the_client_repr_masks_the_access_key_and_never_shows_the_secret() -> None:
    client = EcoflowApiClient(None, f" {ACCESS_KEY}\n", SECRET_KEY)  # type: ignore[arg-type]
    assert client.access_key == ACCESS_KEY  # pasted with stray whitespace
    text = repr(client)
    assert SECRET_KEY not in text
    assert ACCESS_KEY not in text
    assert "ak-o***" in text
    assert "api-e.ecoflow.com" in text
