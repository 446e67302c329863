"""What an entry leaves behind: stale devices at setup, repairs and storage when deleted.

A station that left the account or was deselected, and an agent removed in
the options, lose their device at the next setup (the entry reloads on both).
A deleted entry takes its repairs and its storage files with it.
"""

from __future__ import annotations

from collections.abc import Iterable
import logging
from typing import Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.storage import Store

from .agents import agent_device_identifier, agent_id_from_identifier
from .const import CONF_AGENTS, CONF_DEVICES, CONF_EXCLUDED_DEVICES, DOMAIN
from .stored_options import mapping_option

_LOGGER = logging.getLogger(__name__)

# Per-entry storage files: policy_coordinator.py, restore_coordinator.py, device_cache.py.
STORAGE_KINDS = ("policy", "wake", "devices")


def configured_agents(entry: ConfigEntry) -> set[str]:
    """Agent ids in the options, valid or not (a broken one keeps its device until removed)."""
    return {str(agent_id) for agent_id in mapping_option(entry.options, CONF_AGENTS)}


@callback
def async_remove_stale_devices(
    hass: HomeAssistant, entry: ConfigEntry, stations: Iterable[str] | None
) -> list[str]:
    """Detach from this entry the devices naming neither a managed station nor an agent.

    `stations` is None when the account is not known (no cache and no cloud
    at the first start): then no station is judged stale, only agents.
    Returns the registry ids of the devices detached.
    """
    registry = dr.async_get(hass)
    keep_stations = set(stations) if stations is not None else None
    keep_agents = {agent_device_identifier(agent_id) for agent_id in configured_agents(entry)}
    removed: list[str] = []
    for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
        ours = [identifier for domain, identifier in device.identifiers if domain == DOMAIN]
        if not ours:
            continue
        if any(_is_kept(identifier, keep_stations, keep_agents) for identifier in ours):
            continue
        _LOGGER.info("Removing %s: no longer managed by %s", device.name, entry.title)
        registry.async_update_device(device.id, remove_config_entry_id=entry.entry_id)
        removed.append(device.id)
    return removed


def _is_kept(identifier: str, stations: set[str] | None, agents: set[str]) -> bool:
    if agent_id_from_identifier(identifier) is not None:
        return identifier in agents
    return stations is None or identifier in stations


def _entry_names(hass: HomeAssistant, entry: ConfigEntry) -> set[str]:
    """What this entry's repairs are suffixed with: its id, its stations' serials, its agents."""
    names = {entry.entry_id, *configured_agents(entry)}
    names.update(str(sn) for sn in entry.options.get(CONF_DEVICES, []))
    names.update(str(sn) for sn in entry.options.get(CONF_EXCLUDED_DEVICES, []))
    registry = dr.async_get(hass)
    for device in dr.async_entries_for_config_entry(registry, entry.entry_id):
        for domain, identifier in device.identifiers:
            if domain == DOMAIN:
                names.add(agent_id_from_identifier(identifier) or identifier)
    return names


@callback
def async_remove_entry_repairs(hass: HomeAssistant, entry: ConfigEntry) -> None:
    """Delete every repair of ours that belongs to this entry.

    Repair ids are `<translation key>_<entry id | station serial | agent id>`.
    With no other entry of ours left, every repair of ours is this entry's;
    otherwise names another entry also uses (an agent id) keep their repairs.
    """
    others = [
        other
        for other in hass.config_entries.async_entries(DOMAIN)
        if other.entry_id != entry.entry_id
    ]
    names = _entry_names(hass, entry)
    for other in others:
        names -= _entry_names(hass, other)
    registry = ir.async_get(hass)
    for (domain, issue_id), issue in list(registry.issues.items()):
        if domain != DOMAIN:
            continue
        if others:
            prefix = f"{issue.translation_key}_"
            if not issue_id.startswith(prefix) or issue_id.removeprefix(prefix) not in names:
                continue
        ir.async_delete_issue(hass, DOMAIN, issue_id)


async def async_remove_entry_storage(hass: HomeAssistant, entry_id: str) -> None:
    """Delete the entry's storage files (policy and restore state, device cache)."""
    for kind in STORAGE_KINDS:
        await Store[dict[str, Any]](hass, 1, f"{DOMAIN}.{entry_id}.{kind}").async_remove()
