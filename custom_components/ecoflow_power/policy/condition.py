"""The per-agent critical condition, as a pure function of one reading."""

from __future__ import annotations

from enum import StrEnum

from custom_components.ecoflow_power.ecoflow.state import GridStatus

from .settings import PolicySettings
from .telemetry import PolicyTelemetry


class Verdict(StrEnum):
    CRITICAL = "critical"  # starts the debounce timer
    HOLD = "hold"  # inside the hysteresis band: a running timer keeps running
    CLEAR = "clear"  # breaks the condition: a running timer is cancelled
    UNKNOWN = "unknown"  # no evidence either way: neither starts nor cancels


def evaluate(reading: PolicyTelemetry, threshold: float, settings: PolicySettings) -> Verdict:
    """Classify one reading for an agent whose shutdown threshold is `threshold`."""
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
    if soc <= threshold + settings.hysteresis_pct:
        return Verdict.HOLD
    return Verdict.CLEAR


def describe(reading: PolicyTelemetry, threshold: float, settings: PolicySettings) -> str:
    """Human reason for a CRITICAL reading, also used as the command's `reason`."""
    soc = reading.soc_min
    if soc is not None and soc <= threshold:
        return f"grid lost and soc_min {soc:g} <= {threshold:g}"
    return (
        f"grid lost and remaining {reading.remaining_discharge_min} min"
        f" <= {settings.runtime_threshold_min}"
    )
