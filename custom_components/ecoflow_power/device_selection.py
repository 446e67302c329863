"""Which of the account's devices an entry manages."""

from __future__ import annotations

from homeassistant.config_entries import ConfigEntry

from .const import CONF_ADD_NEW_DEVICES, CONF_DEVICES, CONF_EXCLUDED_DEVICES
from .ecoflow.api import DeviceInfo
from .stored_options import strings_option


def devices_to_manage(entry: ConfigEntry, account: list[DeviceInfo]) -> list[DeviceInfo]:
    """Selected devices still on the account, plus new ones when the user wants those.

    With "add new devices" on, the user's choice is kept as the set they turned
    off, so a device added to the account later is managed without a visit to
    the options; with it off, only the devices ticked are.
    """
    if entry.options.get(CONF_ADD_NEW_DEVICES, True):
        excluded = set(strings_option(entry.options, CONF_EXCLUDED_DEVICES))
        return [device for device in account if device.sn not in excluded]
    selected = set(strings_option(entry.options, CONF_DEVICES))
    return [device for device in account if device.sn in selected]


def selection_options(selected: list[str], account: list[DeviceInfo]) -> dict[str, list[str]]:
    """Options that remember both what was ticked and what was left out."""
    return {
        CONF_DEVICES: sorted(selected),
        CONF_EXCLUDED_DEVICES: sorted(device.sn for device in account if device.sn not in selected),
    }
