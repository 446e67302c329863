"""Push coordinator: EcoFlow cloud telemetry in, one PowerState per device out."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import datetime
import hashlib
import logging
from typing import TYPE_CHECKING

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator
from homeassistant.util import dt as dt_util

from .const import (
    CLOUD_UNREACHABLE_REPAIR_AFTER,
    CONF_GRID_CONFIRM,
    CONF_STALE_AFTER,
    DEFAULT_GRID_CONFIRM,
    DEFAULT_STALE_AFTER,
    DEVICE_LIST_INTERVAL,
    DOMAIN,
    ISSUE_CLOUD_UNREACHABLE,
    ISSUE_UNDECODABLE_DEVICE,
    STALE_CHECK_INTERVAL,
)
from .ecoflow.api import DeviceInfo, EcoflowApiClient
from .ecoflow.errors import EcoflowAuthError, EcoflowError
from .ecoflow.models import ModelInfo, identify_model
from .ecoflow.mqtt_session import CloudMqttSession, RawMessage
from .ecoflow.state import PowerState
from .ecoflow.tracker import DeviceTracker
from .issues import clear_repair, raise_repair

if TYPE_CHECKING:
    from .policy_coordinator import PolicyCoordinator
    from .restore_coordinator import WakeCoordinator

_LOGGER = logging.getLogger(__name__)

# A device that sent this many messages without one decoding is reported as a
# repair: fewer could be a start-up hiccup.
UNDECODABLE_AFTER_MESSAGES = 20


@dataclass(kw_only=True)
class EcoflowRuntimeData:
    """What one config entry holds while it is loaded."""

    client: EcoflowApiClient
    telemetry: EcoflowTelemetryCoordinator
    policy: PolicyCoordinator | None = None
    wake: WakeCoordinator | None = None


type EcoflowConfigEntry = ConfigEntry[EcoflowRuntimeData]


def now_ts() -> float:
    """Wall-clock seconds, read through HA's clock so tests can freeze it."""
    return dt_util.utcnow().timestamp()


def mqtt_client_id(entry_unique_id: str) -> str:
    """One stable client id per account: the broker caps distinct ids per day."""
    digest = hashlib.sha256(entry_unique_id.encode()).hexdigest()[:16]
    return f"HomeAssistant-ecoflow_power-{digest}"


