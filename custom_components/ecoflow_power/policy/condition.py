"""The per-agent critical condition, as a pure function of one reading."""

from __future__ import annotations

from enum import StrEnum
import math

from custom_components.ecoflow_power.ecoflow.state import GridStatus

from .settings import PolicySettings
from .telemetry import PolicyTelemetry


class Verdict(StrEnum):
    CRITICAL = "critical"  # starts the debounce timer
    HOLD = "hold"  # inside the hysteresis band: a running timer keeps running
    CLEAR = "clear"  # breaks the condition: a running timer is cancelled
    UNKNOWN = "unknown"  # no evidence either way: neither starts nor cancels


def evaluate(
    reading: PolicyTelemetry,
    threshold: float,
    settings: PolicySettings,
    *,
    smoothed_runtime: float | None = None,
) -> Verdict:
    """Classify one reading for an agent whose shutdown threshold is `threshold`.

    `smoothed_runtime` is the runtime figure smoothed over recent readings
    (decision.py): the raw figure can start a timer (never later than without
    smoothing), but only a recovery that the smoothed figure confirms clears it.
    A reading without a runtime figure ("not applicable") is judged on the
    smoothed one, so it holds a running runtime timer instead of clearing it.
    """
    if reading.grid is GridStatus.CONNECTED:
        return Verdict.CLEAR
    if reading.grid is not GridStatus.LOST:
        return Verdict.UNKNOWN
    soc = reading.soc_min
    runtime = reading.remaining_discharge_min
    limit = settings.runtime_threshold_min
    runtime_critical = limit is not None and runtime is not None and runtime <= limit
    if runtime_critical or (soc is not None and soc <= threshold):
        return Verdict.CRITICAL
    if soc is None:
        # Without a SoC we cannot rule the battery out as low: never clear on
        # missing evidence, only on positive evidence of a healthy battery.
        return Verdict.UNKNOWN
    runtime_clear = True
    if limit is not None:
        band = limit + settings.runtime_hysteresis_min
        raw_clear = runtime is None or runtime > band
        runtime_clear = raw_clear and (smoothed_runtime is None or smoothed_runtime > band)
    if soc <= threshold + settings.hysteresis_pct or not runtime_clear:
        return Verdict.HOLD
    return Verdict.CLEAR


def smooth(previous: float | None, value: float, dt: float, tau: float) -> float:
    """Pessimistic smoothing: follows a drop at once, a rise only over time.

    An exponential moving average (time constant tau seconds) for rises, so one
    optimistic reading cannot clear a runtime timer; drops are taken as they are
    so smoothing never delays a shutdown.
    """
    if previous is None or tau <= 0 or value <= previous:
        return value
    alpha = 1.0 - math.exp(-max(0.0, dt) / tau)
    return previous + (value - previous) * alpha


def describe(reading: PolicyTelemetry, threshold: float, settings: PolicySettings) -> str:
    """Human reason for a CRITICAL reading, also used as the command's `reason`."""
    soc = reading.soc_min
    if soc is not None and soc <= threshold:
        return f"grid lost and soc_min {soc:g} <= {threshold:g}"
    return (
        f"grid lost and remaining {reading.remaining_discharge_min} min"
        f" <= {settings.runtime_threshold_min}"
    )
