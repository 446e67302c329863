"""What HACS reads about the integration agrees with what the code is built for."""

from __future__ import annotations

import json
from pathlib import Path

from awesomeversion import AwesomeVersion
from homeassistant.const import __version__ as HA_VERSION

ROOT = Path(__file__).resolve().parents[1]


def test_hacs_minimum_home_assistant_is_the_release_the_code_is_built_for() -> None:
    # The code uses what Home Assistant 2026.10 brought (probatio forms, the
    # device-registry helper, protobuf 7): HACS must not offer it to older ones.
    minimum = AwesomeVersion(json.loads((ROOT / "hacs.json").read_text())["homeassistant"])
    installed = AwesomeVersion(HA_VERSION)
    assert minimum <= installed
    assert (minimum.major, minimum.minor) == (installed.major, installed.minor)
