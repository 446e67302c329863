"""docs/dashboard.md: its Lovelace example parses and names entities that exist."""

from __future__ import annotations

from pathlib import Path
import re
from typing import Any

import yaml

DOC = Path(__file__).resolve().parent.parent / "docs" / "dashboard.md"
STATION_SUFFIXES = {
    "sensor": {
        "battery",
        "battery_weakest_pack",
        "remaining_discharge_time",
        "output_power",
        "input_power",
        "charge_state",
        "shutdown_policy",
        "shutdown_fires_at",
    },
    "binary_sensor": {"grid_power", "cloud_connection"},
    "switch": {"shutdown_policy_armed"},
}
AGENT_SUFFIXES = {
    "binary_sensor": {"online"},
    "sensor": {"last_acknowledgement", "last_acknowledgement_time", "last_command"},
}


def example() -> dict[str, Any]:
    blocks = re.findall(r"```yaml\n(.*?)```", DOC.read_text(), flags=re.DOTALL)
    assert len(blocks) == 1
    view = yaml.safe_load(blocks[0])
    assert isinstance(view, dict)
    return view


def entity_ids(node: Any) -> set[str]:
    found: set[str] = set()
    if isinstance(node, dict):
        if isinstance(node.get("entity"), str):
            found.add(node["entity"])
        for value in node.values():
            found |= entity_ids(value)
    elif isinstance(node, list):
        for value in node:
            found |= entity_ids(value)
    return found


def test_example_is_a_view_with_the_promised_cards() -> None:
    view = example()
    kinds = [card["type"] for card in view["cards"]]
    assert kinds == ["horizontal-stack", "entities", "entities", "history-graph"]
    assert [c["type"] for c in view["cards"][0]["cards"]] == ["gauge", "gauge"]


def test_example_entity_ids_follow_the_integration_naming() -> None:
    for entity_id in entity_ids(example()):
        domain, _, object_id = entity_id.partition(".")
        if object_id.startswith("agent_nas_"):
            assert object_id.removeprefix("agent_nas_") in AGENT_SUFFIXES[domain], entity_id
        else:
            assert object_id.startswith("rack_"), entity_id
            assert object_id.removeprefix("rack_") in STATION_SUFFIXES[domain], entity_id
