"""Constants of the EcoFlow Power Management integration."""

from __future__ import annotations

from datetime import timedelta
from typing import Final

DOMAIN: Final = "ecoflow_power"
MANUFACTURER: Final = "EcoFlow"

CONF_ACCESS_KEY: Final = "access_key"
CONF_SECRET_KEY: Final = "secret_key"
CONF_REGION: Final = "region"
CONF_BASE_URL: Final = "base_url"
CONF_ADVANCED: Final = "advanced"
CONF_DEVICES: Final = "devices"
CONF_ADD_NEW_DEVICES: Final = "add_new_devices"
CONF_EXCLUDED_DEVICES: Final = "excluded_devices"
CONF_STALE_AFTER: Final = "stale_after_sec"
CONF_GRID_CONFIRM: Final = "grid_confirm_sec"

DEFAULT_STALE_AFTER: Final = 120
DEFAULT_GRID_CONFIRM: Final = 10

# How often entity availability is re-evaluated: a silent device must turn
# unavailable without a message arriving to trigger it.
STALE_CHECK_INTERVAL: Final = timedelta(seconds=10)
# New or removed devices on the account are picked up at this pace.
DEVICE_LIST_INTERVAL: Final = timedelta(minutes=15)
# The cloud counts as unreachable for a repair after this long disconnected.
CLOUD_UNREACHABLE_REPAIR_AFTER: Final = timedelta(minutes=30)

ISSUE_UNDECODABLE_DEVICE: Final = "undecodable_device"
ISSUE_CLOUD_UNREACHABLE: Final = "cloud_unreachable"

CONF_AGENTS: Final = "agents"
CONF_POLICY: Final = "policy"
CONF_TOPIC_PREFIX: Final = "topic_prefix"
DEFAULT_TOPIC_PREFIX: Final = "power-manager"

# One bus event for everything the policy does; `type` tells which.
EVENT_POLICY: Final = f"{DOMAIN}_event"
POLICY_EVENT_TYPES: Final = (
    "grid_lost",
    "grid_restored",
    "battery_critical",
    "shutdown_sent",
    "shutdown_aborted",
    "agent_offline",
    "power_restored",
    "host_woken",
    "host_wake_failed",
)
ISSUE_MQTT_MISSING: Final = "mqtt_missing"
ISSUE_TELEMETRY_STALE: Final = "telemetry_stale"
CONF_STATION: Final = "station"
CONF_AGENT_ID: Final = "agent_id"
CONF_NEW_SECRET: Final = "new_secret"

# Power comes back: the restore rule per station and the hosts' wake targets.
CONF_RESTORE: Final = "restore"
CONF_WAKE_TARGETS: Final = "wake_targets"
WAKE_MAC: Final = "mac"
WAKE_BROADCAST: Final = "broadcast"
WAKE_PORT: Final = "port"
DEFAULT_WAKE_PORT: Final = 9
ISSUE_HOST_WAKE_FAILED: Final = "host_wake_failed"
