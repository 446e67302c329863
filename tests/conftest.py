"""Test configuration shared by every test folder."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

# Import our integration before the `hass` fixture runs: otherwise HA finds the
# placeholder custom_components package shipped by the test plugin and reports
# "Integration not found".
import custom_components.ecoflow_power  # noqa: F401
from tests.helpers.mosquitto import MosquittoBroker, running_broker


@pytest.fixture
def mosquitto() -> Iterator[MosquittoBroker]:
    """A real anonymous mosquitto on a free loopback port."""
    with running_broker() as broker:
        yield broker
