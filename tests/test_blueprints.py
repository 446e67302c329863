"""The automation blueprints in blueprints/automation/ecoflow_power, checked by HA itself."""

from __future__ import annotations

from pathlib import Path
import shutil
from typing import Any

from homeassistant.components.automation.config import (
    AUTOMATION_BLUEPRINT_SCHEMA,
    async_validate_config_item,
)
from homeassistant.components.blueprint import Blueprint, BlueprintInputs
from homeassistant.core import HomeAssistant
from homeassistant.setup import async_setup_component
from homeassistant.util import yaml as yaml_util
import pytest
from pytest_homeassistant_custom_component.common import async_mock_service

from custom_components.ecoflow_power.const import EVENT_POLICY, POLICY_EVENT_TYPES

ROOT = Path(__file__).resolve().parent.parent
FOLDER = ROOT / "blueprints" / "automation" / "ecoflow_power"
NOTIFY = "notify_power_events.yaml"
SHED = "shed_load.yaml"
LAB_BACK = "notify_lab_back.yaml"

# Entity ids as the integration names them for a station called "Rack".
GRID = "binary_sensor.rack_grid_power"
BATTERY = "sensor.rack_battery"
WEAKEST = "sensor.rack_battery_weakest_pack"
RUNTIME = "sensor.rack_remaining_discharge_time"
LOAD = "input_boolean.lab_heater"

INPUTS: dict[str, dict[str, Any]] = {
    NOTIFY: {"notify_action": "notify.mobile_app_phone", "title": "UPS"},
    LAB_BACK: {"notify_action": "notify.mobile_app_phone"},
    SHED: {
        "grid_sensor": GRID,
        "battery_sensor": WEAKEST,
        "runtime_sensor": RUNTIME,
        "battery_threshold": 40,
        "runtime_threshold": 30,
        "load_entities": [LOAD],
        "restore": True,
    },
}


def load_blueprint(name: str) -> Blueprint:
    data = yaml_util.load_yaml_dict(FOLDER / name)
    return Blueprint(
        data,
        path=f"ecoflow_power/{name}",
        expected_domain="automation",
        schema=AUTOMATION_BLUEPRINT_SCHEMA,
    )


def substituted(name: str, inputs: dict[str, Any]) -> dict[str, Any]:
    blueprint = load_blueprint(name)
    config = {"id": name, "use_blueprint": {"path": f"ecoflow_power/{name}", "input": inputs}}
    bp_inputs = BlueprintInputs(blueprint, config)
    bp_inputs.validate()
    return bp_inputs.async_substitute()


def test_every_blueprint_in_the_folder_is_covered() -> None:
    assert sorted(p.name for p in FOLDER.glob("*.yaml")) == sorted(INPUTS)


@pytest.mark.parametrize("name", sorted(INPUTS))
def test_blueprint_is_valid_for_home_assistant(name: str) -> None:
    blueprint = load_blueprint(name)
    assert blueprint.domain == "automation"
    assert blueprint.validate() is None  # min_version met by this HA
    # Every !input used is declared, or Blueprint() would have raised.
    for key, spec in blueprint.inputs.items():
        assert spec.get("name"), f"{key} has no name"
        assert "selector" in spec, f"{key} has no selector"


def test_shed_load_entity_selectors_are_filtered_to_the_integration() -> None:
    inputs = load_blueprint(SHED).inputs
    for key in ("grid_sensor", "battery_sensor", "runtime_sensor"):
        filters = inputs[key]["selector"]["entity"]["filter"]
        assert all(f["integration"] == "ecoflow_power" for f in filters)


def test_notify_offers_every_policy_event_type() -> None:
    spec = load_blueprint(NOTIFY).inputs["event_types"]
    offered = {option["value"] for option in spec["selector"]["select"]["options"]}
    assert offered == set(POLICY_EVENT_TYPES)
    assert set(spec["default"]) == set(POLICY_EVENT_TYPES)


