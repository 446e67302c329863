"""The Open API client against the stand-in over real HTTP on 127.0.0.1."""

from __future__ import annotations

from collections.abc import AsyncIterator
import logging
import time

import aiohttp
import pytest

from custom_components.ecoflow_power.ecoflow.api import (
    DeviceInfo,
    EcoflowApiClient,
    MqttCredentials,
    Region,
)
from custom_components.ecoflow_power.ecoflow.errors import (
    EcoflowAuthError,
    EcoflowConnectionError,
    EcoflowDeviceNotSupportedError,
    EcoflowError,
    EcoflowRateLimitError,
    EcoflowServiceError,
)
from simulator.devices import DEFAULT_DELTA2_SN, DEFAULT_RIVER3_SN
from simulator.standin import StandIn
from tests.helpers.mosquitto import free_port

ACCESS_KEY = "ak-test-0123456789"
SECRET_KEY = "sk-VERY-SECRET-value-42"
MQTT_PASSWORD = "mqtt-PASSWORD-secret-77"


@pytest.fixture
async def cloud(socket_enabled: None) -> AsyncIterator[StandIn]:
    standin = StandIn(
        access_key=ACCESS_KEY,
        secret_key=SECRET_KEY,
        broker_host="127.0.0.1",
        broker_port=18830,
        mqtt_password=MQTT_PASSWORD,
    )
    await standin.start(with_mqtt=False)
    try:
        yield standin
    finally:
        await standin.stop()


@pytest.fixture
async def session(socket_enabled: None) -> AsyncIterator[aiohttp.ClientSession]:
    async with aiohttp.ClientSession() as http:
        yield http


def client_for(
    standin: StandIn,
    http: aiohttp.ClientSession,
    *,
    access_key: str = ACCESS_KEY,
    secret_key: str = SECRET_KEY,
    **kwargs: object,
) -> EcoflowApiClient:
    return EcoflowApiClient(http, access_key, secret_key, base_url=standin.url, **kwargs)  # type: ignore[arg-type]


def assert_no_secret(text: str) -> None:
    assert SECRET_KEY not in text
    assert MQTT_PASSWORD not in text


async def test_certification_returns_the_local_broker(
    cloud: StandIn, session: aiohttp.ClientSession
) -> None:
    creds = await client_for(cloud, session).certification()
    assert creds == MqttCredentials(
        host="127.0.0.1",
        port=18830,
        protocol="mqtt",
        username=cloud.account,
        password=MQTT_PASSWORD,
    )
    assert isinstance(creds.port, int)
    assert creds.use_tls is False
    assert_no_secret(repr(creds))
    assert_no_secret(str(creds))


async def test_device_list(cloud: StandIn, session: aiohttp.ClientSession) -> None:
    await cloud.set_online(DEFAULT_DELTA2_SN, False)
    devices = await client_for(cloud, session).devices()
    assert devices == [
        DeviceInfo(DEFAULT_RIVER3_SN, "RIVER 3", "River 3 (simulated)", True),
        DeviceInfo(DEFAULT_DELTA2_SN, "DELTA 2", "Delta 2 (simulated)", False),
    ]


async def test_quota_all_of_a_json_device(cloud: StandIn, session: aiohttp.ClientSession) -> None:
    quota = await client_for(cloud, session).quota_all(DEFAULT_DELTA2_SN)
    # The full dotted map of the real capture, with the simulated state on top.
    assert len(quota) > 200
    state = cloud.device(DEFAULT_DELTA2_SN).state
    assert quota["bms_emsStatus.lcdShowSoc"] == round(state.combined_soc)
    assert quota["pd.soc"] == round(state.main_soc)
    assert quota["inv.acInVol"] == 230000  # millivolts
    assert quota["pd.wattsInSum"] == round(state.ac_in_w)


