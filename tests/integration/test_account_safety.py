"""Account safety: an entry stays bound to its EcoFlow account.

The unique id names the account the certification endpoint reports, not the
access key, so reauth and reconfigure refuse keys of another account, a second
key of a configured account is no second entry, and entries made before
(unique id = digest of the access key, minor version 1) are migrated.
"""

from __future__ import annotations

import logging
from typing import Any
from unittest.mock import AsyncMock

from homeassistant.config_entries import SOURCE_USER, ConfigEntryState
from homeassistant.core import HomeAssistant
from homeassistant.data_entry_flow import FlowResultType
import pytest
from pytest_homeassistant_custom_component.common import MockConfigEntry

from custom_components.ecoflow_power.account import (
    CONFIG_MINOR_VERSION,
    account_unique_id,
    legacy_unique_id,
)
from custom_components.ecoflow_power.const import (
    CONF_ACCESS_KEY,
    CONF_ADVANCED,
    CONF_REGION,
    CONF_SECRET_KEY,
    DOMAIN,
)
from custom_components.ecoflow_power.ecoflow.api import MqttCredentials
from custom_components.ecoflow_power.ecoflow.errors import (
    EcoflowAuthError,
    EcoflowConnectionError,
)

from .conftest import ACCESS_KEY, CERT_ACCOUNT, SECRET_KEY, make_entry

OTHER_KEY = "AKkeyofanotheraccount"
SECOND_KEY = "AKsecondkeysameaccount"
OTHER_ACCOUNT = "open-other-account"
ACCOUNT_OF_KEY = {ACCESS_KEY: CERT_ACCOUNT, SECOND_KEY: CERT_ACCOUNT, OTHER_KEY: OTHER_ACCOUNT}


@pytest.fixture
def accounts(mock_client: AsyncMock) -> dict[str, str]:
    """The cloud answers the certification with the account the access key belongs to.

    Keys missing from the returned mapping are refused (8513), as after a
    regeneration of the keys at the developer portal.
    """
    known = dict(ACCOUNT_OF_KEY)

    def certification() -> MqttCredentials:
        access_key = mock_client.factory.call_args.args[1]
        if access_key not in known:
            raise EcoflowAuthError("8513")
        return MqttCredentials(
            host="127.0.0.1", port=1883, protocol="mqtt", username=known[access_key], password="pw"
        )

    mock_client.certification.side_effect = certification
    return known


def _legacy_entry() -> MockConfigEntry:
    """An entry as versions before the account id made it."""
    entry = make_entry()
    return MockConfigEntry(
        domain=DOMAIN,
        title=entry.title,
        unique_id=legacy_unique_id(ACCESS_KEY),
        minor_version=1,
        data=dict(entry.data),
        options=dict(entry.options),
    )


def _keys(access_key: str, **extra: Any) -> dict[str, Any]:
    return {CONF_ACCESS_KEY: access_key, CONF_SECRET_KEY: "SK"} | extra


async def test_reauth_with_keys_of_another_account_is_refused_and_nothing_changes(
    hass: HomeAssistant, mock_client: AsyncMock, accounts: dict[str, str], mock_setup_entry
) -> None:
    entry = make_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _keys(OTHER_KEY))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_account"
    assert entry.data[CONF_ACCESS_KEY] == ACCESS_KEY
    assert entry.data[CONF_SECRET_KEY] == SECRET_KEY
    assert entry.unique_id == account_unique_id(CERT_ACCOUNT)


async def test_reconfigure_with_keys_of_another_account_is_refused(
    hass: HomeAssistant, mock_client: AsyncMock, accounts: dict[str, str], mock_setup_entry
) -> None:
    entry = make_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _keys(OTHER_KEY, **{CONF_REGION: "eu", CONF_ADVANCED: {}})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_account"
    assert entry.data[CONF_ACCESS_KEY] == ACCESS_KEY


async def test_reauth_with_a_new_key_of_the_same_account_keeps_the_entry_identity(
    hass: HomeAssistant, mock_client: AsyncMock, accounts: dict[str, str], fake_session
) -> None:
    entry = make_entry()
    entry.add_to_hass(hass)
    del accounts[ACCESS_KEY]  # regenerated at the portal: the old key is refused now
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _keys(SECOND_KEY))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_ACCESS_KEY] == SECOND_KEY
    assert entry.unique_id == account_unique_id(CERT_ACCOUNT)
    await hass.async_block_till_done()


async def test_second_key_of_a_configured_account_is_not_a_second_entry(
    hass: HomeAssistant, mock_client: AsyncMock, accounts: dict[str, str], mock_setup_entry
) -> None:
    make_entry().add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _keys(SECOND_KEY, **{CONF_REGION: "eu", CONF_ADVANCED: {}})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert len(hass.config_entries.async_entries(DOMAIN)) == 1


async def test_another_account_can_be_added_next_to_the_first(
    hass: HomeAssistant, mock_client: AsyncMock, accounts: dict[str, str], mock_setup_entry
) -> None:
    make_entry().add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _keys(OTHER_KEY, **{CONF_REGION: "eu", CONF_ADVANCED: {}})
    )
    assert result["step_id"] == "devices"


async def test_key_of_an_entry_not_yet_migrated_is_refused_before_signing_in(
    hass: HomeAssistant, mock_client: AsyncMock, accounts: dict[str, str], mock_setup_entry
) -> None:
    _legacy_entry().add_to_hass(hass)
    result = await hass.config_entries.flow.async_init(DOMAIN, context={"source": SOURCE_USER})
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _keys(ACCESS_KEY, **{CONF_REGION: "eu", CONF_ADVANCED: {}})
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    mock_client.certification.assert_not_called()


