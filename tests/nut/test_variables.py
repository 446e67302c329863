"""What a NUT client reads for a station: status words, figures, staleness, the policy's FSD."""

from __future__ import annotations

from dataclasses import replace

import pytest

from custom_components.ecoflow_power.ecoflow.state import ChargeState, GridStatus, PowerState
from custom_components.ecoflow_power.nut.consumer import StationFacts, ups_inputs
from custom_components.ecoflow_power.nut.variables import build_variables, number
from custom_components.ecoflow_power.policy.protocol import CommandAction
from custom_components.ecoflow_power.policy.status import AgentView, PolicyState, PolicyStatus

NOW = 1_800_000_000.0
AGENT = "nut-delta"
FACTS = StationFacts(
    model="DELTA 2",
    serial="R331ZEB4ZEA00001",
    driver_version="0.1.0",
    charge_low_pct=25,
    runtime_low_sec=600,
)
ON_GRID = PowerState(
    sn="R331ZEB4ZEA00001",
    model="DELTA 2",
    soc=91.0,
    soc_min=88.5,
    grid=GridStatus.CONNECTED,
    ac_in_v=229.6,
    watts_in=310,
    watts_out=120,
    battery_w=190,
    remaining_discharge_min=300,
    charge_state=ChargeState.CHARGING,
    firmware="1.0.1.57",
    online=True,
    updated_at=NOW - 5,
)
ON_BATTERY = replace(
    ON_GRID,
    grid=GridStatus.LOST,
    ac_in_v=0,
    watts_in=0,
    battery_w=-120,
    charge_state=ChargeState.DISCHARGING,
    remaining_discharge_min=95,
)


def view(**changes: object) -> AgentView:
    base = AgentView(
        agent_id=AGENT,
        soc_threshold=25,
        delay_sec=60,
        pending_fire_at=None,
        last_command_id=None,
        last_command_action=None,
        last_command_at=None,
        last_ack_status=None,
        last_ack_at=None,
        last_ack_detail="",
        acknowledged=False,
        committed=False,
    )
    return replace(base, **changes)


def status(
    state: PolicyState, grid: GridStatus | None, agent: AgentView | None = None
) -> PolicyStatus:
    return PolicyStatus(
        device_id=FACTS.serial,
        state=state,
        armed=True,
        dry_run=False,
        grid=grid,
        soc_min=None,
        remaining_discharge_min=None,
        telemetry_stale=False,
        pending_fire_at=None,
        agents={AGENT: agent or view()},
    )


def variables(state: PowerState | None, policy: PolicyStatus | None) -> dict[str, str] | None:
    return build_variables(ups_inputs(FACTS, state, policy, AGENT, now=NOW, stale_after_sec=120))


def test_a_charging_station_on_grid_reads_as_a_full_ups() -> None:
    values = variables(ON_GRID, status(PolicyState.NORMAL, GridStatus.CONNECTED))
    assert values == {
        "ups.status": "OL CHRG",
        "battery.charge": "88.5",  # the weakest pack, which the policy decides on
        "battery.charge.low": "25",
        "battery.runtime": str(300 * 60),  # at the present load, as UPSes report it
        "battery.runtime.low": "600",
        "input.voltage": "229.6",
        "ups.realpower": "120",
        "device.mfr": "EcoFlow",
        "device.model": "DELTA 2",
        "device.serial": "R331ZEB4ZEA00001",
        "device.type": "ups",
        "ups.mfr": "EcoFlow",
        "ups.model": "DELTA 2",
        "ups.serial": "R331ZEB4ZEA00001",
        "ups.firmware": "1.0.1.57",
        "driver.name": "ecoflow_power",
        "driver.version": "0.1.0",
    }


def test_an_outage_reads_on_battery_discharging_with_runtime() -> None:
    values = variables(ON_BATTERY, status(PolicyState.ON_BATTERY, GridStatus.LOST))
    assert values is not None
    assert values["ups.status"] == "OB DISCHRG"
    assert values["battery.runtime"] == str(95 * 60)
    assert values["input.voltage"] == "0"


