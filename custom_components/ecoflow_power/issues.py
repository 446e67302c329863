"""Repair issues the integration raises: one way to raise and clear them."""

from __future__ import annotations

from homeassistant.core import HomeAssistant, callback
from homeassistant.helpers import issue_registry as ir

from .const import DOMAIN

# Repairs of the Home Assistant glue (the engine names its own in policy/effects.py).
ISSUE_POLICY_SETTINGS_INVALID = "policy_settings_invalid"
ISSUE_POLICY_STATE_UNREADABLE = "policy_state_unreadable"
ISSUE_AGENT_INVALID = "agent_options_invalid"
ISSUE_AGENT_UNMANAGED_STATION = "agent_unmanaged_station"
ISSUE_DEVICES_UNKNOWN = "devices_unknown"
ISSUE_TELEMETRY_SETTINGS_INVALID = "telemetry_settings_invalid"
ISSUE_OPTIONS_INVALID = "options_invalid"


@callback
def raise_repair(
    hass: HomeAssistant,
    issue_id: str,
    translation_key: str,
    placeholders: dict[str, str] | None = None,
    *,
    severity: ir.IssueSeverity = ir.IssueSeverity.WARNING,
) -> None:
    """Show a repair; raising it again only refreshes its text."""
    ir.async_create_issue(
        hass,
        DOMAIN,
        issue_id,
        is_fixable=False,
        severity=severity,
        translation_key=translation_key,
        translation_placeholders=placeholders,
    )


@callback
def clear_repair(hass: HomeAssistant, issue_id: str) -> None:
    ir.async_delete_issue(hass, DOMAIN, issue_id)
