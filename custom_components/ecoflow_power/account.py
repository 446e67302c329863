"""Which EcoFlow account a set of developer keys belongs to, and an API client for them."""

from __future__ import annotations

from collections.abc import Mapping
import hashlib
from typing import Any

from homeassistant.core import HomeAssistant
from homeassistant.helpers.aiohttp_client import async_get_clientsession

from .const import CONF_ACCESS_KEY, CONF_BASE_URL, CONF_REGION, CONF_SECRET_KEY
from .ecoflow.api import EcoflowApiClient, Region


def client_from_data(hass: HomeAssistant, data: Mapping[str, Any]) -> EcoflowApiClient:
    """An API client for entry data (keys, region, optional base URL)."""
    return EcoflowApiClient(
        async_get_clientsession(hass),
        data[CONF_ACCESS_KEY],
        data[CONF_SECRET_KEY],
        region=Region(data.get(CONF_REGION, Region.EU.value)),
        base_url=data.get(CONF_BASE_URL) or None,
    )


# Entries of minor version 1 were identified by a digest of the access key, which
# changes with every new key and says nothing about the account behind it.
# Minor version 2 identifies the account itself (see account_unique_id).
CONFIG_MINOR_VERSION = 2


def account_unique_id(certificate_account: str) -> str:
    """Identify the EcoFlow account by a digest of its certificate account.

    The certification endpoint names the account (``certificateAccount``, the
    MQTT user of every topic ``/open/{account}/...``); it stays the same when
    the developer keys are regenerated, and differs between accounts. Only a
    digest is kept, so the unique id reveals neither the account nor a key.
    """
    return hashlib.sha256(f"ecoflow-account:{certificate_account.strip()}".encode()).hexdigest()[
        :20
    ]


def legacy_unique_id(access_key: str) -> str:
    """The unique id of entries of minor version 1: a digest of the access key."""
    return hashlib.sha256(access_key.strip().encode()).hexdigest()[:20]


async def async_account_unique_id(hass: HomeAssistant, data: Mapping[str, Any]) -> str:
    """Ask the cloud which account the keys of ``data`` belong to (raises EcoflowError)."""
    credentials = await client_from_data(hass, data).certification()
    return account_unique_id(credentials.username)
