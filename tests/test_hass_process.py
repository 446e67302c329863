"""Home Assistant as a real process, with our integration on its path."""

from __future__ import annotations

import os
from pathlib import Path
import re
import subprocess
import sys
import time

import pytest

from tests.helpers.mosquitto import free_port

ROOT = Path(__file__).resolve().parent.parent
HASS = Path(sys.executable).with_name("hass")


@pytest.mark.hass_process
def test_hass_starts_with_the_integration_and_logs_no_error_of_ours(
    socket_enabled: None, tmp_path: Path
) -> None:
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
    env = {**os.environ, "PYTHONDONTWRITEBYTECODE": "1"}
    with log.open("w") as out:
        process = subprocess.Popen(
            [str(HASS), "--config", str(config)], stdout=out, stderr=subprocess.STDOUT, env=env
        )
    try:
        deadline = time.monotonic() + 240
        while time.monotonic() < deadline:
            text = log.read_text()
            if "Home Assistant initialized in" in text:
                break
            assert process.poll() is None, f"hass exited early:\n{text[-3000:]}"
            time.sleep(0.5)
        else:
            pytest.fail(f"hass did not finish starting:\n{log.read_text()[-3000:]}")
        text = log.read_text()
        assert "We found a custom integration ecoflow_power" in text
        ours = [
            line
            for line in text.splitlines()
            if re.search(r"(ERROR|CRITICAL).*(ecoflow_power|custom_components)", line)
        ]
        assert not ours, "\n".join(ours)
    finally:
        process.terminate()
        try:
            process.wait(60)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
