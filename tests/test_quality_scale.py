"""quality_scale.yaml: every rule of the Integration Quality Scale, true where a test can see."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from custom_components.ecoflow_power.config_flow import EcoflowConfigFlow

ROOT = Path(__file__).resolve().parent.parent
INTEGRATION = ROOT / "custom_components" / "ecoflow_power"
README = (ROOT / "README.md").read_text()
MANIFEST = json.loads((INTEGRATION / "manifest.json").read_text())

# The rules of Home Assistant's script/hassfest/quality_scale.py (ALL_RULES), by tier.
RULES = {
    "bronze": [
        "action-setup", "appropriate-polling", "brands", "common-modules", "config-flow",
        "config-flow-test-coverage", "dependency-transparency", "docs-actions",
        "docs-conditions", "docs-high-level-description", "docs-installation-instructions",
        "docs-removal-instructions", "docs-triggers", "entity-event-setup", "entity-unique-id",
        "has-entity-name", "runtime-data", "test-before-configure", "test-before-setup",
        "unique-config-entry",
    ],
    "silver": [
        "action-exceptions", "config-entry-unloading", "docs-configuration-parameters",
        "docs-installation-parameters", "entity-unavailable", "integration-owner",
        "log-when-unavailable", "parallel-updates", "reauthentication-flow", "test-coverage",
    ],
    "gold": [
        "devices", "diagnostics", "discovery", "discovery-update-info", "docs-data-update",
        "docs-examples", "docs-known-limitations", "docs-supported-devices",
        "docs-supported-functions", "docs-troubleshooting", "docs-use-cases", "dynamic-devices",
        "entity-category", "entity-device-class", "entity-disabled-by-default",
        "entity-translations", "exception-translations", "icon-translations",
        "reconfiguration-flow", "repair-issues", "stale-devices",
    ],
    "platinum": ["async-dependency", "inject-websession", "strict-typing"],
}  # fmt: skip
ALL_RULES = [rule for tier in RULES.values() for rule in tier]
PLATFORMS = ["binary_sensor", "sensor", "switch"]


def _rules() -> dict[str, Any]:
    document = yaml.safe_load((INTEGRATION / "quality_scale.yaml").read_text())
    return document["rules"]


def status(rule: str) -> str:
    value = _rules()[rule]
    return value if isinstance(value, str) else value["status"]


def test_every_rule_is_listed_once_with_a_known_status() -> None:
    rules = _rules()
    assert len(ALL_RULES) == 54
    assert sorted(rules) == sorted(ALL_RULES)
    for rule, value in rules.items():
        entry = value if isinstance(value, dict) else {"status": value}
        assert entry["status"] in {"done", "todo", "exempt"}, rule
        if entry["status"] == "exempt":
            assert entry.get("comment", "").strip(), f"{rule}: an exemption needs its reason"


def _only_if_done(rule: str) -> None:
    if status(rule) != "done":
        pytest.skip(f"{rule} is not claimed")


def test_docs_sections_the_file_claims_exist() -> None:
    sections = {
        "docs-removal-instructions": "## Removal",
        "docs-known-limitations": "## Known limitations",
        "docs-troubleshooting": "## Troubleshooting",
        "docs-installation-instructions": "## Install (HACS)",
        "docs-supported-functions": "## Entities",
    }
    for rule, heading in sections.items():
        if status(rule) == "done":
            assert f"\n{heading}\n" in README, rule


def test_parallel_updates_is_set_in_every_platform() -> None:
    _only_if_done("parallel-updates")
    for platform in PLATFORMS:
        assert "\nPARALLEL_UPDATES = " in (INTEGRATION / f"{platform}.py").read_text(), platform


def test_exempt_discovery_means_the_manifest_discovers_nothing() -> None:
    assert status("discovery") == "exempt"
    for key in ("zeroconf", "ssdp", "dhcp", "usb", "bluetooth", "homekit", "mqtt"):
        assert key not in MANIFEST


def test_exempt_conditions_means_there_are_none() -> None:
    assert status("docs-conditions") == "exempt"
    assert not (INTEGRATION / "device_condition.py").exists()


def test_claimed_files_and_flows_exist() -> None:
    claims = {
        "brands": (INTEGRATION / "brand" / "icon.png").exists(),
        "icon-translations": (INTEGRATION / "icons.json").exists(),
        "diagnostics": (INTEGRATION / "diagnostics.py").exists(),
        "integration-owner": bool(MANIFEST.get("codeowners")),
        "config-flow": MANIFEST.get("config_flow") is True,
        "reauthentication-flow": hasattr(EcoflowConfigFlow, "async_step_reauth"),
        "reconfiguration-flow": hasattr(EcoflowConfigFlow, "async_step_reconfigure"),
        "repair-issues": (INTEGRATION / "issues.py").exists(),
    }
    for rule, holds in claims.items():
        if status(rule) == "done":
            assert holds, rule


def test_claimed_behaviours_have_their_code_and_tests() -> None:
    """Rules whose truth lives in code: the code and the test that shows it are there."""
    tests = ROOT / "tests" / "integration"
    setup = (INTEGRATION / "__init__.py").read_text()
    session = (INTEGRATION / "ecoflow" / "mqtt_session.py").read_text()
    claims = {
        "stale-devices": "async def async_remove_entry(" in setup
        and "async_remove_stale_devices(" in setup
        and (tests / "test_stale_devices.py").exists(),
        "log-when-unavailable": "_outage_logged" in session
        and (tests / "test_silent_station_log.py").exists(),
        "strict-typing": ".venv/bin/mypy" in (ROOT / "scripts" / "lint").read_text()
        and "disallow_untyped_defs = true" in (ROOT / "pyproject.toml").read_text(),
        "config-flow": (tests / "test_form_texts.py").exists(),
        "test-coverage": "coverage_floor.py" in (ROOT / "scripts" / "test").read_text()
        and (ROOT / "scripts" / "coverage_floor.py").exists(),
    }
    for rule, holds in claims.items():
        if status(rule) == "done":
            assert holds, rule
