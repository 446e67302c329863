"""Fixtures for the Home Assistant side of the integration."""

from __future__ import annotations

from collections.abc import AsyncGenerator, Callable, Generator
from typing import Any
from unittest.mock import AsyncMock, PropertyMock, patch

from freezegun.api import FrozenDateTimeFactory
from homeassistant.core import HomeAssistant
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ecoflow_power.account import account_unique_id
from custom_components.ecoflow_power.const import (
    CONF_ACCESS_KEY,
    CONF_ADD_NEW_DEVICES,
    CONF_AGENTS,
    CONF_DEVICES,
    CONF_EXCLUDED_DEVICES,
    CONF_GRID_CONFIRM,
    CONF_POLICY,
    CONF_REGION,
    CONF_SECRET_KEY,
    CONF_STALE_AFTER,
    DOMAIN,
)
from custom_components.ecoflow_power.ecoflow.api import DeviceInfo, MqttCredentials
from custom_components.ecoflow_power.ecoflow.cloud_messages import RawMessage
from tests.helpers.mosquitto import MosquittoBroker, running_broker

from .mqtt_helpers import entry_on_real_mqtt

ACCESS_KEY = "AKtestaccesskey0001"
CERT_ACCOUNT = "open-test"  # what the certification names the account
SECRET_KEY = "SKtestsecretkey0001-do-not-log"
RIVER3_SN = "R651ZAB5XXXX0001"
DELTA2_SN = "R331ZEB4ZEA00001"

ACCOUNT = [
    DeviceInfo(sn=RIVER3_SN, product_name="RIVER 3", device_name="Study UPS", online=True),
    DeviceInfo(sn=DELTA2_SN, product_name="DELTA 2", device_name="Rack", online=True),
]


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let HA load our integration in every test of this folder."""


@pytest.fixture
def entity_registry_enabled_by_default() -> Generator[None]:
    """Create entities that are disabled by default as enabled."""
    with patch(
        "homeassistant.helpers.entity.Entity.entity_registry_enabled_default",
        return_value=True,
        new_callable=PropertyMock,
    ):
        yield


@pytest.fixture
def mock_client() -> Generator[AsyncMock]:
    """The EcoFlow API client, at the boundary every HA module creates it through."""
    client = AsyncMock()
    client.certification.return_value = MqttCredentials(
        host="127.0.0.1", port=1883, protocol="mqtt", username=CERT_ACCOUNT, password="pw"
    )
    client.devices.return_value = list(ACCOUNT)
    with patch(
        "custom_components.ecoflow_power.account.EcoflowApiClient", return_value=client
    ) as factory:
        client.factory = factory
        yield client


@pytest.fixture
def mock_setup_entry() -> Generator[AsyncMock]:
    """Creating an entry in a flow test must not start the integration."""
    with patch(
        "custom_components.ecoflow_power.async_setup_entry", return_value=True
    ) as setup_entry:
        yield setup_entry


class FakeSession:
    """Stands in for the cloud MQTT session in entity tests: the test feeds messages."""

    instances: list[FakeSession] = []
    # False: the cloud refuses connections (the session keeps trying, never connects).
    connects = True

    def __init__(self, api: Any, *, on_message: Callable[[RawMessage], None], **kwargs: Any):
        self.on_message = on_message
        self.on_connection_change = kwargs.get("on_connection_change")
        self.devices = list(kwargs.get("devices", []))
        self.client_id = kwargs.get("client_id")
        self.started = False
        self.stopped = False
        self.stats: dict[str, int] = {"messages": 0}
        FakeSession.instances.append(self)

    async def start(self) -> None:
        self.started = True
        if self.on_connection_change and FakeSession.connects:
            self.on_connection_change(True)

    async def stop(self) -> None:
        self.stopped = True

    @property
    def connected(self) -> bool:
        return self.started and not self.stopped and FakeSession.connects


@pytest.fixture
def fake_session() -> Generator[type[FakeSession]]:
    FakeSession.instances = []
    FakeSession.connects = True
    with patch("custom_components.ecoflow_power.coordinator.CloudMqttSession", FakeSession):
        yield FakeSession


def make_entry(**options: Any) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="EcoFlow Cloud (Europe)",
        unique_id=account_unique_id(CERT_ACCOUNT),
        minor_version=2,
        data={CONF_ACCESS_KEY: ACCESS_KEY, CONF_SECRET_KEY: SECRET_KEY, CONF_REGION: "eu"},
        options={
            CONF_DEVICES: [RIVER3_SN, DELTA2_SN],
            CONF_EXCLUDED_DEVICES: [],
            CONF_ADD_NEW_DEVICES: True,
            CONF_STALE_AFTER: 120,
            CONF_GRID_CONFIRM: 10,
        }
        | options,
    )


# The NAS agent on the Delta 2, and a policy for the Delta 2 (20 %, 60 s, 30 s).
AGENT_SECRET = "nas-secret-for-tests"
NAS = {"device": DELTA2_SN, "secret": AGENT_SECRET, "soc_threshold": None, "delay_sec": None}
DELTA2_POLICY = {DELTA2_SN: {"soc_threshold": 20, "debounce_sec": 60, "delay_sec": 30}}


def policy_entry(**options: Any) -> MockConfigEntry:
    """The entry of the policy tests: the NAS agent guarding the Delta 2, grid changes at once."""
    return make_entry(
        **{CONF_GRID_CONFIRM: 0, CONF_AGENTS: {"nas": dict(NAS)}, CONF_POLICY: DELTA2_POLICY}
        | options
    )


@pytest.fixture
def config_entry() -> MockConfigEntry:
    return make_entry()


@pytest.fixture
def broker(socket_enabled: None) -> Generator[MosquittoBroker]:
    """A real mosquitto for the test (stopped and removed after it)."""
    with running_broker() as broker:
        yield broker


@pytest.fixture
async def loaded(
    hass: HomeAssistant,
    broker: MosquittoBroker,
    mock_client: AsyncMock,
    fake_session: Any,
    freezer: FrozenDateTimeFactory,
) -> AsyncGenerator[MockConfigEntry]:
    """The policy entry (policy_entry) loaded beside HA's MQTT on the real broker.

    Test files whose entry differs define their own `loaded`.
    """
    entry = policy_entry()
    async with entry_on_real_mqtt(hass, broker, freezer, entry):
        yield entry
