"""Config flow: every step and error, with recovery; reauth; reconfigure; options."""

from __future__ import annotations

from unittest.mock import AsyncMock

from homeassistant.config_entries import SOURCE_USER
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ecoflow_power.account import account_unique_id
from custom_components.ecoflow_power.const import (
    CONF_ACCESS_KEY,
    CONF_ADD_NEW_DEVICES,
    CONF_ADVANCED,
    CONF_BASE_URL,
    CONF_DEVICES,
    CONF_EXCLUDED_DEVICES,
    CONF_GRID_CONFIRM,
    CONF_REGION,
    CONF_SECRET_KEY,
    CONF_STALE_AFTER,
    DOMAIN,
)
from custom_components.ecoflow_power.ecoflow.api import MqttCredentials, Region
from custom_components.ecoflow_power.ecoflow.errors import (
    EcoflowAuthError,
    EcoflowConnectionError,
    EcoflowRateLimitError,
    EcoflowServiceError,
)

from .conftest import ACCESS_KEY, CERT_ACCOUNT, DELTA2_SN, RIVER3_SN, SECRET_KEY

USER_INPUT = {
    CONF_ACCESS_KEY: f"  {ACCESS_KEY}\n",
    CONF_SECRET_KEY: f" {SECRET_KEY} ",
    CONF_REGION: "eu",
    CONF_ADVANCED: {},
}


@pytest.fixture(autouse=True)
def _no_setup(request: pytest.FixtureRequest) -> None:
    # Flows that create an entry would otherwise start the real cloud session;
    # tests that need a loaded entry ask for fake_session instead.
    if "fake_session" not in request.fixturenames:
        request.getfixturevalue("mock_setup_entry")


async def _start(hass: HomeAssistant) -> str:
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "user"
    return result["flow_id"]


async def test_full_flow_creates_entry_with_all_devices_by_default(
    hass: HomeAssistant, mock_client: AsyncMock
) -> None:
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, USER_INPUT)
    assert result["type"] is FlowResultType.FORM
    assert result["step_id"] == "devices"
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_DEVICES: [RIVER3_SN, DELTA2_SN], CONF_ADD_NEW_DEVICES: True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["title"] == "EcoFlow Cloud (Europe)"
    # Keys are stored stripped; the unique id is a digest of the account, never a key.
    assert result["data"] == {
        CONF_ACCESS_KEY: ACCESS_KEY,
        CONF_SECRET_KEY: SECRET_KEY,
        CONF_REGION: "eu",
    }
    assert result["result"].unique_id == account_unique_id(CERT_ACCOUNT)
    assert CERT_ACCOUNT not in result["result"].unique_id
    assert result["options"][CONF_DEVICES] == sorted([RIVER3_SN, DELTA2_SN])
    assert result["options"][CONF_EXCLUDED_DEVICES] == []
    assert result["options"][CONF_STALE_AFTER] == 120
    assert result["options"][CONF_GRID_CONFIRM] == 10


async def test_custom_base_url_is_used_and_named_in_the_title(
    hass: HomeAssistant, mock_client: AsyncMock
) -> None:
    flow_id = await _start(hass)
    await hass.config_entries.flow.async_configure(
        flow_id, USER_INPUT | {CONF_ADVANCED: {CONF_BASE_URL: "http://127.0.0.1:8089/"}}
    )
    assert mock_client.factory.call_args.kwargs["base_url"] == "http://127.0.0.1:8089"
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_DEVICES: [RIVER3_SN], CONF_ADD_NEW_DEVICES: False}
    )
    assert result["title"] == "EcoFlow (http://127.0.0.1:8089)"
    assert result["data"][CONF_BASE_URL] == "http://127.0.0.1:8089"
    assert result["options"][CONF_EXCLUDED_DEVICES] == [DELTA2_SN]


@pytest.mark.parametrize(
    ("side_effect", "error"),
    [
        (EcoflowConnectionError("timeout"), "cannot_connect"),
        (EcoflowServiceError("500", "busy"), "service_error"),
        (EcoflowRateLimitError("EcoFlow API rate limit reached (HTTP 429)"), "rate_limited"),
    ],
)
async def test_user_step_errors_recover(
    hass: HomeAssistant, mock_client: AsyncMock, side_effect: Exception, error: str
) -> None:
    flow_id = await _start(hass)
    mock_client.certification.side_effect = side_effect
    result = await hass.config_entries.flow.async_configure(flow_id, USER_INPUT)
    assert result["type"] is FlowResultType.FORM
    assert result["errors"] == {"base": error}
    mock_client.certification.side_effect = None
    result = await hass.config_entries.flow.async_configure(flow_id, USER_INPUT)
    assert result["step_id"] == "devices"


async def test_refused_keys_in_every_region_is_invalid_auth(
    hass: HomeAssistant, mock_client: AsyncMock
) -> None:
    flow_id = await _start(hass)
    mock_client.certification.side_effect = EcoflowAuthError("8513")
    result = await hass.config_entries.flow.async_configure(flow_id, USER_INPUT)
    assert result["errors"] == {"base": "invalid_auth"}
    # The other two regions were tried before blaming the keys.
    regions = [call.kwargs["region"] for call in mock_client.factory.call_args_list]
    assert set(regions) == set(Region)
    mock_client.certification.side_effect = None
    result = await hass.config_entries.flow.async_configure(flow_id, USER_INPUT)
    assert result["step_id"] == "devices"


