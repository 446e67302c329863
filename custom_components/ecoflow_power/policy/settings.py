"""Configuration of one station's policy: thresholds, timers and the agents it powers."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import asdict, dataclass, fields
from typing import Any

from .protocol import is_valid_agent_id


@dataclass(frozen=True, slots=True)
class PolicySettings:
    """Edited by the Home Assistant options flow; validated here so the engine can trust it."""

    soc_threshold: float = 20.0  # % of the weakest battery module (soc_min)
    runtime_threshold_min: int | None = None  # None = runtime rule off
    hysteresis_pct: float = 2.0  # a pending timer survives soc up to threshold + this
    runtime_hysteresis_min: int = 5  # ... and remaining runtime up to the limit + this
    runtime_smoothing_sec: int = 120  # clearing needs the smoothed runtime above the band too
    debounce_sec: int = 60  # the condition must hold this long before firing
    stale_after_sec: int = 120  # silence after which telemetry counts as lost
    delay_sec: int = 60  # agent waits this long before its commit point
    ttl_sec: int = 300  # command validity; resends stop at issued_at + ttl_sec
    cooldown_sec: int = 600  # retry interval within one outage; 0 = retry only on agent return
    resend_interval_sec: int = 15  # unacknowledged commands are re-sent this often
    dry_run: bool = False  # decide and record, publish nothing
    restore_confirm_sec: int = 60  # grid present continuously this long before a timer is cleared
    blind_mode: bool = True  # grid last seen present + silence + station offline = outage
    estimate_margin_sec: int = 120  # fire this much before the estimate reaches the threshold

    def __post_init__(self) -> None:
        if not 0 <= self.soc_threshold <= 100:
            raise ValueError("soc_threshold must be within 0..100")
        if self.runtime_threshold_min is not None and self.runtime_threshold_min < 0:
            raise ValueError("runtime_threshold_min must be >= 0 or None")
        if self.hysteresis_pct < 0:
            raise ValueError("hysteresis_pct must be >= 0")
        for name in (
            "debounce_sec",
            "delay_sec",
            "cooldown_sec",
            "restore_confirm_sec",
            "estimate_margin_sec",
            "runtime_hysteresis_min",
            "runtime_smoothing_sec",
        ):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} must be >= 0")
        for name in ("stale_after_sec", "ttl_sec", "resend_interval_sec"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be > 0")

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_mapping(cls, data: Mapping[str, Any]) -> PolicySettings:
        """Build from stored options, ignoring keys this version does not know."""
        known = {f.name for f in fields(cls)}
        return cls(**{key: value for key, value in data.items() if key in known})


@dataclass(frozen=True, slots=True)
class AgentBinding:
    """One host agent powered by the station.

    Per-agent overrides give an ordered shutdown: a low-priority VM at 40 %,
    the NAS last at 15 %.
    """

    agent_id: str
    secret: str
    soc_threshold: float | None = None
    delay_sec: int | None = None
    infrastructure: bool = False  # runs HA / the broker: shuts down last, others get fsd first
    local: bool = False  # delivered by the HA glue itself (NUT clients), never on MQTT
    # Several stations feeding one host (policy/supply.py): the other stations,
    # and whether all of them (redundant supplies) or any must be critical.
    feeds: tuple[str, ...] = ()
    feed_rule: str = "all"
    observe_only: bool = False  # in a feeding (non-owner) station's engine: decide, never send

    def __post_init__(self) -> None:
        if not is_valid_agent_id(self.agent_id):
            raise ValueError(f"invalid agent id {self.agent_id!r}")
        if not self.secret:
            raise ValueError("every agent needs a secret: commands are always signed")
        if self.soc_threshold is not None and not 0 <= self.soc_threshold <= 100:
            raise ValueError("soc_threshold must be within 0..100")
        if self.delay_sec is not None and self.delay_sec < 0:
            raise ValueError("delay_sec must be >= 0")
        if self.feed_rule not in ("all", "any"):
            raise ValueError("feed_rule must be 'all' or 'any'")
        if self.observe_only and self.feeds:
            raise ValueError("an observe-only binding must not list feeds (its owner does)")

    def threshold(self, settings: PolicySettings) -> float:
        return settings.soc_threshold if self.soc_threshold is None else self.soc_threshold

    def delay(self, settings: PolicySettings) -> int:
        return settings.delay_sec if self.delay_sec is None else self.delay_sec
