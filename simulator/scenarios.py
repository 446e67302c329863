"""Scenarios: what happens to a device's grid, battery and telemetry over time.

A scenario adjusts the state's knobs before each step of simulated time; the
model does the arithmetic. Rates are in % of capacity per simulated minute, so
with ``time_scale`` 60 an outage at 1 %/min empties a full battery in 100 s.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import asdict, dataclass, field
from typing import Any, Protocol

from .model import PowerStationState


class Scenario(Protocol):
    name: str

    def apply(self, state: PowerStationState, dt: float) -> None: ...

    def describe(self) -> dict[str, Any]: ...


def _normal(state: PowerStationState, *, grid: bool) -> None:
    state.grid = grid
    state.publishing = True
    state.independent_packs = False


class _Described:
    """Scenarios whose every field is worth showing describe themselves as a dict."""

    def describe(self) -> dict[str, Any]:
        return asdict(self)  # type: ignore[call-overload]


@dataclass
class Steady(_Described):
    """On grid: charge to the limit, then hold; the load passes through."""

    name: str = field(default="steady", init=False)
    charge_pct_per_min: float = 1.0

    def apply(self, state: PowerStationState, dt: float) -> None:
        _normal(state, grid=True)
        state.charge_pct_per_min = self.charge_pct_per_min


@dataclass
class Outage(_Described):
    """Grid lost: the battery carries the load and drains at a fixed rate."""

    name: str = field(default="outage", init=False)
    drain_pct_per_min: float = 1.0

    def apply(self, state: PowerStationState, dt: float) -> None:
        _normal(state, grid=False)
        state.drain_pct_per_min = self.drain_pct_per_min


@dataclass
class Restore(Steady):
    """Grid back: the battery recharges (what steady does, named for the log)."""

    name: str = field(default="restore", init=False)


@dataclass
class Flap(_Described):
    """Grid toggles: off for half of ``period_sec``, then on for the other half."""

    name: str = field(default="flap", init=False)
    period_sec: float = 120.0
    drain_pct_per_min: float = 1.0
    charge_pct_per_min: float = 1.0
    elapsed: float = 0.0

    def apply(self, state: PowerStationState, dt: float) -> None:
        half = max(self.period_sec / 2.0, 1e-6)
        grid = int(self.elapsed // half) % 2 == 1
        _normal(state, grid=grid)
        state.drain_pct_per_min = self.drain_pct_per_min
        state.charge_pct_per_min = self.charge_pct_per_min
        self.elapsed += dt


@dataclass
class Stall(_Described):
    """Telemetry freezes while the connection stays up; the battery goes on."""

    name: str = field(default="stall", init=False)

    def apply(self, state: PowerStationState, dt: float) -> None:
        state.publishing = False


@dataclass
class LastGasp(_Described):
    """Grid lost, then `messages` more pushes get out before the station falls silent.

    What a home lab sees when the router or the access point is not on the
    station: one outage message (or none) reaches the cloud, then nothing.
    The battery goes on draining in silence.
    """

    name: str = field(default="last_gasp", init=False)
    drain_pct_per_min: float = 1.0
    messages: float = 1.0
    steps: int = 0

    def apply(self, state: PowerStationState, dt: float) -> None:
        _normal(state, grid=False)
        state.drain_pct_per_min = self.drain_pct_per_min
        if dt > 0:
            self.steps += 1
        # Each step with time in it is followed by one push while publishing.
        state.publishing = self.steps <= int(self.messages)


@dataclass
class Glitch:
    """One wrong SoC in the next message, then whatever ran before."""

    name: str = field(default="glitch", init=False)
    soc: float = 5.0
    base: Scenario = field(default_factory=Steady)
    fired: bool = False

    def apply(self, state: PowerStationState, dt: float) -> None:
        self.base.apply(state, dt)
        if not self.fired:
            state.glitch_soc = self.soc
            self.fired = True

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "soc": self.soc,
            "fired": self.fired,
            "base": self.base.describe(),
        }


@dataclass
class Diverge(_Described):
    """Off grid with two packs draining at different rates."""

    name: str = field(default="diverge", init=False)
    main_pct_per_min: float = 0.5
    extra_pct_per_min: float = 2.0

    def apply(self, state: PowerStationState, dt: float) -> None:
        # A single-pack device just drains (the stand-in refuses that case
        # up front, so this only guards direct use).
        _normal(state, grid=False)
        state.independent_packs = True
        state.packs[0].rate_pct_per_min = -self.main_pct_per_min
        for pack in state.packs[1:]:
            pack.rate_pct_per_min = -self.extra_pct_per_min


_FACTORIES: dict[str, Callable[..., Scenario]] = {
    "steady": Steady,
    "outage": Outage,
    "grid_loss": Outage,
    "restore": Restore,
    "flap": Flap,
    "stall": Stall,
    "last_gasp": LastGasp,
    "diverge": Diverge,
}

SCENARIO_NAMES = (*sorted(_FACTORIES), "glitch")


def make_scenario(
    name: str, params: Mapping[str, Any] | None = None, *, current: Scenario | None = None
) -> Scenario:
    """Build a scenario by name; ``glitch`` wraps the one currently running.

    Raises ValueError for an unknown name or parameter.
    """
    kwargs = {k: float(v) for k, v in (params or {}).items()}
    if name == "glitch":
        base = current.base if isinstance(current, Glitch) else current
        if isinstance(base, Stall) or base is None:
            base = Steady()
        return Glitch(soc=kwargs.get("soc", 5.0), base=base)
    factory = _FACTORIES.get(name)
    if factory is None:
        raise ValueError(f"unknown scenario {name!r}; known: {', '.join(SCENARIO_NAMES)}")
    try:
        return factory(**kwargs)
    except TypeError as err:
        raise ValueError(f"bad parameters for {name}: {err}") from err