async def test_wrong_region_names_the_region_that_works(
    hass: HomeAssistant, mock_client: AsyncMock
) -> None:
    flow_id = await _start(hass)

    def certification_for_region() -> MqttCredentials:
        if mock_client.factory.call_args.kwargs["region"] is not Region.US:
            raise EcoflowAuthError("8513")
        return mock_client.certification.return_value

    mock_client.certification.side_effect = certification_for_region
    result = await hass.config_entries.flow.async_configure(flow_id, USER_INPUT)
    assert result["errors"] == {"base": "wrong_region"}
    assert result["description_placeholders"] == {"region": "Americas"}
    result = await hass.config_entries.flow.async_configure(
        flow_id, USER_INPUT | {CONF_REGION: "us"}
    )
    assert result["step_id"] == "devices"


async def test_custom_base_url_refusal_does_not_probe_regions(
    hass: HomeAssistant, mock_client: AsyncMock
) -> None:
    flow_id = await _start(hass)
    mock_client.certification.side_effect = EcoflowAuthError("8513")
    result = await hass.config_entries.flow.async_configure(
        flow_id, USER_INPUT | {CONF_ADVANCED: {CONF_BASE_URL: "http://127.0.0.1:1"}}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    assert mock_client.factory.call_count == 1


async def test_account_without_devices(hass: HomeAssistant, mock_client: AsyncMock) -> None:
    flow_id = await _start(hass)
    mock_client.devices.return_value = []
    result = await hass.config_entries.flow.async_configure(flow_id, USER_INPUT)
    assert result["errors"] == {"base": "no_devices"}


async def test_device_step_requires_a_choice(hass: HomeAssistant, mock_client: AsyncMock) -> None:
    flow_id = await _start(hass)
    await hass.config_entries.flow.async_configure(flow_id, USER_INPUT)
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_DEVICES: [], CONF_ADD_NEW_DEVICES: True}
    )
    assert result["errors"] == {"base": "no_devices_selected"}
    result = await hass.config_entries.flow.async_configure(
        flow_id, {CONF_DEVICES: [DELTA2_SN], CONF_ADD_NEW_DEVICES: True}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    assert result["options"][CONF_EXCLUDED_DEVICES] == [RIVER3_SN]


async def test_same_account_twice_aborts(
    hass: HomeAssistant, mock_client: AsyncMock, config_entry: MockConfigEntry
) -> None:
    config_entry.add_to_hass(hass)
    flow_id = await _start(hass)
    result = await hass.config_entries.flow.async_configure(flow_id, USER_INPUT)
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"


async def test_reauth_with_regenerated_keys(
    hass: HomeAssistant, mock_client: AsyncMock, config_entry: MockConfigEntry, fake_session
) -> None:
    config_entry.add_to_hass(hass)
    result = await config_entry.start_reauth_flow(hass)
    assert result["step_id"] == "reauth_confirm"
    mock_client.certification.side_effect = EcoflowAuthError("8513")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ACCESS_KEY: "AKnew", CONF_SECRET_KEY: "SKnew"}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    mock_client.certification.side_effect = None
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ACCESS_KEY: "AKnew", CONF_SECRET_KEY: " SKnew "}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert config_entry.data[CONF_SECRET_KEY] == "SKnew"
    assert config_entry.unique_id == account_unique_id(CERT_ACCOUNT)
    await hass.async_block_till_done()


async def test_reconfigure_changes_region_and_clears_base_url(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session
) -> None:
    from .conftest import make_entry

    entry = make_entry()
    entry.add_to_hass(hass)
    hass.config_entries.async_update_entry(
        entry, data=entry.data | {CONF_BASE_URL: "http://127.0.0.1:8089"}
    )
    result = await entry.start_reconfigure_flow(hass)
    assert result["step_id"] == "reconfigure"
    mock_client.certification.side_effect = EcoflowConnectionError("down")
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], USER_INPUT | {CONF_REGION: "global"}
    )
    assert result["errors"] == {"base": "cannot_connect"}
    mock_client.certification.side_effect = None
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], USER_INPUT | {CONF_REGION: "global"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reconfigure_successful"
    assert entry.data[CONF_REGION] == "global"
    assert CONF_BASE_URL not in entry.data
    await hass.async_block_till_done()


async def test_options_flow_devices_and_telemetry(
    hass: HomeAssistant, mock_client: AsyncMock, config_entry: MockConfigEntry, fake_session
) -> None:
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    result = await hass.config_entries.options.async_init(config_entry.entry_id)
    assert result["type"] is FlowResultType.MENU
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "telemetry"}
    )
    assert result["step_id"] == "telemetry"
    base = {CONF_ADD_NEW_DEVICES: False, CONF_STALE_AFTER: 300, CONF_GRID_CONFIRM: 5}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], base | {CONF_DEVICES: []}
    )
    assert result["errors"] == {"base": "no_devices_selected"}
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], base | {CONF_DEVICES: [RIVER3_SN]}
    )
    assert result["type"] is FlowResultType.CREATE_ENTRY
    await hass.async_block_till_done()
    assert config_entry.options[CONF_DEVICES] == [RIVER3_SN]
    assert config_entry.options[CONF_EXCLUDED_DEVICES] == [DELTA2_SN]
    assert config_entry.options[CONF_STALE_AFTER] == 300
    # The reload applied it: only the chosen device is managed now.
    assert list(config_entry.runtime_data.telemetry.devices) == [RIVER3_SN]


async def test_options_flow_aborts_when_cloud_unreachable(
    hass: HomeAssistant, mock_client: AsyncMock, config_entry: MockConfigEntry, fake_session
) -> None:
    config_entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(config_entry.entry_id)
    await hass.async_block_till_done()
    mock_client.devices.side_effect = EcoflowConnectionError("down")
    result = await hass.config_entries.options.async_init(config_entry.entry_id)
    result = await hass.config_entries.options.async_configure(
        result["flow_id"], {"next_step_id": "telemetry"}
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "cannot_connect"