@pytest.mark.parametrize(
    ("name", "inputs"),
    [
        (NOTIFY, INPUTS[NOTIFY]),
        (NOTIFY, {}),  # every input has a default
        (LAB_BACK, {}),
        (SHED, INPUTS[SHED]),
        (SHED, {"grid_sensor": GRID, "battery_sensor": BATTERY, "load_entities": [LOAD]}),
        (SHED, {"grid_sensor": GRID, "runtime_sensor": RUNTIME, "load_entities": [LOAD]}),
    ],
)
async def test_substituted_config_passes_automation_validation(
    hass: HomeAssistant, name: str, inputs: dict[str, Any]
) -> None:
    config = substituted(name, inputs)
    validated = await async_validate_config_item(hass, name, config)
    assert validated is not None
    assert validated.validation_status == "ok", validated.validation_error
    assert validated["triggers"]
    assert validated["actions"]


def test_missing_required_input_is_reported() -> None:
    from homeassistant.components.blueprint import MissingInput

    with pytest.raises(MissingInput):
        substituted(SHED, {"grid_sensor": GRID})


@pytest.fixture
async def blueprints_installed(hass: HomeAssistant, tmp_path: Path) -> None:
    """A private config folder holding the blueprints where HA looks for them."""
    hass.config.config_dir = str(tmp_path)
    target = tmp_path / "blueprints" / "automation" / "ecoflow_power"
    target.mkdir(parents=True)
    for name in INPUTS:
        shutil.copy(FOLDER / name, target / name)
    assert await async_setup_component(hass, "homeassistant", {})


async def _automation(hass: HomeAssistant, name: str, inputs: dict[str, Any]) -> None:
    assert await async_setup_component(
        hass,
        "automation",
        {
            "automation": [
                {
                    "id": name,
                    "alias": name.removesuffix(".yaml"),
                    "use_blueprint": {"path": f"ecoflow_power/{name}", "input": inputs},
                }
            ]
        },
    )
    await hass.async_block_till_done()
    state = hass.states.get(f"automation.{name.removesuffix('.yaml')}")
    assert state is not None
    assert state.state == "on"


async def test_notify_blueprint_sends_a_message_per_step(
    hass: HomeAssistant, blueprints_installed: None
) -> None:
    calls = async_mock_service(hass, "notify", "mobile_app_phone")
    await _automation(
        hass,
        NOTIFY,
        INPUTS[NOTIFY]
        | {"event_types": ["grid_lost", "battery_critical", "shutdown_sent", "shutdown_aborted"]},
    )
    base = {"device_id": "abc", "station": "Rack"}
    hass.bus.async_fire(EVENT_POLICY, base | {"type": "grid_lost", "soc_min": 80.0})
    hass.bus.async_fire(
        EVENT_POLICY,
        base
        | {
            "type": "shutdown_sent",
            "agent_id": "nas",
            "delay_sec": 60,
            "mode": "live",
            "reason": "soc_min 15 <= 20",
        },
    )
    hass.bus.async_fire(EVENT_POLICY, base | {"type": "grid_restored"})  # not selected
    hass.bus.async_fire(
        EVENT_POLICY,
        base | {"type": "shutdown_aborted", "agent_id": "nas", "mode": "dry_run", "reason": "x"},
    )
    await hass.async_block_till_done()

    assert [call.data["title"] for call in calls] == ["UPS"] * 3
    messages = [call.data["message"] for call in calls]
    assert messages[0] == "Rack: Grid power lost (grid_lost) - battery 80.0 %"
    assert messages[1] == (
        "Rack: Shutdown sent (shutdown_sent) - host nas, shuts down in 60 s, soc_min 15 <= 20"
    )
    assert messages[2] == "Rack: Shutdown aborted (shutdown_aborted) - host nas, dry run, x"


async def test_notify_blueprint_defaults_cover_agent_offline(
    hass: HomeAssistant, blueprints_installed: None
) -> None:
    calls = async_mock_service(hass, "notify", "notify")
    await _automation(hass, NOTIFY, {})
    hass.bus.async_fire(EVENT_POLICY, {"type": "agent_offline", "station": "Rack", "agent": "pc"})
    hass.bus.async_fire("some_other_event", {"type": "grid_lost", "station": "Rack"})
    await hass.async_block_till_done()
    assert [call.data["message"] for call in calls] == [
        "Rack: Agent went offline (agent_offline) - host pc"
    ]
    assert calls[0].data["title"] == "EcoFlow power"


