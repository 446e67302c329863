"""Is utility AC present? Combine every signal a model gives, never guess.

No single field is trustworthy: River 3 reports 0.0 V AC-in while 50 W flow in
(pb01), the "AC plugged" flag reads 0 with AC flowing, and a Delta 2 with AC
present may run its load from the battery (js01). So each field contributes a
weighted vote, and the verdict is:

* CONNECTED when strong evidence says AC is there (voltage, real input power,
  the device's own "AC flows in" state), or only weak positive evidence exists
  and nothing contradicts it. Positive evidence wins a conflict: measured power
  or voltage cannot come from nowhere, and a false "lost" triggers shutdowns.
* LOST only when AC-side evidence says absent with weight >= 3. Battery
  discharging adds weight only on top of AC-side evidence: on its own it is not
  an outage (js01 discharges with 230 V present). Low input watts are never
  evidence of absence (a full, idle battery draws nothing).
* UNKNOWN otherwise, including no evidence and stale evidence.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from enum import IntEnum

from .state import GridStatus

PRESENT_VOLTS = 80.0  # below any mains voltage, above sensor noise (7.2 V in pb03)
ABSENT_VOLTS = 20.0
AC_DRAW_WATTS = 10.0  # below this, AC input watts say nothing either way
DISCHARGE_WATTS = 10.0  # pb04 idles at -5 W with cms_chg_dsg_state 0 (idle)
_LOST_WEIGHT = 3


class Weight(IntEnum):
    CONTEXT = 0
    WEAK = 1
    MODERATE = 2
    STRONG = 3


@dataclass(frozen=True, slots=True)
class GridSignal:
    """One observation: present (+1), absent (-1) or context (0), and how much it counts."""

    name: str
    direction: int
    weight: Weight
    text: str
    seen_at: float
    ac_side: bool = True  # False for battery behaviour, which only corroborates


def voltage_signal(
    name: str, volts: float, seen_at: float, *, zero_is_reliable: bool
) -> GridSignal:
    """AC-in voltage. Zero is strong evidence only where the model reports it faithfully.

    JSON families read 0 V with 0 Hz when unplugged (js02, js03) and the real
    line when not charging (js01). River 3 reads 0.0 V with AC flowing (pb01),
    so there 0 V only hints.
    """
    text = f"{name} {volts:.1f} V"
    if volts >= PRESENT_VOLTS:
        return GridSignal(name, +1, Weight.STRONG, text, seen_at)
    if volts < ABSENT_VOLTS:
        weight = Weight.STRONG if zero_is_reliable else Weight.WEAK
        return GridSignal(name, -1, weight, text, seen_at)
    return GridSignal(name, 0, Weight.CONTEXT, text + " (ambiguous)", seen_at)


def ac_watts_signal(name: str, watts: float, seen_at: float) -> GridSignal:
    if watts >= AC_DRAW_WATTS:
        return GridSignal(name, +1, Weight.STRONG, f"{name} {watts:.1f} W", seen_at)
    # A full battery with no load draws nothing from the grid: not an outage.
    return GridSignal(name, 0, Weight.CONTEXT, f"{name} {watts:.1f} W (no AC draw)", seen_at)


def flow_signal(value: int, seen_at: float) -> GridSignal:
    """flow_info_ac_in: 2 while AC flows in; 12 and 15 seen without AC (pb03, pb04)."""
    if value == 2:
        return GridSignal(
            "flow_info_ac_in", +1, Weight.STRONG, "flow_info_ac_in 2 (AC in)", seen_at
        )
    return GridSignal(
        "flow_info_ac_in", -1, Weight.MODERATE, f"flow_info_ac_in {value} (no AC in)", seen_at
    )


def charger_flag_signal(value: int, seen_at: float) -> GridSignal:
    """Field 202: 1 in every capture with AC present; its 0 is not proven to mean absent."""
    direction = +1 if value == 1 else -1
    return GridSignal(
        "ac_charger_flag", direction, Weight.WEAK, f"ac_charger_flag {value}", seen_at
    )


def frequency_signal(name: str, hertz: float, seen_at: float) -> GridSignal:
    if hertz > 0:
        return GridSignal(name, 0, Weight.CONTEXT, f"{name} {hertz:.1f} Hz", seen_at)
    return GridSignal(name, -1, Weight.WEAK, f"{name} 0 Hz", seen_at)


def discharge_signal(battery_w: float | None, discharging: bool, seen_at: float) -> GridSignal:
    shown = "?" if battery_w is None else f"{battery_w:.1f}"
    if discharging:
        return GridSignal(
            "battery", -1, Weight.WEAK, f"battery {shown} W (discharging)", seen_at, ac_side=False
        )
    return GridSignal("battery", 0, Weight.CONTEXT, f"battery {shown} W", seen_at, ac_side=False)


def assess_grid(
    signals: Iterable[GridSignal], now: float, stale_after_sec: float
) -> tuple[GridStatus, tuple[str, ...]]:
    """Verdict and the human-readable evidence behind it."""
    fresh: list[GridSignal] = []
    stale: list[GridSignal] = []
    for signal in signals:
        (fresh if now - signal.seen_at <= stale_after_sec else stale).append(signal)
    evidence = tuple(signal.text for signal in fresh)
    if not fresh:
        if stale:
            return GridStatus.UNKNOWN, tuple(f"stale: {signal.text}" for signal in stale)
        return GridStatus.UNKNOWN, ("no grid evidence",)

    present = sum(s.weight for s in fresh if s.direction > 0)
    absent_ac = sum(s.weight for s in fresh if s.direction < 0 and s.ac_side)
    absent_battery = sum(s.weight for s in fresh if s.direction < 0 and not s.ac_side)
    absent = absent_ac + absent_battery if absent_ac else 0

    if present >= Weight.STRONG:
        return GridStatus.CONNECTED, evidence
    if absent - present >= _LOST_WEIGHT:
        return GridStatus.LOST, evidence
    if present and not absent:
        return GridStatus.CONNECTED, evidence
    return GridStatus.UNKNOWN, evidence
