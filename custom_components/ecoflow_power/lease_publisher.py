"""Publishes each agent's power lease (protocol 2) from the policy engines' statuses.

The lease (docs/protocol.md section 9, built by policy/lease.py) is retained
on `{prefix}/{agent_id}/power`: published at once when what it says changes
materially (grid, fsd, a deadline appearing, going or moving earlier), and
republished every LEASE_REFRESH_SEC (sooner when a held deadline is less than
two intervals away) while an agent is on battery, has a deadline or has fsd
set (carrying the smaller changes), so its expiry keeps
moving while Home Assistant is alive and stops moving when it is not. Agents
delivered locally (NUT) never get one. Removing an agent clears its lease.

Also kept here: each agent's clock offset, from prompt answers to commands,
with a repair above the clock-skew allowance.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
import json
import logging
from typing import Any, Final

from homeassistant.components import mqtt
from homeassistant.core import CALLBACK_TYPE, HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError
from homeassistant.helpers.event import async_call_later

from .agents import AgentConfig
from .issues import clear_repair, raise_repair
from .policy.lease import (
    LEASE_REFRESH_SEC,
    LeaseState,
    build_lease,
    clock_offset_sec,
    lease_expiry,
    lease_state,
    lease_topic,
)
from .policy.protocol import Ack, AckStatus
from .policy.status import PolicyStatus

_LOGGER = logging.getLogger(__name__)

ISSUE_CLOCK_SKEW: Final = "agent_clock_skew"
# The agents' default skew allowance (skew_sec): beyond it commands are refused
# as "future" or "expired" and retained leases read late lose time.
DEFAULT_CLOCK_ALLOWANCE_SEC: Final = 60.0
# The soonest a lease is refreshed again, however close its deadline.
MIN_REFRESH_SEC: Final = 2.0


@dataclass(frozen=True, slots=True)
class PublishedLease:
    state: LeaseState
    payload: dict[str, Any]
    issued_at: int


class LeasePublisher:
    """One per config entry, fed by the policy coordinator with every status update."""

    def __init__(
        self,
        hass: HomeAssistant,
        prefix: str,
        agents: Mapping[str, AgentConfig],
        clock: Callable[[], float],
        *,
        clock_allowance_sec: float = DEFAULT_CLOCK_ALLOWANCE_SEC,
    ) -> None:
        self._hass = hass
        self._prefix = prefix
        self._agents = agents
        self._clock = clock
        self._allowance = clock_allowance_sec
        self._published: dict[str, PublishedLease] = {}
        self._statuses: Mapping[str, PolicyStatus] = {}
        self._refresh_unsub: CALLBACK_TYPE | None = None
        self._refresh_at: float | None = None
        self._sweep_unsub: CALLBACK_TYPE | None = None
        self._swept = False
        self.clock_offsets: dict[str, float] = {}
        # Told after leases went out (the entities showing the deadline an agent holds).
        self.on_published: Callable[[], None] | None = None

    # --- leases -------------------------------------------------------------

    @callback
    def async_update(self, statuses: Mapping[str, PolicyStatus]) -> None:
        """Publish every lease that changed materially; keep the refresh timer right."""
        self._statuses = statuses
        if not self._swept:
            self._swept = True
            self._hass.async_create_task(self._async_sweep(), eager_start=True)
        sent = False
        for agent_id, state in self._wanted().items():
            published = self._published.get(agent_id)
            if published is None or state.supersedes(published.state):
                self._publish(agent_id, state)
                sent = True
            elif state != published.state and not published.state.needs_refresh:
                # off battery nothing refreshes: small changes go out as they come
                self._publish(agent_id, state)
                sent = True
        self._schedule_refresh()
        if sent:
            self._tell_published()

    def _wanted(self) -> dict[str, LeaseState]:
        wanted: dict[str, LeaseState] = {}
        # NUT consumers are bindings of the engines, not agents here: none gets a lease.
        for agent in self._agents.values():
            status = self._statuses.get(agent.device)
            view = status.agents.get(agent.agent_id) if status is not None else None
            if status is not None and view is not None:
                wanted[agent.agent_id] = lease_state(status, view)
        return wanted

    def _publish(self, agent_id: str, state: LeaseState) -> None:
        agent = self._agents[agent_id]
        issued_at = int(self._clock())
        payload = build_lease(
            agent_id=agent_id,
            agent_secret=agent.secret,
            device=agent.device,
            grid=state.grid,
            soc_min=state.soc_min,
            shutdown_by=state.shutdown_by,
            fsd=state.fsd,
            issued_at=issued_at,
            expires_at=lease_expiry(issued_at, state.shutdown_by),
        )
        self._published[agent_id] = PublishedLease(state, payload, issued_at)
        self._send(lease_topic(self._prefix, agent_id), json.dumps(payload))

    def _send(self, topic: str, payload: str) -> None:
        self._hass.async_create_task(self._async_send(topic, payload), eager_start=True)

    async def _async_send(self, topic: str, payload: str) -> None:
        try:
            await mqtt.async_publish(self._hass, topic, payload, qos=1, retain=True)
        except HomeAssistantError as err:
            # the next refresh (at most LEASE_REFRESH_SEC away while it matters) repeats it
            _LOGGER.warning("Publishing the lease on %s is delayed (%s)", topic, err)

    def _refresh_delay(self) -> float:
        """Seconds to the next refresh: LEASE_REFRESH_SEC, sooner when a held deadline is close.

        An agent acts when no newer lease arrives by its `shutdown_by`. With a
        short stale window and delay, that can be about one refresh interval
        away: refreshing at a third of the time left keeps a live Home
        Assistant ahead of it (the refresh does not move a deadline that the
        engine keeps, so a real one still comes on time).
        """
        now = self._clock()
        delay = float(LEASE_REFRESH_SEC)
        for published in self._published.values():
            deadline = published.state.shutdown_by
            if published.state.needs_refresh and deadline is not None:
                left = deadline - now
                if left < 2 * LEASE_REFRESH_SEC:
                    delay = min(delay, max(MIN_REFRESH_SEC, left / 3))
        return delay

    @callback
    def _schedule_refresh(self) -> None:
        due = any(p.state.needs_refresh for p in self._published.values())
        if not due:
            if self._refresh_unsub is not None:
                self._refresh_unsub()
                self._refresh_unsub = None
            self._refresh_at = None
            return
        refresh_at = self._clock() + self._refresh_delay()
        if self._refresh_unsub is not None and self._refresh_at is not None:
            if self._refresh_at <= refresh_at:
                return  # the timer already running comes first
            self._refresh_unsub()
        self._refresh_at = refresh_at
        self._refresh_unsub = async_call_later(
            self._hass, max(0.0, refresh_at - self._clock()), self._async_refresh
        )

    @callback
    def _async_refresh(self, _now: object) -> None:
        self._refresh_unsub = None
        self._refresh_at = None
        sent = False
        for agent_id, state in self._wanted().items():
            published = self._published.get(agent_id)
            if published is None or published.state != state or state.needs_refresh:
                self._publish(agent_id, state)
                sent = True
        self._schedule_refresh()
        if sent:
            self._tell_published()

    def _tell_published(self) -> None:
        if self.on_published is not None:
            self.on_published()

    @callback
    def async_clear(self, agent_ids: Iterable[str]) -> None:
        """Removed agents: their lease deleted on the broker, their clock offset and repair gone."""
        for agent_id in agent_ids:
            self._published.pop(agent_id, None)
            self.clock_offsets.pop(agent_id, None)
            clear_repair(self._hass, f"{ISSUE_CLOCK_SKEW}_{agent_id}")
            self._send(lease_topic(self._prefix, agent_id), "")

    async def _async_sweep(self) -> None:
        """Clear retained leases of agents removed from this entry (one look at start).

        Only leases naming one of this entry's stations (one engine each) are
        touched: another entry may share the topic prefix. The station is not
        taken from the agents left, as the one removed may have been the last.
        """

        @callback
        def _on_message(message: mqtt.ReceiveMessage) -> None:
            agent_id = message.topic.split("/")[-2]
            if not message.retain or not message.payload or agent_id in self._agents:
                return
            try:
                device = json.loads(message.payload).get("device")
            except ValueError, AttributeError:
                return
            if device in self._statuses:
                _LOGGER.info("Clearing the lease of removed agent %s", agent_id)
                self.async_clear([agent_id])

        # Only run while HA's MQTT entry is loaded (async_update), when it
        # accepts every subscription.
        self._sweep_unsub = await mqtt.async_subscribe(
            self._hass, f"{self._prefix}/+/power", _on_message, qos=1
        )

    @callback
    def async_mqtt_lost(self) -> None:
        """HA's MQTT unloads: drop the sweep's subscription now, before HA keeps it to restore."""
        if self._sweep_unsub is not None:
            self._sweep_unsub()
            self._sweep_unsub = None

    @callback
    def async_stop(self) -> None:
        """Unload: stop refreshing. Retained leases stay and expire on their own."""
        if self._refresh_unsub is not None:
            self._refresh_unsub()
            self._refresh_unsub = None
        self.async_mqtt_lost()

    def lease_deadline(self, agent_id: str) -> int | None:
        """The `shutdown_by` the agent holds now (epoch s), or None."""
        published = self._published.get(agent_id)
        return None if published is None else published.state.shutdown_by

    # --- clock offsets ------------------------------------------------------

    @callback
    def observe_ack(
        self, agent_id: str, ack: Ack, status: PolicyStatus | None, received_at: float
    ) -> float | None:
        """A verified ack: a prompt `pong` or `received` to the last command shows the offset.

        `status` is the station's engine status from before the ack is handled
        (its view of the agent holds the command's id and send time).
        """
        if ack.status not in (AckStatus.PONG, AckStatus.RECEIVED) or status is None:
            return None
        view = status.agents.get(agent_id)
        if view is None or view.last_command_id != ack.id or view.last_command_at is None:
            return None
        return self.observe_answer(agent_id, ack.at, view.last_command_at, received_at)

    @callback
    def observe_answer(
        self, agent_id: str, ack_at: int, sent_at: float, received_at: float
    ) -> float | None:
        """Record the offset shown by a prompt answer; raise or clear the repair."""
        offset = clock_offset_sec(ack_at, sent_at, received_at)
        if offset is None or agent_id not in self._agents:
            return None
        self.clock_offsets[agent_id] = offset
        issue_id = f"{ISSUE_CLOCK_SKEW}_{agent_id}"
        if abs(offset) > self._allowance:
            raise_repair(
                self._hass,
                issue_id,
                ISSUE_CLOCK_SKEW,
                {
                    "agent": agent_id,
                    "offset": f"{offset:+.0f}",
                    "allowance": f"{self._allowance:.0f}",
                },
            )
        else:
            clear_repair(self._hass, issue_id)
        return offset
