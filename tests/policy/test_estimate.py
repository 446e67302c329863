"""The energy estimator on its own: pessimistic, and silent when nothing is known."""

from __future__ import annotations

import pytest

from custom_components.ecoflow_power.policy.estimate import (
    CAPACITY_DERATE,
    EnergySnapshot,
    estimate,
)


def test_a_river_at_30_percent_under_250_w_reaches_20_percent_in_minutes() -> None:
    # 256 Wh derated to 204.8 Wh: 250 W drains 10 % in 10 % * 204.8 Wh / 250 W.
    est = estimate(EnergySnapshot(soc=30, at=1000, load_w=250, capacity_wh=256))
    assert est is not None
    expected = 0.10 * 256 * CAPACITY_DERATE / 250 * 3600
    assert est.reaches(20) == pytest.approx(1000 + expected)
    assert est.soc_at(1000 + expected) == pytest.approx(20)
    assert est.soc_at(10**9) == 0


def test_the_faster_of_power_and_runtime_figures_wins() -> None:
    by_power = estimate(EnergySnapshot(soc=50, at=0, load_w=100, capacity_wh=1000))
    by_runtime = estimate(EnergySnapshot(soc=50, at=0, remaining_min=30))
    both = estimate(EnergySnapshot(soc=50, at=0, load_w=100, capacity_wh=1000, remaining_min=30))
    assert by_power is not None
    assert by_runtime is not None
    assert both is not None
    assert both.rate_pct_per_sec == max(by_power.rate_pct_per_sec, by_runtime.rate_pct_per_sec)


def test_the_runtime_figure_runs_to_the_stations_own_cutoff() -> None:
    est = estimate(EnergySnapshot(soc=30, at=0, remaining_min=20, floor_pct=10))
    assert est is not None
    assert est.reaches(10) == pytest.approx(20 * 60)


def test_nothing_known_about_the_drain_gives_no_estimate() -> None:
    assert estimate(EnergySnapshot(soc=50, at=0)) is None
    assert estimate(EnergySnapshot(soc=50, at=0, load_w=100)) is None  # no capacity
    assert estimate(EnergySnapshot(soc=50, at=0, capacity_wh=1000, load_w=0)) is None


def test_already_below_the_threshold_reaches_it_at_once() -> None:
    est = estimate(EnergySnapshot(soc=15, at=500, remaining_min=10))
    assert est is not None
    assert est.reaches(20) == 500
