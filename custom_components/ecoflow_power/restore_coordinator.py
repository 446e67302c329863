"""Power comes back: wakes the hosts that shut down, through HA's `wake_on_lan`.

One `WakePlanner` (pure, policy/wake.py) per station decides; this module feeds
it (grid and weakest pack from telemetry, committed shutdowns and agents coming
online from the policy coordinator), sends its magic packets with the
`wake_on_lan.send_magic_packet` action, fires its events and keeps the hosts
still owed a wake-up across restarts.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict
from datetime import datetime
import logging
from typing import TYPE_CHECKING, Any, Protocol

from homeassistant.config_entries import ConfigEntry
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import async_track_point_in_utc_time
from homeassistant.helpers.storage import Store
from homeassistant.setup import async_setup_component
from homeassistant.util import dt as dt_util

from .const import (
    CONF_RESTORE,
    CONF_WAKE_TARGETS,
    DOMAIN,
    ISSUE_HOST_WAKE_FAILED,
    WAKE_BROADCAST,
    WAKE_MAC,
    WAKE_PORT,
)
from .ecoflow.state import PowerState
from .issues import clear_repair, raise_repair
from .nut.config import NutConfig
from .nut.consumer import nut_agent_id
from .policy.protocol import AgentState
from .policy.wake import (
    EmitWakeEvent,
    SendMagicPacket,
    WakeEffect,
    WakeEvent,
    WakePlanner,
    WakeSettings,
    WakeTarget,
)
from .stored_options import mapping, mapping_option

if TYPE_CHECKING:
    from .coordinator import EcoflowTelemetryCoordinator
    from .policy_coordinator import PolicyCoordinator

_LOGGER = logging.getLogger(__name__)

WAKE_ON_LAN = "wake_on_lan"
STORAGE_VERSION = 1


class NutLogins(Protocol):
    """What the restore rule needs of the NUT server (NutServerManager): its client logins."""

    login_listeners: list[Callable[[str, str], None]]


def wake_settings_for(options: Mapping[str, Any], sn: str) -> WakeSettings:
    """A station's restore rule from the options; off when not set or not valid.

    Off is the safe side: the rule only wakes hosts, it never shuts one down.
    """
    stored = mapping(mapping_option(options, CONF_RESTORE).get(sn))
    known = set(WakeSettings.__dataclass_fields__)
    try:
        return WakeSettings(**{key: value for key, value in stored.items() if key in known})
    except (TypeError, ValueError) as err:
        _LOGGER.warning("The stored restore rule of %s is not valid, so it is off: %s", sn, err)
        return WakeSettings()


class WakeCoordinator:
    """The restore rule of every station of one config entry."""

    def __init__(
        self,
        hass: HomeAssistant,
        entry: ConfigEntry,
        telemetry: EcoflowTelemetryCoordinator,
        policy: PolicyCoordinator,
    ) -> None:
        self.hass = hass
        self.entry = entry
        self.telemetry = telemetry
        self.policy = policy
        self.planners: dict[str, WakePlanner] = {}
        self._store: Store[dict[str, Any]] = Store(
            hass, STORAGE_VERSION, f"{DOMAIN}.{entry.entry_id}.wake"
        )
        self._unsubscribers: list[CALLBACK_TYPE] = []
        self._tick_unsub: CALLBACK_TYPE | None = None
        self._online: set[str] = set()
        self._committed: set[str] = set()  # agents whose shutdown is committed (edge detection)

    # --- life cycle -------------------------------------------------------

    async def async_start(self, nut: NutLogins | None = None) -> None:
        """Start the planners; `nut`: the NUT server, whose client logins say a host is up."""
        stored = await self._store.async_load() or {}
        for sn in self.telemetry.devices:
            settings = wake_settings_for(self.entry.options, sn)
            planner = WakePlanner(settings, self._targets(sn), clock=self._now)
            planner.restore(stored.get(sn, {}))
            self.planners[sn] = planner
        if any(p.settings.enabled for p in self.planners.values()) and not (
            self.hass.services.has_service(WAKE_ON_LAN, "send_magic_packet")
        ):
            await async_setup_component(self.hass, WAKE_ON_LAN, {})
        self._online = self._agents_online()
        # Shutdowns committed before this start are known to the restored planners.
        self._committed = self._committed_agents()
        self._unsubscribers.append(
            self.telemetry.async_add_telemetry_listener(self._handle_telemetry)
        )
        self._unsubscribers.append(self.policy.async_add_listener(self._handle_policy_update))
        if nut is not None:
            nut.login_listeners.append(self._handle_nut_login)
            self._unsubscribers.append(lambda: nut.login_listeners.remove(self._handle_nut_login))
        self._handle_policy_update()

    async def async_stop(self) -> None:
        while self._unsubscribers:
            self._unsubscribers.pop()()
        if self._tick_unsub:
            self._tick_unsub()
            self._tick_unsub = None
        await self._store.async_save(self._storage_data())

    # --- inputs -----------------------------------------------------------

    @staticmethod
    def _now() -> float:
        return dt_util.utcnow().timestamp()

    def _targets(self, sn: str) -> list[WakeTarget]:
        """Agents of the station with a MAC: from the options, else what the agent reports."""
        overrides = mapping_option(self.entry.options, CONF_WAKE_TARGETS)
        targets: list[WakeTarget] = []
        for agent_id, agent in self.policy.agents.items():
            if agent.device != sn:
                continue
            override = mapping(overrides.get(agent_id))
            status = self.policy.agent_status.get(agent_id)
            mac = override.get(WAKE_MAC) or getattr(status, "mac", None)
            if not mac:
                continue
            broadcast = override.get(WAKE_BROADCAST) or getattr(status, "broadcast", None)
            port = override.get(WAKE_PORT)
            targets.append(
                WakeTarget(
                    agent_id,
                    str(mac),
                    broadcast=str(broadcast) if broadcast else None,
                    port=_port(port),
                    infrastructure=bool(getattr(agent.binding, "infrastructure", False)),
                )
            )
        return targets + self._nut_targets(sn)

    def _station_of(self, host_id: str) -> str | None:
        agent = self.policy.agents.get(host_id)
        if agent is not None:
            return agent.device
        for sn, status in (self.policy.data or {}).items():
            if host_id in status.agents:
                return sn  # a NUT consumer: a binding of that station's engine only
        return None

    def _committed_agents(self) -> set[str]:
        committed: set[str] = set()
        for status in (self.policy.data or {}).values():
            for agent_id, view in status.agents.items():
                if view.committed or getattr(view, "fsd", False):
                    committed.add(agent_id)
        return committed

    def _nut_targets(self, sn: str) -> list[WakeTarget]:
        """The NUT clients of the station, as one host (the MAC set for them in the options)."""
        overrides = mapping_option(self.entry.options, CONF_WAKE_TARGETS)
        station = NutConfig.from_options(self.entry.options).stations.get(sn)
        if station is None:
            return []
        host_id = nut_agent_id(station.name)
        override = mapping(overrides.get(host_id))
        if not override.get(WAKE_MAC):
            return []
        port = override.get(WAKE_PORT)
        return [
            WakeTarget(
                host_id,
                str(override[WAKE_MAC]),
                broadcast=override.get(WAKE_BROADCAST) or None,
                port=_port(port),
                infrastructure=False,
            )
        ]

    @callback
    def _handle_nut_login(self, sn: str, host_id: str) -> None:
        planner = self.planners.get(sn)
        if planner is not None:
            self._run(sn, planner.host_online(host_id))

    def _agents_online(self) -> set[str]:
        return {
            agent_id
            for agent_id, status in self.policy.agent_status.items()
            if status.state is AgentState.ONLINE
        }

    @callback
    def _handle_telemetry(self, sn: str, state: PowerState) -> None:
        planner = self.planners.get(sn)
        if planner is None or not planner.settings.enabled:
            return
        self._run(sn, planner.update(state.grid, state.soc_min))

    @callback
    def _handle_policy_update(self) -> None:
        for sn, planner in self.planners.items():
            if planner.settings.enabled:
                # Agents report their MAC in their status: refresh the targets.
                planner.reconfigure(planner.settings, self._targets(sn))
        committed = self._committed_agents()
        for agent_id in committed - self._committed:
            station_sn = self._station_of(agent_id)
            if station_sn is not None and (station := self.planners.get(station_sn)) is not None:
                station.note_committed(agent_id)
        self._committed = committed
        online = self._agents_online()
        for agent_id in online - self._online:
            agent = self.policy.agents.get(agent_id)
            if agent is not None and (station := self.planners.get(agent.device)) is not None:
                self._run(agent.device, station.host_online(agent_id))
        self._online = online
        self._schedule()

    # --- effects and timers -----------------------------------------------

    @callback
    def _run(self, sn: str, effects: list[WakeEffect]) -> None:
        for effect in effects:
            if isinstance(effect, SendMagicPacket):
                self.hass.async_create_task(self._async_send(sn, effect), eager_start=True)
            elif isinstance(effect, EmitWakeEvent):
                self._fire(sn, effect)
        if effects:
            self._store.async_delay_save(self._storage_data, 1)
        self._schedule()

    async def _async_send(self, sn: str, packet: SendMagicPacket) -> None:
        data: dict[str, Any] = {"mac": packet.mac}
        if packet.broadcast:
            data["broadcast_address"] = packet.broadcast
        if packet.port:
            data["broadcast_port"] = packet.port
        try:
            await self.hass.services.async_call(
                WAKE_ON_LAN, "send_magic_packet", data, blocking=True
            )
        except (HomeAssistantError, OSError) as err:
            _LOGGER.warning("Wake-on-LAN to %s failed: %s", packet.host_id, err)
            return
        _LOGGER.info(
            "Wake-on-LAN sent to %s (%s), attempt %d", packet.host_id, packet.mac, packet.attempt
        )

    def _fire(self, sn: str, effect: EmitWakeEvent) -> None:
        host = effect.data.get("host")
        issue_id = f"{ISSUE_HOST_WAKE_FAILED}_{host}"
        if effect.event_type is WakeEvent.HOST_WAKE_FAILED:
            raise_repair(
                self.hass,
                issue_id,
                ISSUE_HOST_WAKE_FAILED,
                {"host": str(host), "attempts": str(effect.data.get("attempts"))},
            )
        elif effect.event_type is WakeEvent.HOST_WOKEN:
            clear_repair(self.hass, issue_id)
        self.policy.fire_policy_event(sn, effect.event_type.value, effect.data, agent=host)

    @callback
    def _schedule(self) -> None:
        if self._tick_unsub:
            self._tick_unsub()
            self._tick_unsub = None
        deadlines = [d for p in self.planners.values() if (d := p.next_deadline()) is not None]
        if not deadlines:
            return
        when = dt_util.utc_from_timestamp(max(min(deadlines), self._now()))
        self._tick_unsub = async_track_point_in_utc_time(self.hass, self._async_tick, when)

    @callback
    def _async_tick(self, _now: datetime) -> None:
        self._tick_unsub = None
        for sn, planner in self.planners.items():
            self._run(sn, planner.tick())
        self._schedule()

    def _storage_data(self) -> dict[str, Any]:
        return {sn: planner.to_dict() for sn, planner in self.planners.items()}

    def diagnostics(self) -> dict[str, Any]:
        return {
            sn: {
                "settings": asdict(planner.settings),
                "owed": list(planner.owed),
                "waking": planner.waking,
            }
            for sn, planner in self.planners.items()
        }


def _port(value: Any) -> int | None:
    """A stored UDP port for the magic packet, or None (the default port)."""
    if isinstance(value, bool) or not isinstance(value, int | str):
        return None
    try:
        port = int(value)
    except ValueError:
        return None
    return port if 1 <= port <= 65535 else None
