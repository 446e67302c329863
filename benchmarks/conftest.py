"""Lets the pytest-based benchmarks use Home Assistant's test harness.

The benchmarks are not part of the test suite (testpaths = tests): run them
explicitly, e.g. `.venv/bin/python -m pytest benchmarks/bench_pipeline.py -s`.
"""

from __future__ import annotations

import asyncio
import os
from pathlib import Path
import sys

import pytest

# BENCH_TREE=PATH measures another checkout's code (e.g. the commit before a
# change) with these benchmarks: its directory goes first on the import path,
# before anything imports the integration.
if tree := os.environ.get("BENCH_TREE"):
    sys.path.insert(0, str(Path(tree).resolve()))

# Import our integration before the `hass` fixture runs (see tests/conftest.py).
import custom_components.ecoflow_power  # noqa: F401


@pytest.fixture(autouse=True)
def auto_enable_custom_integrations(enable_custom_integrations: None) -> None:
    """Let HA load our integration in every benchmark."""


@pytest.fixture(autouse=True)
async def enable_event_loop_debug() -> None:
    """Override the harness's fixture: Home Assistant runs its loop without asyncio debug.

    Debug mode records a stack trace for every scheduled callback and timer,
    which would inflate every figure measured here.
    """
    asyncio.get_running_loop().set_debug(False)
