"""Home Assistant glue of the NUT server: started and stopped with the config entry.

Each configured station is a UPS (plus aliases). Its NUT clients are one more
consumer of the station's policy: a `local` AgentBinding `nut-<upsname>` in
its engine (see `nut.consumer.nut_bindings`), whose commands `handle_command` answers in
place of a host agent. Variables are computed per query from the telemetry
coordinator's PowerState and the engine's PolicyStatus.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
import logging
from typing import TYPE_CHECKING, Any

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.loader import async_get_integration
from homeassistant.util import dt as dt_util

from .const import DOMAIN, EVENT_POLICY
from .coordinator import now_ts
from .ecoflow.state import PowerState
from .issues import clear_repair, raise_repair
from .nut import ClientEvent, ClientEventKind, NutServer, UserTable
from .nut.config import NutConfig
from .nut.consumer import nut_agent_id
from .nut.station import StationBackend, StationUps
from .policy.effects import Effect, PublishCommand
from .policy.settings import PolicySettings
from .policy.status import PolicyStatus
from .restore_coordinator import wake_settings_for

if TYPE_CHECKING:
    from .policy_coordinator import PolicyCoordinator

_LOGGER = logging.getLogger(__name__)

ISSUE_NUT_PORT = "nut_port_unavailable"
EVENT_NUT_CLIENT_LEFT = "nut_client_left"


# A local consumer's commands are never published, so their signature is never
# checked by anyone; AgentBinding still wants a non-empty secret.
class NutServerManager:
    """The running server of one config entry, its policy consumers and client views."""

    def __init__(self, hass: HomeAssistant, entry: ConfigEntry, policy: PolicyCoordinator) -> None:
        self.hass = hass
        self.entry = entry
        self.policy = policy
        self.telemetry = policy.telemetry
        self.config = NutConfig.from_options(entry.options)
        self.server: NutServer | None = None
        self.backend: StationBackend | None = None
        self.error: str | None = None
        self._due_unsub: CALLBACK_TYPE | None = None
        self._policy_unsub: CALLBACK_TYPE | None = None
        self._listeners: list[Callable[[], None]] = []
        # Told `(sn, consumer id)` when a NUT client logs in (the restore rule: host back up).
        self.login_listeners: list[Callable[[str, str], None]] = []
        self._sn_of_agent: dict[str, str] = {}

    # --- life cycle ---------------------------------------------------------

    async def async_start(self) -> None:
        version = str((await async_get_integration(self.hass, DOMAIN)).version or "0")
        stations = []
        for sn, station in self.config.stations.items():
            if sn not in self.telemetry.devices:
                continue
            info = self.telemetry.devices[sn]
            model = self.telemetry.models[sn].name
            limit = self._charge_low(sn, station.soc_threshold)
            stations.append(
                StationUps(
                    sn=sn,
                    name=station.name,
                    description=f"{info.device_name or model} ({model})",
                    model=model,
                    aliases=station.aliases,
                    charge_low_pct=limit,
                    runtime_low_sec=self._runtime_low(sn),
                    charge_restart_pct=self._charge_restart(sn),
                )
            )
            self._sn_of_agent[nut_agent_id(station.name)] = sn
        self.backend = StationBackend(
            stations,
            power_state=self._power_state,
            policy_status=self._policy_status,
            clock=now_ts,
            stale_after_sec=self.telemetry.stale_after_sec,
            driver_version=version,
            on_client_event=self._on_client_event,
        )
        # The engines may not exist yet (the server starts before the policy,
        # so no first decision misses the router): every policy update takes
        # over a live shutdown restored from storage and re-arms the timer.
        self._policy_unsub = self.policy.async_add_listener(self._policy_changed)
        self.server = NutServer(
            self.backend,
            UserTable(self.config.users),
            host=self.config.host,
            port=self.config.port,
            version=version,
        )
        issue_id = f"{ISSUE_NUT_PORT}_{self.entry.entry_id}"
        try:
            await self.server.start()
        except OSError as err:
            # HA keeps running; the repair says why NAS clients see no server.
            self.error = str(err)
            _LOGGER.error(
                "NUT server cannot listen on %s:%s: %s", self.config.host, self.config.port, err
            )
            raise_repair(
                self.hass,
                issue_id,
                ISSUE_NUT_PORT,
                {"address": f"{self.config.host}:{self.config.port}", "error": str(err)},
            )
            return
        clear_repair(self.hass, issue_id)
        _LOGGER.info("NUT server listening on %s:%s", self.config.host, self.server.port)
        self._schedule_due()

    async def async_stop(self) -> None:
        if self._policy_unsub:
            self._policy_unsub()
            self._policy_unsub = None
        if self._due_unsub:
            self._due_unsub()
            self._due_unsub = None
        if self.server is not None:
            await self.server.stop()

    # --- the policy consumer ------------------------------------------------

    def _power_state(self, sn: str) -> PowerState | None:
        return (self.telemetry.data or {}).get(sn)

    def _policy_status(self, sn: str) -> PolicyStatus | None:
        engine = self.policy.engines.get(sn)
        return engine.status() if engine is not None else None

    def _settings(self, sn: str) -> PolicySettings:
        # The engine's settings: the stored ones, or the defaults when those are invalid.
        engine = self.policy.engines.get(sn)
        return engine.settings if engine is not None else PolicySettings()

    def _charge_restart(self, sn: str) -> float | None:
        # The restore rule wakes hosts above this level (issue 14); off: not served.
        restore = wake_settings_for(self.entry.options, sn)
        return restore.restart_soc if restore.enabled else None

    def _charge_low(self, sn: str, own: float | None) -> float:
        if own is not None:
            return float(own)
        return self._settings(sn).soc_threshold

    def _runtime_low(self, sn: str) -> int:
        return int(self._settings(sn).runtime_threshold_min or 0) * 60

    @callback
    def handle_command(self, sn: str | None, effect: PublishCommand) -> bool:
        """Answer a command addressed to a NUT consumer; False for anyone else's."""
        backend = self.backend
        if backend is None or not backend.is_local_agent(effect.agent_id):
            return False
        station = self._sn_of_agent.get(effect.agent_id, sn)
        engine = self.policy.engines.get(station or "")
        if engine is None:
            return True
        for ack in backend.route(effect.agent_id, effect.payload):
            self._run(engine.handle_ack(effect.agent_id, ack), station)
        self._schedule_due()
        self._notify()
        return True

    @callback
    def _policy_changed(self) -> None:
        if self.backend is not None:
            self.backend.adopt()
        self._schedule_due()

    def _run(self, effects: list[Effect], sn: str | None) -> None:
        # The policy coordinator carries effects out (events, audit, storage, timers).
        self.policy._run_effects_and_reschedule(effects, sn)

    @callback
    def _schedule_due(self) -> None:
        if self._due_unsub:
            self._due_unsub()
            self._due_unsub = None
        deadline = self.backend.next_deadline() if self.backend else None
        if deadline is None:
            return
        when = dt_util.utc_from_timestamp(max(deadline, now_ts()))
        self._due_unsub = async_track_point_in_utc_time(self.hass, self._async_due, when)

    @callback
    def _async_due(self, _now: datetime) -> None:
        self._due_unsub = None
        if self.backend is None:
            return
        for agent_id, ack in self.backend.due():
            sn = self._sn_of_agent.get(agent_id)
            engine = self.policy.engines.get(sn or "")
            if engine is not None:
                self._run(engine.handle_ack(agent_id, ack), sn)
        self._schedule_due()
        self._notify()

    # --- clients ------------------------------------------------------------

    def add_listener(self, listener: Callable[[], None]) -> CALLBACK_TYPE:
        self._listeners.append(listener)
        return lambda: self._listeners.remove(listener)

    def _notify(self) -> None:
        for listener in list(self._listeners):
            listener()

    def station_ups(self, sn: str) -> StationUps | None:
        if self.backend is None:
            return None
        return next((s for s in self.backend.stations if s.sn == sn), None)

    def clients_of(self, sn: str) -> list[dict[str, str | None]]:
        station = self.station_ups(sn)
        if self.server is None or station is None:
            return []
        return [
            {"address": c.address, "username": c.username, "ups": c.ups}
            for c in self.server.logins(station.names)
        ]

    def _on_client_event(self, station: StationUps, event: ClientEvent) -> None:
        self.hass.loop.call_soon(self._notify)
        if event.kind is ClientEventKind.LOGIN:
            for listener in list(self.login_listeners):
                listener(station.sn, station.agent_id)
            return
        status = (self.variables(station) or {}).get("ups.status", "")
        if "OB" not in status.split():
            return
        device_id = self.telemetry.device_ids.get(station.sn)
        self.hass.bus.async_fire(
            EVENT_POLICY,
            {
                "type": EVENT_NUT_CLIENT_LEFT,
                "device_id": device_id,
                "station": station.description,
                "ups": event.ups,
                "address": event.address,
                "username": event.username,
                "reason": event.kind.value,
                "ups_status": status,
            },
        )

    def variables(self, station: StationUps) -> dict[str, str] | None:
        """What a client reads for `station` now (None: DATA-STALE)."""
        snapshot = self.backend.snapshot(station.name) if self.backend else None
        if snapshot is None or snapshot.variables is None:
            return None
        return dict(snapshot.variables)

    def diagnostics(self) -> dict[str, Any]:
        server = self.server
        stations = self.backend.stations if self.backend else []
        return {
            "enabled": self.config.enabled,
            "host": self.config.host,
            "port": server.port if server is not None else self.config.port,
            "running": bool(server and server.running),
            "error": self.error,
            "users": sorted(user.username for user in self.config.users),  # never passwords
            "refused_connections": server.refused_connections if server else 0,
            "stations": {
                station.sn: {
                    "name": station.name,
                    "aliases": list(station.aliases),
                    "agent_id": station.agent_id,
                    "charge_low_pct": station.charge_low_pct,
                    "clients": self.clients_of(station.sn),
                    "variables": self.variables(station),
                }
                for station in stations
            },
        }


async def async_setup_nut(
    hass: HomeAssistant, entry: ConfigEntry, policy: PolicyCoordinator
) -> NutServerManager | None:
    """Start the NUT server if enabled (the hook in __init__.async_setup_entry)."""
    config = NutConfig.from_options(entry.options)
    if not config.enabled:
        return None
    manager = NutServerManager(hass, entry, policy)
    policy.local_router = manager.handle_command
    await manager.async_start()
    entry.async_on_unload(manager.async_stop)
    return manager
