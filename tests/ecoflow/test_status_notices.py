"""The station's online notice (/open/{account}/{sn}/status) in every shape seen, and junk."""

from __future__ import annotations

from typing import Any

import pytest

from custom_components.ecoflow_power.ecoflow.json_decoder import decode_status


@pytest.mark.parametrize(
    ("notice", "online"),
    [
        ("online", True),
        (" OFFLINE ", False),
        ('"1"', True),
        ("0", False),
        ("true", True),
        ("false", False),
        (1, True),
        (0, False),
        (True, True),
        (False, False),
        ({"params": {"status": 1}}, True),
        ({"params": {"status": "offline"}}, False),
        ({"param": {"online": "1"}}, True),
        ({"data": {"online": 0}}, False),
        ({"status": True}, True),
        ({"online": "0"}, False),
    ],
)
def test_every_known_shape_gives_the_online_flag(notice: Any, online: bool) -> None:
    assert decode_status(notice) is online


@pytest.mark.parametrize(
    "notice",
    ["maybe", "", {"params": {"status": "sleeping"}}, {"params": {}}, {"other": 1}, None, [1]],
)
def test_a_notice_that_says_neither_is_unknown_not_offline(notice: Any) -> None:
    # Unknown must stay unknown: an "offline" guessed from junk would look like an outage.
    assert decode_status(notice) is None
