"""Physical state of one simulated power station and how it evolves.

Everything the encoders publish is derived here, so the protobuf and the JSON
device tell the same story about the same battery. Time is simulated seconds;
the caller decides how fast it runs.
"""

from __future__ import annotations

from dataclasses import dataclass, field

NOT_APPLICABLE_MINUTES = 5939  # the firmware's "no estimate" sentinel
IDLE = 0
DISCHARGING = 1
CHARGING = 2


@dataclass
class Pack:
    """One battery pack: index 0 is the main pack, others are extra batteries."""

    capacity_wh: float
    soc: float
    serial: str = ""
    # %/min of this pack; set by scenarios, negative while discharging.
    rate_pct_per_min: float = 0.0


@dataclass
class PowerStationState:
    """What the device would measure right now."""

    packs: list[Pack]
    grid: bool = True
    grid_voltage: float = 230.0
    grid_frequency: int = 50
    # Load on the AC outlets while the grid carries it.
    base_load_w: float = 60.0
    # Scenario knobs, in % of the combined capacity per simulated minute.
    drain_pct_per_min: float = 1.0
    charge_pct_per_min: float = 1.0
    max_charge_soc: float = 100.0
    min_dsg_soc: float = 0.0
    # False while a scenario freezes telemetry (the connection stays up).
    publishing: bool = True
    # One-shot wrong SoC for the next published message (a decoder glitch).
    glitch_soc: float | None = None
    # Packs drain at their own rates instead of a shared one (diverging packs).
    independent_packs: bool = False
    sim_time: float = 0.0
    extra: dict[str, float] = field(default_factory=dict)

    # -- derived quantities -------------------------------------------------

    @property
    def capacity_wh(self) -> float:
        return sum(p.capacity_wh for p in self.packs)

    @property
    def combined_soc(self) -> float:
        """Energy-weighted SoC of all packs: what the screen shows."""
        return sum(p.soc * p.capacity_wh for p in self.packs) / self.capacity_wh

    @property
    def main_soc(self) -> float:
        return self.packs[0].soc

    def pack_rate(self, pack: Pack) -> float:
        """%/min of one pack: shared rate unless the packs diverge."""
        if self.independent_packs:
            return pack.rate_pct_per_min
        if self.grid:
            return self.charge_pct_per_min if self.combined_soc < self.max_charge_soc else 0.0
        return -self.drain_pct_per_min if self.combined_soc > self.min_dsg_soc else 0.0

    def pack_watts(self, pack: Pack) -> float:
        """Battery power of one pack, positive charging, negative discharging."""
        return self.pack_rate(pack) * pack.capacity_wh / 100.0 * 60.0

    @property
    def battery_w(self) -> float:
        return sum(self.pack_watts(p) for p in self.packs)

    @property
    def charge_state(self) -> int:
        watts = self.battery_w
        if watts > 0.5:
            return CHARGING
        if watts < -0.5:
            return DISCHARGING
        return IDLE

    @property
    def ac_out_w(self) -> float:
        # Off grid, the battery carries the whole load; on grid the base load
        # passes through.
        return -self.battery_w if not self.grid else self.base_load_w

    @property
    def ac_in_w(self) -> float:
        return self.base_load_w + max(0.0, self.battery_w) if self.grid else 0.0

    @property
    def ac_in_voltage(self) -> float:
        return self.grid_voltage if self.grid else 0.0

    @property
    def ac_in_amps(self) -> float:
        return self.ac_in_w / self.grid_voltage if self.grid and self.grid_voltage else 0.0

    def remaining_minutes(self) -> tuple[int, int]:
        """(minutes to empty, minutes to full); the sentinel where not applicable."""
        soc = self.combined_soc
        rate = sum(self.pack_rate(p) * p.capacity_wh for p in self.packs) / self.capacity_wh
        to_empty = to_full = NOT_APPLICABLE_MINUTES
        if rate < -1e-9:
            to_empty = round((soc - self.min_dsg_soc) / -rate)
        elif rate > 1e-9:
            to_full = round((self.max_charge_soc - soc) / rate)
        return to_empty, to_full

    def pack_voltage_mv(self, pack: Pack) -> int:
        # A 16s LFP pack moves roughly between 48 and 54 V with SoC.
        return round(48000 + 6000 * pack.soc / 100.0)

    # -- evolution -----------------------------------------------------------

    def advance(self, dt: float) -> None:
        """Move the simulated world on by ``dt`` simulated seconds."""
        if dt <= 0:
            return
        minutes = dt / 60.0
        for pack in self.packs:
            rate = self.pack_rate(pack)
            pack.soc = min(100.0, max(0.0, pack.soc + rate * minutes))
            if not self.independent_packs and self.grid:
                pack.soc = min(pack.soc, self.max_charge_soc)
        self.sim_time += dt

    def take_glitch(self) -> float | None:
        value, self.glitch_soc = self.glitch_soc, None
        return value
