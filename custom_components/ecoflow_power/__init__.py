"""EcoFlow Power Management: EcoFlow power stations as a UPS for Home Assistant."""

from __future__ import annotations

from homeassistant.const import Platform
from homeassistant.core import HomeAssistant
from homeassistant.exceptions import ConfigEntryAuthFailed, ConfigEntryNotReady
from homeassistant.helpers import config_validation as cv, device_registry as dr
from homeassistant.helpers.typing import ConfigType

from .agents import agent_device_identifier
from .config_flow import client_from_data
from .const import DOMAIN
from .coordinator import EcoflowConfigEntry, EcoflowRuntimeData, EcoflowTelemetryCoordinator
from .device_selection import devices_to_manage
from .ecoflow.errors import EcoflowAuthError, EcoflowError
from .entity import station_device_info
from .policy_coordinator import PolicyCoordinator
from .restore_coordinator import WakeCoordinator
from .services import async_setup_services

CONFIG_SCHEMA = cv.config_entry_only_config_schema(DOMAIN)

PLATFORMS: list[Platform] = [Platform.BINARY_SENSOR, Platform.SENSOR, Platform.SWITCH]


async def async_setup(hass: HomeAssistant, config: ConfigType) -> bool:
    """Register the integration's services (they exist even with no entry loaded)."""
    async_setup_services(hass)
    return True


async def async_setup_entry(hass: HomeAssistant, entry: EcoflowConfigEntry) -> bool:
    """Sign in, start the cloud session and the entities."""
    client = client_from_data(hass, entry.data)
    try:
        account = await client.devices()
    except EcoflowAuthError as err:
        raise ConfigEntryAuthFailed(
            translation_domain=DOMAIN, translation_key="auth_failed"
        ) from err
    except EcoflowError as err:
        raise ConfigEntryNotReady(
            translation_domain=DOMAIN,
            translation_key="cannot_connect",
            translation_placeholders={"error": str(err)},
        ) from err

    telemetry = EcoflowTelemetryCoordinator(hass, entry, client, devices_to_manage(entry, account))
    await telemetry.async_apply_account_devices(account)
    entry.runtime_data = EcoflowRuntimeData(client=client, telemetry=telemetry)
    # Stations are registered first so agents' devices can name them as parent.
    registry = dr.async_get(hass)
    for sn in telemetry.devices:
        device = registry.async_get_or_create(
            config_entry_id=entry.entry_id, **station_device_info(telemetry, sn)
        )
        telemetry.device_ids[sn] = device.id
    await telemetry.async_start()
    entry.async_on_unload(telemetry.async_stop)
    policy = PolicyCoordinator(hass, entry, telemetry)
    entry.runtime_data.policy = policy
    await policy.async_start()
    entry.async_on_unload(policy.async_stop)
    wake = WakeCoordinator(hass, entry, telemetry, policy)
    entry.runtime_data.wake = wake
    await wake.async_start()
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


async def async_migrate_entry(hass: HomeAssistant, entry: EcoflowConfigEntry) -> bool:
    """Minor version 1 -> 2: the unique id names the account, not the access key.

    Asks the cloud which account the stored keys belong to. When it cannot
    answer (offline, keys refused) the entry stays on version 1 and still sets
    up; the migration runs again at the next start. Another entry already
    holding the account keeps this one on version 1 too (logged), as two
    entries must not share a unique id.
    """
    # Imported here so the function stands alone at the end of the module.
    from .config_flow import CONFIG_MINOR_VERSION, async_account_unique_id  # noqa: PLC0415

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
