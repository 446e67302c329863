"""EcoFlow Power Management: EcoFlow power stations as a UPS for Home Assistant.

Setup never waits for the cloud: the account's devices come from the entry's
cache (device_cache.py), the policies from their stored state, and the cloud
session connects in the background. An unreachable cloud is a state (the
Cloud connection entity) and a repair, not a failed setup.
"""

from __future__ import annotations

import asyncio
import logging

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .account import CONFIG_MINOR_VERSION, async_account_unique_id, client_from_data
from .agents import agent_device_identifier
from .const import CONF_DEVICES, DOMAIN
from .coordinator import EcoflowTelemetryCoordinator
from .device_cache import DeviceCache, devices_from_selection
from .device_selection import devices_to_manage
from .ecoflow.api import DeviceInfo, EcoflowApiClient
from .ecoflow.errors import EcoflowAuthError, EcoflowError
from .entity import station_device_info
from .entry_cleanup import (
    async_remove_entry_repairs,
    async_remove_entry_storage,
    async_remove_stale_devices,
)
from .issues import ISSUE_DEVICES_UNKNOWN, ISSUE_OPTIONS_INVALID, clear_repair, raise_repair
from .nut_server import async_setup_nut
from .policy_coordinator import PolicyCoordinator
from .restore_coordinator import WakeCoordinator
from .runtime import EcoflowConfigEntry, EcoflowRuntimeData
from .services import async_setup_services
from .stored_options import misshapen, strings_option

_LOGGER = logging.getLogger(__name__)

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.SENSOR, Platform.SWITCH]

# Only with an empty cache (the first start, or an upgrade from a version
# without one) does setup ask the cloud for names and models, and no longer.
FIRST_LIST_TIMEOUT = 10


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's services (they exist even with no entry loaded)."""
    async_setup_services(hass)
    return True


async def _async_known_account(
    hass: HomeAssistant, entry: EcoflowConfigEntry, client: EcoflowApiClient, cache: DeviceCache
) -> tuple[list[DeviceInfo], bool]:
    """The account's devices without depending on the cloud, and whether the account is known.

    The cache when it has any; else one short attempt at the cloud; else the
    serials the user selected (names and models follow once the cloud answers).
    Only the selection is a guess: it says nothing of what the account holds.
    """
    if await cache.async_load():
        return cache.devices, True
    try:
        async with asyncio.timeout(FIRST_LIST_TIMEOUT):
            account = await client.devices()
    except EcoflowAuthError:
        _LOGGER.warning("EcoFlow refused the keys of %s; starting reauthentication", entry.title)
        entry.async_start_reauth(hass)
    except (EcoflowError, TimeoutError) as err:
        _LOGGER.info("EcoFlow cloud not reachable at start (%s); starting from the selection", err)
    else:
        cache.set_account(account)
        await cache.async_save()
        return account, True
    return devices_from_selection(strings_option(entry.options, CONF_DEVICES)), False


def _check_option_shapes(hass: HomeAssistant, entry: EcoflowConfigEntry) -> None:
    """Options of the wrong shape (a hand-edited file) are read as empty: say which."""
    issue_id = f"{ISSUE_OPTIONS_INVALID}_{entry.entry_id}"
    if wrong := misshapen(entry.options):
        _LOGGER.warning("%s: stored options of the wrong shape, ignored: %s", entry.title, wrong)
        raise_repair(hass, issue_id, ISSUE_OPTIONS_INVALID, {"options": ", ".join(wrong)})
    else:
        clear_repair(hass, issue_id)


