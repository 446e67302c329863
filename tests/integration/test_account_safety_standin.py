"""Account safety against the cloud stand-in: real signed HTTP, two accounts.

Each stand-in is one EcoFlow account (its certification names it, as the real
cloud does); its keys are refused by the other. The entry's setup is replaced
(no MQTT here), the migration and the flows talk to the stand-ins for real.
"""

from __future__ import annotations

from collections.abc import AsyncIterator

from homeassistant.config_entries import ConfigEntryState
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
    CONF_BASE_URL,
    CONF_REGION,
    CONF_SECRET_KEY,
    DOMAIN,
)
from simulator.standin import StandIn

HOME = ("home-access-key", "home-secret-key", "open-home-account-0001")
NEIGHBOUR = ("neighbour-access-key", "neighbour-secret-key", "open-neighbour-0002")


async def _standin(access_key: str, secret_key: str, account: str) -> StandIn:
    standin = StandIn(access_key=access_key, secret_key=secret_key, account=account, broker_port=1)
    await standin.start(with_mqtt=False)
    return standin


@pytest.fixture
async def clouds(socket_enabled: None) -> AsyncIterator[tuple[StandIn, StandIn]]:
    home = await _standin(*HOME)
    neighbour = await _standin(*NEIGHBOUR)
    try:
        yield home, neighbour
    finally:
        await home.stop()
        await neighbour.stop()


def _entry(url: str, **kwargs: object) -> MockConfigEntry:
    return MockConfigEntry(
        domain=DOMAIN,
        title="EcoFlow (home)",
        data={
            CONF_ACCESS_KEY: HOME[0],
            CONF_SECRET_KEY: HOME[1],
            CONF_REGION: "eu",
            CONF_BASE_URL: url,
        },
        **kwargs,
    )


async def test_an_entry_made_before_learns_its_account_from_the_cloud(
    hass: HomeAssistant, clouds: tuple[StandIn, StandIn], mock_setup_entry
) -> None:
    home, _ = clouds
    entry = _entry(home.url, unique_id=legacy_unique_id(HOME[0]), minor_version=1)
    entry.add_to_hass(hass)
    assert await hass.config_entries.async_setup(entry.entry_id)
    assert entry.state is ConfigEntryState.LOADED
    assert entry.unique_id == account_unique_id(HOME[2])
    assert entry.minor_version == CONFIG_MINOR_VERSION
    assert home.cloud.certifications_issued == 1


async def test_reconfigure_onto_the_neighbours_account_is_refused(
    hass: HomeAssistant, clouds: tuple[StandIn, StandIn], mock_setup_entry
) -> None:
    home, neighbour = clouds
    entry = _entry(
        home.url, unique_id=account_unique_id(HOME[2]), minor_version=CONFIG_MINOR_VERSION
    )
    entry.add_to_hass(hass)
    result = await entry.start_reconfigure_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {
            CONF_ACCESS_KEY: NEIGHBOUR[0],
            CONF_SECRET_KEY: NEIGHBOUR[1],
            CONF_REGION: "eu",
            CONF_ADVANCED: {CONF_BASE_URL: neighbour.url},
        },
    )
    assert result["type"] is FlowResultType.ABORT
    assert result["reason"] == "wrong_account"
    assert entry.data[CONF_BASE_URL] == home.url
    assert entry.data[CONF_ACCESS_KEY] == HOME[0]


async def test_reauth_with_a_regenerated_key_pair_of_the_same_account(
    hass: HomeAssistant, clouds: tuple[StandIn, StandIn], mock_setup_entry
) -> None:
    home, _ = clouds
    entry = _entry(
        home.url, unique_id=account_unique_id(HOME[2]), minor_version=CONFIG_MINOR_VERSION
    )
    entry.add_to_hass(hass)
    # At the portal: the old pair deleted, a new one created on the same account.
    home.cloud.keys = {"home-new-access-key": "home-new-secret"}
    result = await entry.start_reauth_flow(hass)
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"], {CONF_ACCESS_KEY: HOME[0], CONF_SECRET_KEY: HOME[1]}
    )
    assert result["errors"] == {"base": "invalid_auth"}
    result = await hass.config_entries.flow.async_configure(
        result["flow_id"],
        {CONF_ACCESS_KEY: "home-new-access-key", CONF_SECRET_KEY: "home-new-secret"},
    )
    assert result["reason"] == "reauth_successful"
    assert entry.data[CONF_ACCESS_KEY] == "home-new-access-key"
    assert entry.unique_id == account_unique_id(HOME[2])
