"""Every key the code names has its text in translations/en.json and its icon."""

from __future__ import annotations

import json
from pathlib import Path
import re

from custom_components.ecoflow_power import binary_sensor, policy_sensor, sensor, switch
from custom_components.ecoflow_power.const import POLICY_EVENT_TYPES

INTEGRATION = Path(__file__).resolve().parents[2] / "custom_components" / "ecoflow_power"
EN = json.loads((INTEGRATION / "translations" / "en.json").read_text())
ICONS = json.loads((INTEGRATION / "icons.json").read_text())
SOURCE = "\n".join(p.read_text() for p in INTEGRATION.glob("*.py"))


def _entity_keys() -> dict[str, set[str]]:
    sensors = [
        *sensor.SENSORS,
        *(sensor.energy_description(key) for key in sensor.ENERGY_KEYS),
        sensor.pack_description(0),
        *policy_sensor.POLICY_SENSORS,
        *policy_sensor.AGENT_SENSORS,
        *policy_sensor.AGENT_LEASE_SENSORS,
    ]
    binaries = [*binary_sensor.BINARY_SENSORS, policy_sensor.AGENT_ONLINE]
    return {
        "sensor": {d.translation_key for d in sensors if d.translation_key},
        "binary_sensor": {d.translation_key for d in binaries if d.translation_key},
        "switch": {switch.ARMED.translation_key},
    }


def test_every_entity_has_a_name_and_an_icon() -> None:
    for platform, keys in _entity_keys().items():
        assert keys <= set(EN["entity"][platform]), f"{platform}: names missing"
        assert keys <= set(ICONS["entity"][platform]), f"{platform}: icons missing"


def test_enum_sensor_states_are_translated() -> None:
    for description in (
        *sensor.SENSORS,
        *policy_sensor.POLICY_SENSORS,
        *policy_sensor.AGENT_SENSORS,
    ):
        if description.options:
            states = EN["entity"]["sensor"][description.translation_key]["state"]
            assert set(description.options) == set(states), description.key


def test_exceptions_and_issues_named_in_the_code_exist() -> None:
    named = set(re.findall(r'translation_key="([a-z_]+)"', SOURCE))
    entity_keys = set().union(*(set(EN["entity"][platform]) for platform in EN["entity"]))
    # Selector keys (`region`, NUT aliases and presets) name their options.
    assert named - entity_keys <= set(EN["exceptions"]) | set(EN["issues"]) | set(EN["selector"])
    for issue in ("undecodable_device", "cloud_unreachable", "mqtt_missing", "telemetry_stale"):
        assert {"title", "description"} <= set(EN["issues"][issue])


def test_services_and_triggers_are_described() -> None:
    for service in ("shutdown", "abort", "ping_agents"):
        assert EN["services"][service]["name"]
        assert service in ICONS["services"]
    assert set(POLICY_EVENT_TYPES) == set(EN["device_automation"]["trigger_type"])
