"""Power comes back: wake the hosts whose shutdown was committed, in order, once it is safe.

Pure, like the engine: grid readings, host presence and ticks go in, effects
(magic packets to send, events) come out; time comes from the injected clock.

The rule, per station:
- a host is *owed* a wake-up once its shutdown was committed during an outage;
- the wake-up starts once the grid has been present continuously for
  `stable_sec` and the weakest pack is above `restart_soc`;
- infrastructure hosts (Home Assistant, the broker, the NAS) first, then the
  rest, `gap_sec` apart; a host that announces itself online is done; one that
  does not is retried every `retry_sec`, `max_attempts` times in all, then
  reported as failed;
- the grid failing again stops the wake-up: the hosts still owed one wait for
  the next stable restoration.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, Final

from custom_components.ecoflow_power.ecoflow.state import GridStatus

WAKE_STATE_VERSION: Final = 1


class WakeEvent(StrEnum):
    POWER_RESTORED = "power_restored"  # grid stable and battery above the restart level
    HOST_WOKEN = "host_woken"  # the host announced itself online after a magic packet
    HOST_WAKE_FAILED = "host_wake_failed"  # no sign of life after every attempt


@dataclass(frozen=True, slots=True)
class WakeSettings:
    """Per-station restore rule (options flow)."""

    enabled: bool = False
    stable_sec: int = 300  # grid present continuously this long
    restart_soc: float = 30.0  # and the weakest pack above this (%)
    gap_sec: int = 30  # between two hosts
    retry_sec: int = 120  # a host not online by then gets another packet
    max_attempts: int = 3

    def __post_init__(self) -> None:
        if self.stable_sec < 0 or self.gap_sec < 0:
            raise ValueError("stable_sec and gap_sec must be >= 0")
        if self.retry_sec <= 0 or self.max_attempts <= 0:
            raise ValueError("retry_sec and max_attempts must be > 0")
        if not 0 <= self.restart_soc <= 100:
            raise ValueError("restart_soc must be within 0..100")


@dataclass(frozen=True, slots=True)
class WakeTarget:
    """A host that can be woken: its MAC and where the packet goes."""

    host_id: str
    mac: str
    broadcast: str | None = None
    port: int | None = None
    infrastructure: bool = False


@dataclass(frozen=True, slots=True)
class SendMagicPacket:
    host_id: str
    mac: str
    broadcast: str | None
    port: int | None
    attempt: int


@dataclass(frozen=True, slots=True)
class EmitWakeEvent:
    event_type: WakeEvent
    data: dict[str, Any] = field(default_factory=dict)


type WakeEffect = SendMagicPacket | EmitWakeEvent


@dataclass(slots=True)
class _Owed:
    host_id: str
    attempts: int = 0
    last_sent_at: float | None = None
    failed: bool = False


class WakePlanner:
    """The restore rule of one station."""

    def __init__(
        self,
        settings: WakeSettings,
        targets: Iterable[WakeTarget],
        *,
        clock: Callable[[], float],
    ) -> None:
        self._settings = settings
        self._targets = {t.host_id: t for t in targets}
        self._clock = clock
        self._owed: dict[str, _Owed] = {}
        self._grid: GridStatus | None = None
        self._present_since: float | None = None
        self._soc: float | None = None
        self._waking = False
        self._next_start_at: float | None = None

    # --- inputs -----------------------------------------------------------

    @property
    def settings(self) -> WakeSettings:
        return self._settings

    @property
    def owed(self) -> tuple[str, ...]:
        """Hosts still owed a wake-up, in wake order."""
        return tuple(o.host_id for o in self._ordered() if not o.failed)

    @property
    def waking(self) -> bool:
        return self._waking

    def reconfigure(self, settings: WakeSettings, targets: Iterable[WakeTarget]) -> None:
        self._settings = settings
        self._targets = {t.host_id: t for t in targets}
        for host_id in [h for h in self._owed if h not in self._targets]:
            del self._owed[host_id]

    def note_committed(self, host_id: str) -> None:
        """The host's shutdown passed its commit point: it will be off when power returns."""
        if host_id in self._targets and host_id not in self._owed:
            self._owed[host_id] = _Owed(host_id)

    def update(self, grid: GridStatus | None, soc_min: float | None) -> list[WakeEffect]:
        now = self._clock()
        if soc_min is not None:
            self._soc = soc_min
        if grid is GridStatus.CONNECTED:
            if self._grid is not GridStatus.CONNECTED or self._present_since is None:
                self._present_since = now
        elif grid is GridStatus.LOST:
            self._present_since = None
            if self._waking:
                self._waking = False  # grid failed again: stop, keep what is owed
                self._next_start_at = None
                for owed in self._owed.values():
                    owed.attempts = 0
                    owed.last_sent_at = None
        # UNKNOWN / None: no evidence either way; a running stable window keeps running
        # only on positive evidence, so it is reset too.
        else:
            self._present_since = None
        self._grid = grid
        return self.tick()

    def host_online(self, host_id: str) -> list[WakeEffect]:
        """The host announced itself (agent status online, NUT client logged in)."""
        owed = self._owed.get(host_id)
        if owed is None:
            return []
        del self._owed[host_id]
        if owed.attempts == 0:
            return []  # it came back by itself (BIOS restore on AC, a person)
        return [
            EmitWakeEvent(WakeEvent.HOST_WOKEN, {"host": host_id, "attempts": owed.attempts}),
            *self.tick(),
        ]

    # --- time -------------------------------------------------------------

    def tick(self) -> list[WakeEffect]:
        now = self._clock()
        effects: list[WakeEffect] = []
        if not self._settings.enabled:
            return effects
        if not self._waking:
            if not self._owed or not self._stable(now):
                return effects
            self._waking = True
            self._next_start_at = now
            effects.append(
                EmitWakeEvent(
                    WakeEvent.POWER_RESTORED,
                    {"soc_min": self._soc, "hosts": list(self.owed)},
                )
            )
        for owed in self._ordered():
            if owed.failed:
                continue
            if owed.last_sent_at is None:
                # Not started yet: one host per gap, in order.
                if self._next_start_at is None or now < self._next_start_at:
                    break
                self._send(owed, now, effects)
                self._next_start_at = now + self._settings.gap_sec
                continue
            if now < owed.last_sent_at + self._settings.retry_sec:
                continue
            if owed.attempts >= self._settings.max_attempts:
                owed.failed = True
                effects.append(
                    EmitWakeEvent(
                        WakeEvent.HOST_WAKE_FAILED,
                        {"host": owed.host_id, "attempts": owed.attempts},
                    )
                )
                continue
            self._send(owed, now, effects)
        if self._waking and all(o.failed for o in self._owed.values()):
            self._waking = False  # nothing left to do in this restoration
        return effects

    def next_deadline(self) -> float | None:
        if not self._settings.enabled or not self._owed:
            return None
        if not self._waking:
            if self._present_since is None:
                return None
            stable_at = self._present_since + self._settings.stable_sec
            if stable_at <= self._clock():
                return None  # stable, waiting for the battery: only a reading changes that
            return stable_at
        times: list[float] = []
        for owed in self._ordered():
            if owed.failed:
                continue
            if owed.last_sent_at is None:
                if self._next_start_at is not None:
                    times.append(self._next_start_at)
                break
            times.append(owed.last_sent_at + self._settings.retry_sec)
        return min(times) if times else None

    # --- persistence ------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return {
            "version": WAKE_STATE_VERSION,
            "owed": {
                o.host_id: {"attempts": o.attempts, "failed": o.failed} for o in self._owed.values()
            },
        }

    def restore(self, data: Mapping[str, Any]) -> None:
        """Hosts owed a wake-up survive a restart; attempts start over (HA was down)."""
        if data.get("version") != WAKE_STATE_VERSION:
            return
        for host_id, raw in dict(data.get("owed", {})).items():
            if host_id in self._targets and isinstance(raw, Mapping):
                self._owed[host_id] = _Owed(host_id, failed=bool(raw.get("failed", False)))

    # --- helpers ----------------------------------------------------------

    def _stable(self, now: float) -> bool:
        if self._grid is not GridStatus.CONNECTED or self._present_since is None:
            return False
        if now < self._present_since + self._settings.stable_sec:
            return False
        return self._soc is not None and self._soc > self._settings.restart_soc

    def _ordered(self) -> list[_Owed]:
        def key(owed: _Owed) -> tuple[int, str]:
            target = self._targets.get(owed.host_id)
            return (0 if target is not None and target.infrastructure else 1, owed.host_id)

        return sorted(self._owed.values(), key=key)

    def _send(self, owed: _Owed, now: float, effects: list[WakeEffect]) -> None:
        target = self._targets[owed.host_id]
        owed.attempts += 1
        owed.last_sent_at = now
        effects.append(
            SendMagicPacket(
                target.host_id, target.mac, target.broadcast, target.port, owed.attempts
            )
        )
