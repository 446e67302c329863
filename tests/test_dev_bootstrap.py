"""Pure helpers of scripts/dev_bootstrap.py (the scripts/develop demo bootstrap)."""

from __future__ import annotations

import importlib.util
import json
from pathlib import Path
import stat
import sys
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parent.parent


def _load() -> ModuleType:
    spec = importlib.util.spec_from_file_location(
        "dev_bootstrap", ROOT / "scripts" / "dev_bootstrap.py"
    )
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules.setdefault("dev_bootstrap", module)
    spec.loader.exec_module(module)
    return module


boot = _load()

# As HA 2026.10 serializes our policy_settings form (captured from a live instance).
POLICY_FORM = [
    {"selector": {"number": {"min": 1, "max": 95}}, "name": "soc_threshold", "required": True,
     "default": 20},
    {"selector": {"number": {"min": 0, "max": 600}}, "name": "runtime_threshold_min",
     "required": True, "default": 0},
    {"selector": {"number": {}}, "name": "debounce_sec", "required": True, "default": 60},
    {"selector": {"number": {}}, "name": "delay_sec", "required": True, "default": 60},
    {"selector": {"number": {}}, "name": "ttl_sec", "required": True, "default": 300},
    {"selector": {"number": {}}, "name": "cooldown_sec", "required": True, "default": 600},
    {"type": "boolean", "name": "dry_run", "required": True, "default": False},
    {"type": "string", "name": "topic_prefix", "required": True, "default": "power-manager"},
]  # fmt: skip

# The shape of HA's MQTT broker form: a required section with required toggles
# and selects that have no default.
MQTT_FORM = [
    {"selector": {"text": {}}, "name": "broker", "required": True},
    {"selector": {"number": {}}, "name": "port", "required": True, "default": 1883},
    {"selector": {"select": {"options": ["3.1", "3.1.1", "5"]}}, "name": "protocol",
     "required": True, "default": "3.1.1"},
    {"selector": {"text": {}}, "name": "username", "optional": True},
    {"name": "other_settings", "type": "expandable", "required": True, "expanded": False,
     "schema": [
         {"selector": {"text": {}}, "name": "client_id", "optional": True},
         {"selector": {"boolean": {}}, "name": "set_client_cert", "required": True},
         {"selector": {"select": {"options": ["off", "auto", "custom"]}},
          "name": "set_ca_cert", "required": True},
         {"selector": {"select": {"options": ["tcp", "websockets"]}}, "name": "transport",
          "required": True, "default": "tcp"},
     ]},
]  # fmt: skip

USER_FORM = [
    {"name": "access_key", "required": True, "default": "", "selector": {"text": {}}},
    {"name": "secret_key", "required": True, "selector": {"text": {"type": "password"}}},
    {"name": "region", "required": True, "default": "eu",
     "selector": {"select": {"options": ["eu", "us", "global"]}}},
    {"name": "advanced", "type": "expandable", "required": True, "expanded": False,
     "schema": [{"name": "base_url", "optional": True, "selector": {"text": {"type": "url"}},
                 "description": {"suggested_value": None}}]},
]  # fmt: skip


def test_fill_form_takes_values_then_defaults_and_fills_sections() -> None:
    result = boot.fill_form(
        MQTT_FORM, {"broker": "127.0.0.1", "other_settings": {"set_ca_cert": "off"}}
    )
    assert result == {
        "broker": "127.0.0.1",
        "port": 1883,
        "protocol": "3.1.1",
        "other_settings": {"set_client_cert": False, "set_ca_cert": "off", "transport": "tcp"},
    }


def test_fill_form_sends_a_required_section_even_when_empty() -> None:
    result = boot.fill_form(USER_FORM, {"access_key": "ak", "secret_key": "sk"})
    assert result == {"access_key": "ak", "secret_key": "sk", "region": "eu", "advanced": {}}
    result = boot.fill_form(USER_FORM, {"advanced": {"base_url": "http://127.0.0.1:8089"}})
    assert result["advanced"] == {"base_url": "http://127.0.0.1:8089"}