async def _set(hass: HomeAssistant, entity_id: str, state: str) -> None:
    hass.states.async_set(entity_id, state)
    await hass.async_block_till_done()


async def test_shed_load_turns_off_at_the_threshold_and_back_on(
    hass: HomeAssistant, blueprints_installed: None
) -> None:
    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {"lab_heater": {"initial": True}}}
    )
    await _set(hass, GRID, "on")
    await _set(hass, WEAKEST, "80")
    await _set(hass, RUNTIME, "300")
    await _automation(hass, SHED, INPUTS[SHED])

    # On grid power a low battery sheds nothing.
    await _set(hass, WEAKEST, "30")
    assert hass.states.get(LOAD).state == "on"
    # On battery above both thresholds: nothing yet.
    await _set(hass, WEAKEST, "80")
    await _set(hass, GRID, "off")
    assert hass.states.get(LOAD).state == "on"
    # Battery at the threshold: shed.
    await _set(hass, WEAKEST, "40")
    assert hass.states.get(LOAD).state == "off"
    # Grid back: restored.
    await _set(hass, GRID, "on")
    assert hass.states.get(LOAD).state == "on"

    # Next outage, the remaining-time rule fires alone.
    await _set(hass, WEAKEST, "90")
    await _set(hass, GRID, "off")
    assert hass.states.get(LOAD).state == "on"
    await _set(hass, RUNTIME, "25")
    assert hass.states.get(LOAD).state == "off"
    # Unknown telemetry does not count as low.
    await _set(hass, GRID, "on")
    await _set(hass, RUNTIME, "unavailable")
    await _set(hass, GRID, "off")
    assert hass.states.get(LOAD).state == "on"


async def test_shed_load_without_restore_leaves_the_load_off(
    hass: HomeAssistant, blueprints_installed: None
) -> None:
    calls_off = async_mock_service(hass, "switch", "turn_off")
    assert await async_setup_component(
        hass, "input_boolean", {"input_boolean": {"lab_heater": {"initial": True}}}
    )
    await _set(hass, GRID, "off")
    await _set(hass, BATTERY, "60")
    await _automation(
        hass,
        SHED,
        {
            "grid_sensor": GRID,
            "battery_sensor": BATTERY,
            "battery_threshold": 50,
            "load_entities": [LOAD],
        },
    )
    await _set(hass, BATTERY, "49")
    assert hass.states.get(LOAD).state == "off"
    await _set(hass, GRID, "on")
    assert hass.states.get(LOAD).state == "off"
    assert not calls_off


async def test_lab_back_blueprint_follows_the_wake_up(
    hass: HomeAssistant, blueprints_installed: None
) -> None:
    calls = async_mock_service(hass, "notify", "mobile_app_phone")
    await _automation(hass, LAB_BACK, INPUTS[LAB_BACK])
    base = {"device_id": "abc", "station": "Rack"}
    hass.bus.async_fire(EVENT_POLICY, base | {"type": "power_restored", "hosts": ["nas", "pve"]})
    hass.bus.async_fire(EVENT_POLICY, base | {"type": "host_woken", "host": "nas"})
    hass.bus.async_fire(EVENT_POLICY, base | {"type": "grid_lost"})  # not about the wake-up
    hass.bus.async_fire(
        EVENT_POLICY, base | {"type": "host_wake_failed", "host": "pve", "attempts": 3}
    )
    await hass.async_block_till_done()
    assert [call.data["message"] for call in calls] == [
        "Rack: power is back for good; waking nas, pve.",
        "Rack: nas is back up.",
        "Rack: pve did not come back after 3 wake-up attempts; start it by hand.",
    ]
    assert calls[0].data["title"] == "Home lab"