class EcoflowTelemetryCoordinator(DataUpdateCoordinator[dict[str, PowerState]]):
    """Owns the cloud MQTT session and one DeviceTracker per selected device.

    There is no polling interval: the session pushes messages in and the
    coordinator tells entities only when a device's normalized state changed.
    """

    config_entry: EcoflowConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: EcoflowConfigEntry,
        client: EcoflowApiClient,
        devices: list[DeviceInfo],
    ) -> None:
        super().__init__(
            hass,
            _LOGGER,
            config_entry=entry,
            name=f"{DOMAIN} telemetry",
            update_interval=None,
            always_update=False,
        )
        self.client = client
        self.stale_after_sec = float(entry.options.get(CONF_STALE_AFTER, DEFAULT_STALE_AFTER))
        grid_confirm = float(entry.options.get(CONF_GRID_CONFIRM, DEFAULT_GRID_CONFIRM))
        self.devices: dict[str, DeviceInfo] = {device.sn: device for device in devices}
        self.models: dict[str, ModelInfo] = {
            device.sn: identify_model(device.sn, device.product_name) for device in devices
        }
        self.trackers: dict[str, DeviceTracker] = {
            sn: DeviceTracker(sn, model, grid_confirm_sec=grid_confirm)
            for sn, model in self.models.items()
        }
        self.account_serials: set[str] = set(self.devices)
        # Device registry ids of the stations, filled in at setup.
        self.device_ids: dict[str, str] = {}
        self.session = CloudMqttSession(
            client,
            client_id=mqtt_client_id(entry.unique_id or entry.entry_id),
            devices=list(self.devices),
            on_message=self._handle_message,
            on_connection_change=self._handle_connection_change,
        )
        self.cloud_connected = False
        self._disconnected_since: float | None = now_ts()
        self._unsubscribers: list[CALLBACK_TYPE] = []
        self._telemetry_listeners: list[Callable[[str, PowerState], None]] = []

    async def _async_update_data(self) -> dict[str, PowerState]:
        return self._snapshots()

    def _snapshots(self) -> dict[str, PowerState]:
        now = now_ts()
        return {
            sn: tracker.snapshot(now, self.stale_after_sec) for sn, tracker in self.trackers.items()
        }

    async def async_start(self) -> None:
        """Start the cloud session and the timers that watch freshness."""
        self.data = self._snapshots()
        await self.session.start()
        self._unsubscribers.append(
            async_track_time_interval(
                self.hass, self._async_check_freshness, STALE_CHECK_INTERVAL, name="ecoflow stale"
            )
        )
        self._unsubscribers.append(
            async_track_time_interval(
                self.hass,
                self._async_refresh_device_list,
                DEVICE_LIST_INTERVAL,
                name="ecoflow devices",
            )
        )

    async def async_stop(self) -> None:
        """Stop the session and timers; nothing is left running afterwards."""
        while self._unsubscribers:
            self._unsubscribers.pop()()
        await self.session.stop()

    def is_fresh(self, sn: str) -> bool:
        """Whether the device's newest telemetry is younger than the stale timeout."""
        state = self.data.get(sn) if self.data else None
        if state is None or state.updated_at is None:
            return False
        return now_ts() - state.updated_at <= self.stale_after_sec

    @callback
    def async_add_telemetry_listener(
        self, listener: Callable[[str, PowerState], None]
    ) -> CALLBACK_TYPE:
        """Call `listener(sn, state)` after every accepted message, changed or not."""
        self._telemetry_listeners.append(listener)

        @callback
        def remove() -> None:
            self._telemetry_listeners.remove(listener)

        return remove

    @callback
    def _handle_message(self, message: RawMessage) -> None:
        tracker = self.trackers.get(message.sn)
        if tracker is None:
            return
        previous = self.data.get(message.sn)
        was_fresh = self.is_fresh(message.sn)
        changed = tracker.ingest(message.payload, message.source, message.received_at)
        self._update_undecodable_issue(message.sn, tracker)
        state = tracker.snapshot(now_ts(), self.stale_after_sec)
        accepted = previous is None or state.updated_at != previous.updated_at
        if not (changed or accepted):
            return
        if state.updated_at is not None and (previous is None or previous.updated_at is None):
            _LOGGER.info(
                "Receiving telemetry from %s (%s)",
                self.devices[message.sn].device_name or self.models[message.sn].name,
                self.models[message.sn].name,
            )
        if state.firmware and (previous is None or previous.firmware != state.firmware):
            self._update_firmware(message.sn, state.firmware)
        # Steady values still prove the device is alive: keep updated_at current
        # even when nothing an entity shows has changed.
        self.data = {**self.data, message.sn: state}
        if changed or not was_fresh:
            self.async_set_updated_data(self.data)
        # The policy hears every accepted message: silence is what its
        # fail-safe watches for, so steady telemetry must not look like silence.
        for listener in list(self._telemetry_listeners):
            listener(message.sn, state)

    def _update_firmware(self, sn: str, firmware: str) -> None:
        """Firmware is only known from telemetry, after the device was registered."""
        if (device_id := self.device_ids.get(sn)) is None:
            return
        registry = dr.async_get(self.hass)
        device = registry.async_get(device_id)
        if device is not None and device.sw_version != firmware:
            registry.async_update_device(device_id, sw_version=firmware)

    @callback
    def _handle_connection_change(self, connected: bool) -> None:
        self.cloud_connected = connected
        if connected:
            self._disconnected_since = None
            clear_repair(self.hass, self._cloud_issue_id)
        elif self._disconnected_since is None:
            self._disconnected_since = now_ts()
        self.async_update_listeners()

    @property
    def _cloud_issue_id(self) -> str:
        return f"{ISSUE_CLOUD_UNREACHABLE}_{self.config_entry.entry_id}"

    async def _async_check_freshness(self, _now: datetime | None = None) -> None:
        snapshots = self._snapshots()
        if snapshots != self.data:
            self.async_set_updated_data(snapshots)
        else:
            # Availability depends on the clock, not only on data: re-evaluate.
            self.async_update_listeners()
        self._update_cloud_issue()

    def _update_cloud_issue(self) -> None:
        since = self._disconnected_since
        if since is None or self.cloud_connected:
            return
        if now_ts() - since >= CLOUD_UNREACHABLE_REPAIR_AFTER.total_seconds():
            raise_repair(
                self.hass,
                self._cloud_issue_id,
                ISSUE_CLOUD_UNREACHABLE,
                {"minutes": str(int((now_ts() - since) // 60)), "title": self.config_entry.title},
                severity=ir.IssueSeverity.ERROR,
            )

    def _update_undecodable_issue(self, sn: str, tracker: DeviceTracker) -> None:
        stats = tracker.stats
        issue_id = f"{ISSUE_UNDECODABLE_DEVICE}_{sn}"
        if stats.decoded:
            if stats.decoded == 1:
                clear_repair(self.hass, issue_id)
            return
        if stats.messages == UNDECODABLE_AFTER_MESSAGES:
            seen = ", ".join(sorted(stats.unknown_types)) or "none"
            raise_repair(
                self.hass,
                issue_id,
                ISSUE_UNDECODABLE_DEVICE,
                {
                    "model": self.models[sn].name,
                    "messages": str(stats.messages),
                    "unknown_types": seen,
                    "last_error": stats.last_error or "none",
                },
            )

    async def _async_refresh_device_list(self, _now: datetime | None = None) -> None:
        """Pick up devices added to or removed from the account."""
        try:
            account = await self.client.devices()
        except EcoflowAuthError:
            self.config_entry.async_start_reauth(self.hass)
            return
        except EcoflowError as err:
            _LOGGER.debug("Device list refresh failed: %s", err)
            return
        await self.async_apply_account_devices(account)

    async def async_apply_account_devices(self, account: list[DeviceInfo]) -> None:
        """Reload when the account gained a device the user wants, or lost one."""
        # Imported here: the helper lives beside the config flow, which imports us.
        from .device_selection import devices_to_manage  # noqa: PLC0415

        self.account_serials = {device.sn for device in account}
        wanted = {device.sn for device in devices_to_manage(self.config_entry, account)}
        if wanted != set(self.devices):
            _LOGGER.info("EcoFlow account devices changed; reloading %s", self.config_entry.title)
            self.hass.config_entries.async_schedule_reload(self.config_entry.entry_id)

    def seconds_since_update(self, sn: str) -> float | None:
        state = self.data.get(sn) if self.data else None
        if state is None or state.updated_at is None:
            return None
        return now_ts() - state.updated_at
