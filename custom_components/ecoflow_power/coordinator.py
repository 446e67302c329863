"""Push coordinator: EcoFlow cloud telemetry in, one PowerState per device out."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import datetime
import hashlib
import logging

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers import device_registry as dr, issue_registry as ir
from homeassistant.helpers.event import async_track_time_interval
from homeassistant.helpers.update_coordinator import DataUpdateCoordinator

from .clock import now_ts
from .const import (
    CLOUD_UNREACHABLE_REPAIR_AFTER,
    DEVICE_LIST_INTERVAL,
    DOMAIN,
    ISSUE_CLOUD_UNREACHABLE,
    ISSUE_UNDECODABLE_DEVICE,
    STALE_CHECK_INTERVAL,
)
from .device_cache import DeviceCache
from .device_selection import devices_to_manage
from .ecoflow.api import DeviceInfo, EcoflowApiClient
from .ecoflow.backoff import Backoff
from .ecoflow.cloud_messages import RawMessage
from .ecoflow.errors import EcoflowAuthError, EcoflowError
from .ecoflow.models import ModelInfo, identify_model
from .ecoflow.mqtt_session import CloudMqttSession
from .ecoflow.state import PowerState
from .ecoflow.tracker import DeviceTracker
from .issues import ISSUE_TELEMETRY_SETTINGS_INVALID, clear_repair, raise_repair
from .telemetry_settings import TelemetrySettings

__all__ = ["EcoflowTelemetryCoordinator", "mqtt_client_id", "now_ts"]

_LOGGER = logging.getLogger(__name__)

# A device that sent this many messages without one decoding is reported as a
# repair: fewer could be a start-up hiccup.
UNDECODABLE_AFTER_MESSAGES = 20
# The account's device list is fetched in the background at start, retried
# with these delays until the cloud answers once.
ACCOUNT_RETRY_INITIAL = 5.0
ACCOUNT_RETRY_MAX = 300.0


def mqtt_client_id(entry_unique_id: str) -> str:
    """One stable client id per account: the broker caps distinct ids per day."""
    digest = hashlib.sha256(entry_unique_id.encode()).hexdigest()[:16]
    return f"HomeAssistant-ecoflow_power-{digest}"


class EcoflowTelemetryCoordinator(DataUpdateCoordinator[dict[str, PowerState]]):
    """Owns the cloud MQTT session and one DeviceTracker per selected device.

    There is no polling interval: the session pushes messages in and the
    coordinator tells entities only when a device's normalized state changed.
    """

    config_entry: ConfigEntry

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        client: EcoflowApiClient,
        devices: list[DeviceInfo],
        device_cache: DeviceCache | None = None,
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
        self.device_cache = device_cache
        self.settings = TelemetrySettings.from_options(entry.options)
        self.stale_after_sec = float(self.settings.stale_after_sec)
        grid_confirm = float(self.settings.grid_confirm_sec)
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
        self._connected_since: float | None = None
        # Stations logged as silent while the cloud was up (logged again once back).
        self._silent: set[str] = set()
        self._unsubscribers: list[CALLBACK_TYPE] = []
        self._telemetry_listeners: list[Callable[[str, PowerState], None]] = []
        self._link_listeners: list[Callable[[bool], None]] = []
        # True once the cloud listed the account since this start.
        self.account_listed = False
        self._account_task: asyncio.Task[None] | None = None
        self._reauth_started = False

    async def _async_update_data(self) -> dict[str, PowerState]:
        return self._snapshots()

    def _snapshots(self) -> dict[str, PowerState]:
        now = now_ts()
        return {
            sn: tracker.snapshot(now, self.stale_after_sec) for sn, tracker in self.trackers.items()
        }

    async def async_start(self) -> None:
        """Start the cloud session and freshness timers; returns without waiting for the cloud."""
        issue_id = f"{ISSUE_TELEMETRY_SETTINGS_INVALID}_{self.config_entry.entry_id}"
        if self.settings.refused:
            _LOGGER.warning(
                "%s: stored telemetry settings refused, using defaults: %s",
                self.config_entry.title,
                "; ".join(self.settings.refused),
            )
            raise_repair(
                self.hass,
                issue_id,
                ISSUE_TELEMETRY_SETTINGS_INVALID,
                {
                    "error": "; ".join(self.settings.refused),
                    "stale": str(self.settings.stale_after_sec),
                    "confirm": str(self.settings.grid_confirm_sec),
                },
            )
        else:
            clear_repair(self.hass, issue_id)
        self.data = self._snapshots()
        await self.session.start()
        self._account_task = self.config_entry.async_create_background_task(
            self.hass, self._async_list_account_until_answered(), "ecoflow account"
        )
        self._unsubscribers.append(
            async_track_time_interval(
                self.hass, self._async_check_freshness, STALE_CHECK_INTERVAL, name="ecoflow stale"
            )
        )
        self._unsubscribers.append(
            async_track_time_interval(
                self.hass,
                self._async_device_list_timer,
                DEVICE_LIST_INTERVAL,
                name="ecoflow devices",
            )
        )

    async def async_stop(self) -> None:
        """Stop the session and timers; nothing is left running afterwards."""
        while self._unsubscribers:
            self._unsubscribers.pop()()
        if self._account_task is not None:
            self._account_task.cancel()
            self._account_task = None
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
    def async_add_link_listener(self, listener: Callable[[bool], None]) -> CALLBACK_TYPE:
        """Call `listener(cloud_connected)` whenever the cloud session connects or drops."""
        self._link_listeners.append(listener)

        @callback
        def remove() -> None:
            self._link_listeners.remove(listener)

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
        if message.sn in self._silent and state.updated_at is not None:
            self._silent.discard(message.sn)
            _LOGGER.info("%s sends telemetry again", self._station_name(message.sn))
        elif state.updated_at is not None and (previous is None or previous.updated_at is None):
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
            self._async_update_station(message.sn)
        # The policy hears every accepted message: silence is what its
        # fail-safe watches for, so steady telemetry must not look like silence.
        for listener in list(self._telemetry_listeners):
            listener(message.sn, state)

    @callback
    def _async_update_station(self, sn: str) -> None:
        """async_set_updated_data for one station: only its entities are told.

        A message changes one station's state; its entities register with the
        station's serial as context (entity.py), the others need not recompute.
        """
        self.last_update_success = True  # as async_set_updated_data (no refresh interval here)
        for update_callback, context in list(self._listeners.values()):
            if context is not None and context != sn:
                continue
            try:
                update_callback()
            except Exception:
                _LOGGER.exception("Unexpected error updating a listener of %s", self.name)

    def _update_firmware(self, sn: str, firmware: str) -> None:
        """Firmware is only known from telemetry, after the device was registered."""
        if (device_id := self.device_ids.get(sn)) is None:
            return
        registry = dr.async_get(self.hass)
        device = registry.async_get(device_id)
        if isinstance(device, dr.DeviceEntry) and device.sw_version != firmware:
            registry.async_update_device(device_id, sw_version=firmware)
        if self.device_cache is not None:
            self.device_cache.set_firmware(sn, firmware)

    @callback
    def _handle_connection_change(self, connected: bool) -> None:
        self.cloud_connected = connected
        if connected:
            self._disconnected_since = None
            self._connected_since = now_ts()
            clear_repair(self.hass, self._cloud_issue_id)
        else:
            self._connected_since = None
            if self._disconnected_since is None:
                self._disconnected_since = now_ts()
        for listener in list(self._link_listeners):
            listener(connected)
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
        self._log_silent_stations()

    def _station_name(self, sn: str) -> str:
        return self.devices[sn].device_name or self.models[sn].name

    def _log_silent_stations(self) -> None:
        """Log once a station that stopped sending while the cloud is up.

        Only once the cloud has been up for a whole stale timeout: right after
        a reconnect every station is stale until its next message, and a
        cloud outage is logged by the session, not once per station.
        """
        since = self._connected_since
        if since is None or now_ts() - since < self.stale_after_sec:
            return
        for sn in self.trackers:
            if sn in self._silent or self.is_fresh(sn):
                continue
            self._silent.add(sn)
            age = self.seconds_since_update(sn)
            _LOGGER.info(
                "%s sends no telemetry (%s) while the EcoFlow cloud is connected; "
                "check its Wi-Fi and power",
                self._station_name(sn),
                f"last seen {int(age)} s ago" if age is not None else "none since the start",
            )

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
        if tracker.decoded_messages > 1:
            return  # decoding works: nothing to raise or clear (and stats cost a copy)
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

    async def _async_list_account_until_answered(self) -> None:
        """List the account in the background until the cloud answers once.

        Setup does not wait for this: entities and policies already run from
        the cache. Refused keys start reauth and stop the retries (a reauth
        reloads the entry); anything else is retried with backoff.
        """
        backoff = Backoff(initial=ACCOUNT_RETRY_INITIAL, maximum=ACCOUNT_RETRY_MAX)
        while not await self._async_refresh_device_list():
            if self._reauth_started:
                return
            await asyncio.sleep(backoff.next_delay())

    async def _async_device_list_timer(self, _now: datetime) -> None:
        await self._async_refresh_device_list()

    async def _async_refresh_device_list(self) -> bool:
        """Pick up devices added to or removed from the account; True if the cloud answered."""
        try:
            account = await self.client.devices()
        except EcoflowAuthError:
            _LOGGER.warning(
                "EcoFlow refused the keys of %s; the policy keeps running on what it knows",
                self.config_entry.title,
            )
            self._reauth_started = True
            self.config_entry.async_start_reauth(self.hass)
            return False
        except EcoflowError as err:
            _LOGGER.debug("Device list refresh failed: %s", err)
            return False
        self.account_listed = True
        await self.async_apply_account_devices(account)
        return True

    async def async_apply_account_devices(self, account: list[DeviceInfo]) -> None:
        """Cache the account; reload when it gained a device the user wants, or lost one."""
        self.account_serials = {device.sn for device in account}
        if self.device_cache is not None:
            self.device_cache.set_account(account)
        wanted = {device.sn for device in devices_to_manage(self.config_entry, account)}
        if wanted != set(self.devices):
            _LOGGER.info("EcoFlow account devices changed; reloading %s", self.config_entry.title)
            self.hass.config_entries.async_schedule_reload(self.config_entry.entry_id)
            return
        self._update_device_names(account)

    def _update_device_names(self, account: list[DeviceInfo]) -> None:
        """Names and models learned from the cloud after a start from the cache or selection."""
        registry = dr.async_get(self.hass)
        for device in account:
            known = self.devices.get(device.sn)
            if known is None or (known.device_name, known.product_name) == (
                device.device_name,
                device.product_name,
            ):
                continue
            self.devices[device.sn] = device
            self.models[device.sn] = model = identify_model(device.sn, device.product_name)
            if (device_id := self.device_ids.get(device.sn)) is not None:
                registry.async_update_device(
                    device_id, name=device.device_name or model.name, model=model.name
                )

    def known_firmware(self, sn: str) -> str | None:
        """The firmware last seen (this run or a previous one), from the device cache."""
        if self.device_cache is None:
            return None
        return self.device_cache.firmware.get(sn)

    def seconds_since_update(self, sn: str) -> float | None:
        state = self.data.get(sn) if self.data else None
        if state is None or state.updated_at is None:
            return None
        return now_ts() - state.updated_at
