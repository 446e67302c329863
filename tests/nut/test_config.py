"""The NUT server's stored settings and the rules the options form applies."""

from __future__ import annotations

import pytest

from custom_components.ecoflow_power.nut.config import (
    NutConfig,
    default_ups_name,
    generate_password,
    is_valid_host,
    is_valid_ups_name,
    is_valid_username,
)
from custom_components.ecoflow_power.nut.protocol import split_words


def test_stored_options_become_a_config_and_names_compare_case_insensitively() -> None:
    config = NutConfig.from_options(
        {
            "nut": {
                "enabled": True,
                "port": 3493,
                "users": {"monuser": {"password": "secret"}},
                "stations": {
                    "SN1": {"name": "Rack", "aliases": ["ups"], "soc_threshold": 30.0},
                    "SN2": {"name": ""},  # incomplete: not served
                },
            }
        }
    )
    assert config.enabled
    assert config.host == "0.0.0.0"
    assert [u.username for u in config.users] == ["monuser"]
    assert list(config.stations) == ["SN1"]
    assert config.names_in_use() == {"rack", "ups"}
    assert config.names_in_use(except_sn="SN1") == set()
    assert NutConfig.from_options({}) == NutConfig()


@pytest.mark.parametrize(
    ("name", "valid"),
    [
        ("delta2", True),
        ("ups", True),
        ("rack-1.a_b", True),
        ("", False),
        ("a b", False),
        ("-x", False),
        ("x" * 33, False),
        ('a"b', False),
    ],
)
def test_ups_names(name: str, valid: bool) -> None:
    assert is_valid_ups_name(name) is valid


@pytest.mark.parametrize(
    ("name", "valid"), [("monuser", True), ("admin@nas", True), ("", False), ("a b", False)]
)
def test_usernames(name: str, valid: bool) -> None:
    assert is_valid_username(name) is valid


@pytest.mark.parametrize(
    ("host", "valid"),
    [("0.0.0.0", True), ("::", True), ("192.168.1.10", True), ("nas.local", False), ("", False)],
)
def test_listen_addresses(host: str, valid: bool) -> None:
    assert is_valid_host(host) is valid


def test_default_names_come_from_the_model_and_stay_unique() -> None:
    assert default_ups_name("DELTA 2", set()) == "delta2"
    assert default_ups_name("DELTA 2", {"delta2"}) == "delta2-2"
    assert default_ups_name("", set()) == "ecoflow"


def test_generated_passwords_survive_a_nut_config_file_unquoted() -> None:
    for _ in range(50):
        password = generate_password()
        assert len(password) == 24
        assert split_words(f"PASSWORD {password}") == ["PASSWORD", password]
