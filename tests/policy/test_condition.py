"""One reading against one agent's threshold: critical, hold, clear or unknown."""

from __future__ import annotations

import pytest

from custom_components.ecoflow_power.ecoflow.state import GridStatus
from custom_components.ecoflow_power.policy.condition import Verdict, evaluate
from custom_components.ecoflow_power.policy.settings import PolicySettings
from custom_components.ecoflow_power.policy.telemetry import PolicyTelemetry

SETTINGS = PolicySettings(soc_threshold=20, runtime_threshold_min=15)


def reading(grid: GridStatus, soc: float | None, runtime: int | None = None) -> PolicyTelemetry:
    return PolicyTelemetry(grid=grid, soc_min=soc, remaining_discharge_min=runtime, at=0.0)


@pytest.mark.parametrize(("soc", "runtime"), [(3, 2), (None, None), (90, None)])
def test_with_the_grid_present_no_battery_level_is_critical(
    soc: float | None, runtime: int | None
) -> None:
    """Mains feeds the hosts: even an empty battery clears a running timer."""
    assert evaluate(reading(GridStatus.CONNECTED, soc, runtime), 20, SETTINGS) is Verdict.CLEAR


@pytest.mark.parametrize(("soc", "runtime"), [(3, 2), (90, 300)])
def test_without_grid_evidence_a_reading_neither_starts_nor_cancels(
    soc: float, runtime: int
) -> None:
    """Grid unknown (the station does not say): not critical, and no proof of power."""
    assert evaluate(reading(GridStatus.UNKNOWN, soc, runtime), 20, SETTINGS) is Verdict.UNKNOWN


@pytest.mark.parametrize(
    ("soc", "runtime", "verdict"),
    [
        (20, 300, Verdict.CRITICAL),  # at the threshold
        (80, 15, Verdict.CRITICAL),  # runtime at its limit, battery still high
        (None, 300, Verdict.UNKNOWN),  # no SoC: a low battery cannot be ruled out
        (22, 300, Verdict.HOLD),  # inside the hysteresis band
        (80, 300, Verdict.CLEAR),
    ],
)
def test_on_battery_the_level_and_runtime_decide(
    soc: float | None, runtime: int, verdict: Verdict
) -> None:
    assert evaluate(reading(GridStatus.LOST, soc, runtime), 20, SETTINGS) is verdict