def test_the_countdown_stays_ob_without_lb() -> None:
    countdown = view(
        last_command_id="c1",
        last_command_action=CommandAction.SHUTDOWN,
        commit_at=NOW + 30,
        fsd=True,  # the engine's level for host agents: due or out
    )
    values = variables(ON_BATTERY, status(PolicyState.SHUTDOWN_SENT, GridStatus.LOST, countdown))
    assert values is not None
    assert values["ups.status"] == "OB DISCHRG"


def test_the_commit_point_raises_fsd_and_lb() -> None:
    committed = view(last_command_action=CommandAction.SHUTDOWN, committed=True, fsd=True)
    values = variables(ON_BATTERY, status(PolicyState.COMMITTED, GridStatus.LOST, committed))
    assert values is not None
    assert values["ups.status"] == "FSD OB LB DISCHRG"


def test_the_engines_latched_fsd_wins_even_with_the_grid_back() -> None:
    latched = replace(view(committed=True), fsd=True)
    values = variables(ON_GRID, status(PolicyState.COMMITTED, GridStatus.CONNECTED, latched))
    assert values is not None
    assert values["ups.status"].startswith("FSD OB LB")


def test_once_the_latch_clears_a_client_booting_on_grid_sees_no_fsd() -> None:
    policy = status(PolicyState.COMMITTED, GridStatus.CONNECTED, view(committed=True))
    values = variables(ON_GRID, policy)
    assert values is not None
    assert values["ups.status"] == "OL CHRG"


def test_a_later_outage_does_not_inherit_the_last_outages_fsd() -> None:
    # The last shutdown is still `committed`, but the engine cleared its latch
    # when the grid was confirmed back: a new outage starts with OB only.
    released = view(last_command_action=CommandAction.SHUTDOWN, committed=True, fsd=False)
    values = variables(ON_BATTERY, status(PolicyState.ON_BATTERY, GridStatus.LOST, released))
    assert values is not None
    assert values["ups.status"] == "OB DISCHRG"


def test_silence_with_nothing_known_is_data_stale() -> None:
    silent = replace(ON_BATTERY, updated_at=NOW - 600)
    assert variables(silent, status(PolicyState.ON_BATTERY, GridStatus.LOST)) is None
    assert variables(None, None) is None


def test_silence_during_the_estimate_serves_the_estimate() -> None:
    silent = replace(ON_BATTERY, updated_at=NOW - 600)
    policy = replace(status(PolicyState.ON_BATTERY, GridStatus.LOST), estimate_soc=41.25)
    values = variables(silent, policy)
    assert values is not None
    assert values["battery.charge"] == "41.2"
    assert values["ups.status"] == "OB DISCHRG"
    assert "input.voltage" not in values


def test_silence_after_the_commit_point_still_serves_fsd() -> None:
    silent = replace(ON_BATTERY, updated_at=NOW - 600)
    committed = view(committed=True, fsd=True)
    values = variables(silent, status(PolicyState.COMMITTED, GridStatus.LOST, committed))
    assert values is not None
    assert values["ups.status"].startswith("FSD OB LB")


def test_unknown_grid_falls_back_to_the_policys_last_known() -> None:
    unknown = replace(ON_BATTERY, grid=GridStatus.UNKNOWN, charge_state=None, battery_w=None)
    values = variables(unknown, status(PolicyState.ON_BATTERY, GridStatus.LOST))
    assert values is not None
    assert values["ups.status"] == "OB"


@pytest.mark.parametrize(
    ("value", "text"), [(100.0, "100"), (88.46, "88.5"), (0.04, "0"), (1200.2, "1200.2")]
)
def test_numbers_are_written_as_nut_expects(value: float, text: str) -> None:
    assert number(value) == text


def test_the_restore_rules_restart_level_is_served_when_the_rule_is_on() -> None:
    with_rule = replace(FACTS, charge_restart_pct=30.0)
    inputs = ups_inputs(
        with_rule,
        ON_GRID,
        status(PolicyState.NORMAL, GridStatus.CONNECTED),
        AGENT,
        now=NOW,
        stale_after_sec=120,
    )
    assert build_variables(inputs)["battery.charge.restart"] == "30"
    # Rule off: not served (no client acts on a level nobody applies).
    assert "battery.charge.restart" not in variables(
        ON_GRID, status(PolicyState.NORMAL, GridStatus.CONNECTED)
    )