async def async_setup_entry(hass: HomeAssistant, entry: EcoflowConfigEntry) -> bool:
    """Start entities and policies from what is stored; the cloud connects in the background."""
    _check_option_shapes(hass, entry)
    client = client_from_data(hass, entry.data)
    cache = DeviceCache(hass, entry.entry_id)
    account, account_known = await _async_known_account(hass, entry, client, cache)
    devices = devices_to_manage(entry, account)
    issue_id = f"{ISSUE_DEVICES_UNKNOWN}_{entry.entry_id}"
    if devices:
        clear_repair(hass, issue_id)
    else:
        # Nothing to start from: the background listing reloads the entry
        # as soon as the cloud names the account's devices.
        raise_repair(hass, issue_id, ISSUE_DEVICES_UNKNOWN, {"title": entry.title})

    telemetry = EcoflowTelemetryCoordinator(hass, entry, client, devices, cache)
    entry.runtime_data = EcoflowRuntimeData(client=client, telemetry=telemetry, device_cache=cache)
    # Stations are registered first so agents' devices can name them as parent.
    registry = dr.async_get(hass)
    for sn in telemetry.devices:
        device = registry.async_get_or_create(
            config_entry_id=entry.entry_id, **station_device_info(telemetry, sn)
        )
        telemetry.device_ids[sn] = device.id
    # Stations that left the account or the selection, agents removed in the
    # options: their devices go (the entry reloads on both changes).
    async_remove_stale_devices(hass, entry, telemetry.devices if account_known else None)
    await telemetry.async_start()
    entry.async_on_unload(telemetry.async_stop)
    entry.async_on_unload(cache.async_save)
    policy = PolicyCoordinator(hass, entry, telemetry)
    entry.runtime_data.policy = policy
    # Before the policy starts: its first decisions may already concern NUT clients.
    entry.runtime_data.nut = await async_setup_nut(hass, entry, policy)
    await policy.async_start()
    entry.async_on_unload(policy.async_stop)
    wake = WakeCoordinator(hass, entry, telemetry, policy)
    entry.runtime_data.wake = wake
    await wake.async_start(entry.runtime_data.nut)
    entry.async_on_unload(wake.async_stop)
    await hass.config_entries.async_forward_entry_setups(entry, PLATFORMS)
    return True


async def async_unload_entry(hass: HomeAssistant, entry: EcoflowConfigEntry) -> bool:
    """Stop the entities; the session stops through async_on_unload."""
    return await hass.config_entries.async_unload_platforms(entry, PLATFORMS)


async def async_remove_config_entry_device(
    hass: HomeAssistant, entry: EcoflowConfigEntry, device: dr.DeviceEntry
) -> bool:
    """Allow deleting a power station that this entry no longer manages."""
    telemetry = entry.runtime_data.telemetry
    policy = entry.runtime_data.policy
    agents = {agent_device_identifier(agent_id) for agent_id in policy.agents} if policy else set()
    return not any(
        domain == DOMAIN and (identifier in telemetry.devices or identifier in agents)
        for domain, identifier in device.identifiers
    )


async def async_remove_entry(hass: HomeAssistant, entry: EcoflowConfigEntry) -> None:
    """A deleted entry takes its repairs and its storage files with it."""
    async_remove_entry_repairs(hass, entry)
    await async_remove_entry_storage(hass, entry.entry_id)


async def async_migrate_entry(hass: HomeAssistant, entry: EcoflowConfigEntry) -> bool:
    """Minor version 1 -> 2: the unique id names the account, not the access key.

    Asks the cloud which account the stored keys belong to. When it cannot
    answer (offline, keys refused) the entry stays on version 1 and still sets
    up; the migration runs again at the next start. Another entry already
    holding the account keeps this one on version 1 too (logged), as two
    entries must not share a unique id.
    """

    logger = entry.logger
    if entry.minor_version >= CONFIG_MINOR_VERSION:
        return True
    try:
        unique_id = await async_account_unique_id(hass, entry.data)
    except EcoflowError as err:
        logger.info(
            "%s: account not identified yet, trying again at the next start (%s)",
            entry.title,
            type(err).__name__,
        )
        return True
    other = hass.config_entries.async_entry_for_domain_unique_id(DOMAIN, unique_id)
    if other is not None and other.entry_id != entry.entry_id:
        logger.warning(
            "%s and %s use the same EcoFlow account; remove one of them", entry.title, other.title
        )
        return True
    hass.config_entries.async_update_entry(
        entry, unique_id=unique_id, minor_version=CONFIG_MINOR_VERSION
    )
    return True
