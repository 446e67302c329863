"""Lets the pytest-based benchmarks use Home Assistant's test harness.

The benchmarks are not part of the test suite (testpaths = tests): run them
explicitly, e.g. `.venv/bin/python -m pytest benchmarks/bench_pipeline.py -s`.
"""

from __future__ import annotations

import pytest

# Import our integration before the `hass` fixture runs (see tests/conftest.py).
import custom_components.ecoflow_power  # noqa: F401


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let HA load our integration in every benchmark."""
