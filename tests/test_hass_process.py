"""Home Assistant as a real process, loading the integration against the stand-in."""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path
import re
import socket
import subprocess
import sys
import time

import pytest

from custom_components.ecoflow_power.account import account_unique_id
from tests.helpers.mosquitto import free_port

ROOT = Path(__file__).resolve().parent.parent
PYTHON = Path(sys.executable)
HASS = PYTHON.with_name("hass")
ACCESS_KEY = "smoke-access-key"
SECRET_KEY = "smoke-secret-key"


def _wait_for_port(port: int, process: subprocess.Popen[bytes], seconds: float = 30) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        assert process.poll() is None, "the stand-in exited early"
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 0.2):
            return
        time.sleep(0.1)
    pytest.fail(f"nothing listens on {port}")


def _seed_config_entry(config: Path, base_url: str) -> None:
    """What the config flow would store; HA migrates the older minor version."""
    storage = config / ".storage"
    storage.mkdir(parents=True)
    entry = {
        "entry_id": "01SMOKETESTENTRY0000000000",
        "domain": "ecoflow_power",
        "title": "EcoFlow (stand-in)",
        "data": {
            "access_key": ACCESS_KEY,
            "secret_key": SECRET_KEY,
            "region": "eu",
            "base_url": base_url,
        },
        "options": {"add_new_devices": True},
        "source": "user",
        "unique_id": account_unique_id(ACCESS_KEY),
        "version": 1,
        "minor_version": 1,
        "pref_disable_new_entities": False,
        "pref_disable_polling": False,
        "disabled_by": None,
    }
    (storage / "core.config_entries").write_text(
        json.dumps(
            {
                "version": 1,
                "minor_version": 1,
                "key": "core.config_entries",
                "data": {"entries": [entry]},
            }
        )
    )


def _stop(process: subprocess.Popen[bytes], seconds: float = 60) -> None:
    process.terminate()
    try:
        process.wait(seconds)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait(10)


@pytest.mark.hass_process
def test_hass_loads_the_integration_against_the_stand_in_and_logs_no_error(
    socket_enabled: None, tmp_path: Path
) -> None:
    http_port, broker_port = free_port(), free_port()
    stand_in = subprocess.Popen(
        [
            str(PYTHON),
            "-m",
            "simulator",
            "--spawn-broker",
            "--http-port",
            str(http_port),
            "--broker-port",
            str(broker_port),
            "--access-key",
            ACCESS_KEY,
            "--secret-key",
            SECRET_KEY,
            "--time-scale",
            "60",
            "--publish-interval",
            "0.5",
        ],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    config = tmp_path / "config"
    (config / "custom_components").mkdir(parents=True)
    (config / "custom_components" / "ecoflow_power").symlink_to(
        ROOT / "custom_components" / "ecoflow_power"
    )
    (config / "configuration.yaml").write_text(
        "homeassistant:\n  name: smoke\n  time_zone: UTC\n"
        f"http:\n  server_host: 127.0.0.1\n  server_port: {free_port()}\n"
        "logger:\n  default: info\n"
    )
    log = tmp_path / "hass.log"
    hass: subprocess.Popen[bytes] | None = None
    try:
        _wait_for_port(http_port, stand_in)
        _seed_config_entry(config, f"http://127.0.0.1:{http_port}")
        with log.open("w") as out:
            hass = subprocess.Popen(
                [str(HASS), "--config", str(config)],
                stdout=out,
                stderr=subprocess.STDOUT,
                env={**os.environ, "PYTHONDONTWRITEBYTECODE": "1"},
            )
        registry_file = config / ".storage" / "core.entity_registry"
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            text = log.read_text()
            # HA saves the entity registry a few seconds after entities register;
            # by then it is running and handles SIGTERM as a clean stop.
            if (
                "Home Assistant initialized in" in text
                and text.count("Receiving telemetry") >= 2
                and registry_file.exists()
                and "ecoflow_power" in registry_file.read_text()
            ):
                break
            assert hass.poll() is None, f"hass exited early:\n{text[-3000:]}"
            time.sleep(0.5)
        else:
            pytest.fail(f"hass did not load the integration:\n{log.read_text()[-3000:]}")
        _stop(hass)
        assert hass.returncode == 0, f"hass did not stop cleanly:\n{log.read_text()[-3000:]}"
        text = log.read_text()
        assert "Receiving telemetry from River 3 (simulated) (River 3)" in text
        assert "Receiving telemetry from Delta 2 (simulated) (Delta 2)" in text
        ours = [
            line
            for line in text.splitlines()
            if re.search(r"(ERROR|CRITICAL).*(ecoflow_power|custom_components)", line)
        ]
        assert not ours, "\n".join(ours)
        assert SECRET_KEY not in text
        # The entities were created and survive in the registry HA saved on stop.
        registry = json.loads(registry_file.read_text())
        ours_registered = {
            e["entity_id"] for e in registry["data"]["entities"] if e["platform"] == "ecoflow_power"
        }
        assert "sensor.river_3_simulated_battery" in ours_registered
        assert "binary_sensor.delta_2_simulated_grid_power" in ours_registered
    finally:
        if hass is not None and hass.poll() is None:
            _stop(hass)
        _stop(stand_in, 10)