async def test_river3_is_not_served_by_quota_all(
    cloud: StandIn, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(EcoflowDeviceNotSupportedError):
        await client_for(cloud, session).quota_all(DEFAULT_RIVER3_SN)


async def test_unknown_device_is_a_service_error(
    cloud: StandIn, session: aiohttp.ClientSession
) -> None:
    with pytest.raises(EcoflowServiceError) as caught:
        await client_for(cloud, session).quota_all("NOPE")
    assert caught.value.code == "1001"


@pytest.mark.parametrize(
    ("access_key", "secret_key"),
    [(ACCESS_KEY, "sk-wrong-secret"), ("ak-unknown", SECRET_KEY)],
    ids=["wrong-secret", "unknown-access-key"],
)
async def test_refused_keys_raise_auth_error_without_leaking_them(
    cloud: StandIn,
    session: aiohttp.ClientSession,
    caplog: pytest.LogCaptureFixture,
    access_key: str,
    secret_key: str,
) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(cloud, session, access_key=access_key, secret_key=secret_key)
    with pytest.raises(EcoflowAuthError) as caught:
        await client.certification()
    assert "8513" in str(caught.value)
    assert secret_key not in str(caught.value)
    assert secret_key not in repr(caught.value)
    assert secret_key not in repr(client)
    assert secret_key not in caplog.text
    assert_no_secret(caplog.text)


async def test_no_secret_in_logs_or_reprs_on_success(
    cloud: StandIn, session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = client_for(cloud, session)
    creds = await client.certification()
    await client.devices()
    await client.quota_all(DEFAULT_DELTA2_SN)
    assert caplog.text  # the debug lines were captured: the check below means something
    assert_no_secret(caplog.text)
    assert_no_secret(repr(client))
    assert_no_secret(repr(creds))


async def test_pasted_keys_are_stripped(cloud: StandIn, session: aiohttp.ClientSession) -> None:
    client = client_for(
        cloud, session, access_key=f"  {ACCESS_KEY}\n", secret_key=f"\t{SECRET_KEY} "
    )
    assert (await client.certification()).username == cloud.account


async def test_stale_timestamp_is_refused(cloud: StandIn, session: aiohttp.ClientSession) -> None:
    client = client_for(cloud, session, clock=lambda: time.time() - 3600)
    with pytest.raises(EcoflowAuthError):
        await client.devices()


async def test_connection_refused_is_a_connection_error(
    session: aiohttp.ClientSession, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)
    client = EcoflowApiClient(
        session, ACCESS_KEY, SECRET_KEY, base_url=f"http://127.0.0.1:{free_port()}"
    )
    with pytest.raises(EcoflowConnectionError) as caught:
        await client.devices()
    assert_no_secret(str(caught.value))
    assert_no_secret(caplog.text)


async def test_slow_answer_is_a_timeout(cloud: StandIn, session: aiohttp.ClientSession) -> None:
    cloud.cloud.response_delay = 2.0
    client = client_for(cloud, session, request_timeout=0.2)
    started = time.monotonic()
    with pytest.raises(EcoflowConnectionError, match="timed out"):
        await client.certification()
    assert time.monotonic() - started < 1.5


async def test_http_429_is_a_rate_limit(cloud: StandIn, session: aiohttp.ClientSession) -> None:
    cloud.cloud.fail_next(http_status=429, message="Too Many Requests")
    client = client_for(cloud, session)
    with pytest.raises(EcoflowRateLimitError):
        await client.devices()
    # Only the next call failed.
    assert len(await client.devices()) == 2


async def test_rate_limit_code_in_body(cloud: StandIn, session: aiohttp.ClientSession) -> None:
    cloud.cloud.fail_next(code="429", message="request too frequent")
    with pytest.raises(EcoflowRateLimitError):
        await client_for(cloud, session).devices()


async def test_other_codes_are_service_errors(
    cloud: StandIn, session: aiohttp.ClientSession
) -> None:
    cloud.cloud.fail_next("/certification", code="6003", message="system busy")
    with pytest.raises(EcoflowServiceError) as caught:
        await client_for(cloud, session).certification()
    assert (caught.value.code, caught.value.message) == ("6003", "system busy")
    assert not isinstance(caught.value, EcoflowAuthError | EcoflowRateLimitError)


async def test_non_json_answer_is_a_service_error(
    cloud: StandIn, session: aiohttp.ClientSession
) -> None:
    cloud.cloud.fail_next(http_status=502, message="<html>Bad gateway</html>")
    with pytest.raises(EcoflowServiceError) as caught:
        await client_for(cloud, session).devices()
    assert caught.value.code == "502"


async def test_server_echoing_the_secret_is_scrubbed(
    cloud: StandIn, session: aiohttp.ClientSession
) -> None:
    cloud.cloud.fail_next(code="7000", message=f"bad key {SECRET_KEY}")
    with pytest.raises(EcoflowServiceError) as caught:
        await client_for(cloud, session).devices()
    assert_no_secret(str(caught.value))
    assert "***" in caught.value.message


def test_errors_share_one_base() -> None:
    for cls in (
        EcoflowAuthError,
        EcoflowDeviceNotSupportedError,
        EcoflowRateLimitError,
        EcoflowServiceError,
        EcoflowConnectionError,
    ):
        assert issubclass(cls, EcoflowError)


async def test_regions_and_base_url_override() -> None:
    assert Region("eu").base_url == "https://api-e.ecoflow.com"
    assert Region.US.base_url == "https://api-a.ecoflow.com"
    assert Region.GLOBAL.base_url == "https://api.ecoflow.com"
    async with aiohttp.ClientSession() as http:
        assert EcoflowApiClient(http, "a", "b", region=Region.US).base_url == Region.US.base_url
        assert EcoflowApiClient(http, "a", "b").base_url == Region.EU.base_url
        overridden = EcoflowApiClient(http, "a", "b", region=Region.US, base_url="http://x:1/")
        assert overridden.base_url == "http://x:1"