async def test_entry_made_before_is_migrated_to_the_account_at_start(
    hass: HomeAssistant, mock_client: AsyncMock, accounts: dict[str, str], fake_session
) -> None:
    entry = _legacy_entry()
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.unique_id == account_unique_id(CERT_ACCOUNT)
    assert entry.minor_version == CONFIG_MINOR_VERSION
    # The keys and settings are untouched by the migration.
    assert entry.data == _legacy_entry().data
    assert entry.options == _legacy_entry().options


async def test_migration_waits_for_the_cloud_and_the_entry_still_starts(
    hass: HomeAssistant, mock_client: AsyncMock, fake_session, caplog: pytest.LogCaptureFixture
) -> None:
    mock_client.certification.side_effect = EcoflowConnectionError("down")
    entry = _legacy_entry()
    entry.add_to_hass(hass)
    with caplog.at_level(logging.INFO):
        assert await hass.config_entries.async_setup(entry.entry_id)
        await hass.async_block_till_done()
    assert entry.state is ConfigEntryState.LOADED
    assert entry.minor_version == 1
    assert entry.unique_id == legacy_unique_id(ACCESS_KEY)
    assert "trying again at the next start" in caplog.text

    # The next start, with the cloud back, migrates it.
    mock_client.certification.side_effect = None
    assert await hass.config_entries.async_unload(entry.entry_id)
    assert await hass.config_entries.async_setup(entry.entry_id)
    await hass.async_block_till_done()
    assert entry.minor_version == CONFIG_MINOR_VERSION
    assert entry.unique_id == account_unique_id(CERT_ACCOUNT)


async def test_two_old_entries_of_one_account_do_not_share_a_unique_id(
    hass: HomeAssistant,
    mock_client: AsyncMock,
    accounts: dict[str, str],
    fake_session,
    caplog: pytest.LogCaptureFixture,
) -> None:
    first = make_entry()  # already migrated
    first.add_to_hass(hass)
    second = MockConfigEntry(
        domain=DOMAIN,
        title="EcoFlow second key",
        unique_id=legacy_unique_id(SECOND_KEY),
        minor_version=1,
        data=dict(first.data) | {CONF_ACCESS_KEY: SECOND_KEY},
        options=dict(first.options),
    )
    second.add_to_hass(hass)
    assert await hass.config_entries.async_setup(second.entry_id)
    await hass.async_block_till_done()
    assert second.unique_id == legacy_unique_id(SECOND_KEY)
    assert second.minor_version == 1
    assert "use the same EcoFlow account" in caplog.text


async def test_reconfigure_of_an_old_entry_asks_the_stored_keys_for_the_account(
    hass: HomeAssistant, mock_client: AsyncMock, accounts: dict[str, str], mock_setup_entry
) -> None:
    entry = _legacy_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _keys(OTHER_KEY, **{CONF_REGION: "eu", CONF_ADVANCED: {}})
    )
    assert result["reason"] == "wrong_account"
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], _keys(SECOND_KEY, **{CONF_REGION: "eu", CONF_ADVANCED: {}})
    )
    assert result["reason"] == "reconfigure_successful"
    # Reconfiguring records the account: the entry is migrated on the way.
    assert entry.unique_id == account_unique_id(CERT_ACCOUNT)
    assert entry.minor_version == CONFIG_MINOR_VERSION


async def test_reauth_of_an_old_entry_with_refused_keys_records_the_new_account(
    hass: HomeAssistant, mock_client: AsyncMock, accounts: dict[str, str], mock_setup_entry
) -> None:
    # Neither the old keys nor any record name the account: the new keys are
    # taken (as before the account id), and their account is recorded.
    del accounts[ACCESS_KEY]
    entry = _legacy_entry()
    entry.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _keys(SECOND_KEY))
    assert result["reason"] == "reauth_successful"
    assert entry.unique_id == account_unique_id(CERT_ACCOUNT)
    assert entry.minor_version == CONFIG_MINOR_VERSION


async def test_reauth_of_an_old_entry_onto_another_configured_account_aborts(
    hass: HomeAssistant, mock_client: AsyncMock, accounts: dict[str, str], mock_setup_entry
) -> None:
    del accounts[ACCESS_KEY]
    entry = _legacy_entry()
    entry.add_to_hass(hass)
    other = MockConfigEntry(domain=DOMAIN, unique_id=account_unique_id(OTHER_ACCOUNT), data={})
    other.add_to_hass(hass)
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(result["flow_id"], _keys(OTHER_KEY))
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "already_configured"
    assert entry.data[CONF_ACCESS_KEY] == ACCESS_KEY


async def test_an_entry_from_a_newer_version_is_left_as_it_is(
    hass: HomeAssistant, mock_client: AsyncMock, accounts: dict[str, str], fake_session
) -> None:
    # After a downgrade: same major version, a minor version this code does not know.
    entry = make_entry()
    newer = MockConfigEntry(
        domain=DOMAIN,
        title=entry.title,
        unique_id="set-by-a-newer-version",
        minor_version=CONFIG_MINOR_VERSION + 1,
        data=dict(entry.data),
        options=dict(entry.options),
    )
    newer.add_to_hass(hass)
    assert await hass.config_entries.async_setup(newer.entry_id)
    await hass.async_block_till_done()
    assert newer.state is ConfigEntryState.LOADED
    assert newer.unique_id == "set-by-a-newer-version"
    assert newer.minor_version == CONFIG_MINOR_VERSION + 1
    mock_client.certification.assert_not_called()