def test_fill_form_answers_an_untouched_boolean_like_the_frontend() -> None:
    form = [{"type": "boolean", "name": "flag", "required": True}]
    assert boot.fill_form(form, {}) == {"flag": False}
    assert boot.fill_form(form, {"flag": True}) == {"flag": True}


def test_form_defaults_reads_current_policy_and_suggested_values() -> None:
    current = boot.form_defaults(POLICY_FORM)
    assert current["soc_threshold"] == 20
    assert current["topic_prefix"] == "power-manager"
    form = [{"name": "x", "description": {"suggested_value": 5}}]
    assert boot.form_defaults(form) == {"x": 5}
    assert boot.form_defaults(USER_FORM)["advanced"] == {"base_url": None}


def test_settings_differ_compares_numbers_loosely_and_lists_changes() -> None:
    current = boot.form_defaults(POLICY_FORM)
    assert set(boot.settings_differ(current, boot.DEMO_POLICY)) == {
        "soc_threshold",
        "debounce_sec",
        "cooldown_sec",
    }
    same = {**current, **{k: float(v) for k, v in boot.DEMO_POLICY.items() if k != "dry_run"}}
    assert boot.settings_differ(same, boot.DEMO_POLICY) == []
    assert boot.settings_differ({"dry_run": 0}, {"dry_run": False}) == []


def test_demo_policy_is_valid_for_the_engine() -> None:
    from custom_components.ecoflow_power.policy.settings import PolicySettings

    settings = {**boot.DEMO_POLICY, "runtime_threshold_min": None}
    PolicySettings.from_mapping(settings)
    # The countdown is shorter than the cooldown: "committed" is visible in the UI.
    assert boot.DEMO_POLICY["delay_sec"] < boot.DEMO_POLICY["cooldown_sec"]


def test_select_values_reads_option_values_and_plain_options() -> None:
    form = [
        {"name": "devices", "selector": {"select": {"options": [{"value": "SN1", "label": "A"}]}}},
        {"name": "agent_id", "selector": {"select": {"options": ["nas", "pc"]}}},
    ]
    assert boot.select_values(form, "devices") == ["SN1"]
    assert boot.select_values(form, "agent_id") == ["nas", "pc"]
    assert boot.select_values(form, "missing") == []


def test_agent_config_is_loaded_by_the_linux_agent(tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "agents" / "linux"))
    try:
        import ecoflow_agent
    finally:
        sys.path.pop(0)
    path = tmp_path / "agent.json"
    data = boot.agent_config(
        agent_id="demo-host",
        secret="s3cr3t",
        mqtt_host="127.0.0.1",
        mqtt_port=1883,
        prefix="power-manager",
        state_dir=str(tmp_path / "state"),
    )
    boot.write_private_json(path, data)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert json.loads(path.read_text()) == data
    cfg = ecoflow_agent.load_config(str(path), {})
    assert (cfg.agent_id, cfg.secret, cfg.mqtt_port, cfg.dry_run) == (
        "demo-host",
        "s3cr3t",
        1883,
        True,
    )
    assert [pre.argv for pre in cfg.pre_shutdown] == [["sync"]]


def test_write_private_json_replaces_a_file_and_keeps_it_private(tmp_path: Path) -> None:
    path = tmp_path / "sub" / "agent.json"
    boot.write_private_json(path, {"a": 1})
    path.chmod(0o644)
    boot.write_private_json(path, {"a": 2})
    assert json.loads(path.read_text()) == {"a": 2}
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert boot.read_json(path) == {"a": 2}
    assert boot.read_json(tmp_path / "missing.json") is None


@pytest.mark.parametrize(
    ("result", "kind", "step", "ok"),
    [
        ({"type": "form", "step_id": "user"}, "form", "user", True),
        ({"type": "form", "step_id": "devices"}, "form", "user", False),
        ({"type": "abort", "reason": "single_instance_allowed"}, "create_entry", None, False),
    ],
)
def test_expect(result: dict, kind: str, step: str | None, ok: bool) -> None:
    if ok:
        assert boot.expect(result, kind, step) is result
    else:
        with pytest.raises(boot.BootstrapError):
            boot.expect(result, kind, step)
