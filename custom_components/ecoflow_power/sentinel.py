"""The mains sentinel: a Home Assistant entity that says whether utility power is present.

It does not depend on the EcoFlow cloud, so it still speaks when the router,
the access point or the ISP went down with mains. Its reading reaches the
station's engine at once (PolicyEngine.update_mains) as strong local evidence.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from homeassistant.const import ATTR_RESTORED, STATE_OFF, STATE_ON, STATE_UNAVAILABLE, STATE_UNKNOWN
from homeassistant.core import (
    CALLBACK_TYPE,
    Event,
    EventStateChangedData,
    HomeAssistant,
    State,
    callback,
)
from homeassistant.helpers.event import async_track_state_change_event

from .stored_options import mapping_option

CONF_SENTINELS = "sentinels"
CONF_SENTINEL_ENTITY = "entity_id"
CONF_SENTINEL_KIND = "kind"

# At or above this AC voltage, mains is present (a 120 V or 230 V grid; a
# dead line or a phantom reading on an open circuit stays well below).
MAINS_PRESENT_MIN_VOLTS = 80.0


class SentinelKind(StrEnum):
    """How the chosen entity's state is read."""

    BINARY_SENSOR = "binary_sensor"  # on = mains present
    VOLTAGE = "voltage"  # present at >= 80 V
    NUT_STATUS = "nut_status"  # NUT ups.status: OL present, OB lost
    UNAVAILABLE_MEANS_LOST = "unavailable_means_lost"  # a mains-only device


@dataclass(frozen=True, slots=True)
class SentinelConfig:
    entity_id: str
    kind: SentinelKind


def sentinels_from_options(options: Mapping[str, Any]) -> dict[str, SentinelConfig]:
    """Station serial -> its sentinel; entries that cannot be read are left out."""
    result: dict[str, SentinelConfig] = {}
    for sn, data in mapping_option(options, CONF_SENTINELS).items():
        try:
            result[sn] = SentinelConfig(
                entity_id=str(data[CONF_SENTINEL_ENTITY]),
                kind=SentinelKind(data[CONF_SENTINEL_KIND]),
            )
        except KeyError, TypeError, ValueError:
            continue
    return result


def _nut_status(value: str) -> bool | None:
    """NUT's ups.status flags ("OL CHRG", "OB LB") or the NUT integration's words."""
    text = value.strip().lower()
    flags = set(text.upper().split())
    if "OB" in flags or "on battery" in text:
        return False
    if "OL" in flags or text.startswith("online"):
        return True
    return None


def mains_present(kind: SentinelKind, state: State | None) -> bool | None:
    """What the entity's state says about mains: True, False, or None (it does not know)."""
    if state is not None and state.attributes.get(ATTR_RESTORED):
        # A placeholder HA restores at start until the entity's integration
        # loads: "unavailable" then means "not loaded yet", not "mains lost".
        return None
    if kind is SentinelKind.UNAVAILABLE_MEANS_LOST:
        if state is None or state.state == STATE_UNKNOWN:
            return None
        return state.state != STATE_UNAVAILABLE
    if state is None or state.state in (STATE_UNAVAILABLE, STATE_UNKNOWN):
        return None
    if kind is SentinelKind.BINARY_SENSOR:
        if state.state == STATE_ON:
            return True
        if state.state == STATE_OFF:
            return False
        return None
    if kind is SentinelKind.VOLTAGE:
        try:
            volts = float(state.state)
        except ValueError:
            return None
        return volts >= MAINS_PRESENT_MIN_VOLTS
    return _nut_status(state.state)


class SentinelWatcher:
    """Follows each station's sentinel and reports every change of its verdict."""

    def __init__(
        self,
        hass: HomeAssistant,
        sentinels: Mapping[str, SentinelConfig],
        on_change: Callable[[str, bool | None], None],
    ) -> None:
        self.hass = hass
        self.sentinels = dict(sentinels)
        self._on_change = on_change
        self._unsub: CALLBACK_TYPE | None = None
        self.present: dict[str, bool | None] = {}

    @callback
    def async_start(self) -> None:
        """Report the current verdicts, then every change."""
        if not self.sentinels:
            return
        by_entity: dict[str, list[str]] = {}
        for sn, config in self.sentinels.items():
            by_entity.setdefault(config.entity_id, []).append(sn)

        @callback
        def changed(event: Event[EventStateChangedData]) -> None:
            for sn in by_entity.get(event.data["entity_id"], []):
                self._report(sn, event.data["new_state"])

        self._unsub = async_track_state_change_event(self.hass, list(by_entity), changed)
        for sn, config in self.sentinels.items():
            self._report(sn, self.hass.states.get(config.entity_id))

    @callback
    def async_stop(self) -> None:
        if self._unsub is not None:
            self._unsub()
            self._unsub = None

    def _report(self, sn: str, state: State | None) -> None:
        present = mains_present(self.sentinels[sn].kind, state)
        if sn in self.present and self.present[sn] == present:
            return
        self.present[sn] = present
        self._on_change(sn, present)
