"""What each station's engine is fed from its PowerState."""

from __future__ import annotations

from custom_components.ecoflow_power.ecoflow.state import GridStatus, PowerState
from custom_components.ecoflow_power.policy_inputs import telemetry_reading

NOW = 1_790_000_000.0


def _state(**kwargs: object) -> PowerState:
    values: dict[str, object] = {
        "sn": "R331ZEB4ZEA00001",
        "model": "Delta 2",
        "soc_min": 42.0,
        "updated_at": NOW,
        "fresh_at": NOW,
    }
    return PowerState(**(values | kwargs))  # type: ignore[arg-type]


def test_on_battery_the_engine_gets_discharge_capacity_and_cut_off() -> None:
    reading = telemetry_reading(
        _state(
            grid=GridStatus.LOST,
            battery_w=-310.0,
            watts_out=300.0,
            capacity_wh=1024.0,
            discharge_limit_pct=10.0,
            backup_reserve_pct=30.0,
        )
    )
    assert reading is not None
    assert (reading.discharge_w, reading.load_w) == (310.0, 300.0)
    assert reading.capacity_wh == 1024.0
    # The higher of the two cut-offs is the one that cuts AC first.
    assert reading.cutoff_pct == 30.0
    assert reading.at == NOW


def test_on_grid_the_load_is_what_the_battery_would_take_over() -> None:
    reading = telemetry_reading(_state(grid=GridStatus.CONNECTED, battery_w=50.0, watts_out=120.0))
    assert reading is not None
    assert reading.discharge_w == 0.0  # charging: nothing leaves the battery
    assert reading.load_w == 120.0


def test_without_a_battery_figure_the_discharge_is_output_minus_input() -> None:
    # Some stations report no battery power: what leaves minus what comes in.
    on_battery = telemetry_reading(_state(grid=GridStatus.LOST, watts_in=40.0, watts_out=300.0))
    assert on_battery is not None
    assert on_battery.discharge_w == 260.0
    charging = telemetry_reading(_state(grid=GridStatus.CONNECTED, watts_in=500.0, watts_out=80.0))
    assert charging is not None
    assert charging.discharge_w == 0.0
    unknown_input = telemetry_reading(_state(watts_out=300.0))
    assert unknown_input is not None
    assert unknown_input.discharge_w is None


def test_a_state_without_fresh_evidence_is_not_fed() -> None:
    # A cached snapshot or an "offline" reply: newer updated_at, no fresh evidence.
    assert telemetry_reading(_state(fresh_at=None)) is None
    older = telemetry_reading(_state(updated_at=NOW + 30, fresh_at=NOW))
    assert older is not None
    assert older.at == NOW
