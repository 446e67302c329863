"""The demo's dashboard: docs/dashboard.md's view, renamed for the demo's station and agent."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from tests.test_dev_bootstrap import boot

DOC = (Path(__file__).resolve().parent.parent / "docs" / "dashboard.md").read_text()


def _demo_view() -> dict[str, Any]:
    return boot.dashboard_view(
        DOC,
        station_prefix="river_3_simulated",
        agent_entity_prefix="agent_demo_host",
        agent_id="demo-host",
    )


def _walk(node: Any) -> list[Any]:
    if isinstance(node, dict):
        return [node, *(item for value in node.values() for item in _walk(value))]
    if isinstance(node, list):
        return [node, *(item for value in node for item in _walk(value))]
    return [node]


def _entity_ids(view: dict[str, Any]) -> set[str]:
    return {
        node["entity"]
        for node in _walk(view)
        if isinstance(node, dict) and isinstance(node.get("entity"), str)
    }


def test_every_entity_of_the_view_belongs_to_the_demo_station_or_agent() -> None:
    ids = _entity_ids(_demo_view())
    assert ids
    for entity_id in ids:
        object_id = entity_id.split(".", 1)[1]
        assert object_id.startswith(("river_3_simulated_", "agent_demo_host_")), entity_id
    assert "sensor.river_3_simulated_battery_weakest_pack" in ids
    assert "binary_sensor.agent_demo_host_online" in ids
    # As many entities as the doc's example: nothing dropped by the renaming.
    assert len(ids) == len(_entity_ids(boot.dashboard_view(DOC, station_prefix="rack",
        agent_entity_prefix="agent_nas", agent_id="nas")))  # fmt: skip


def test_the_ping_button_and_labels_name_the_demo_agent() -> None:
    view = _demo_view()
    buttons = [n for n in _walk(view) if isinstance(n, dict) and n.get("type") == "button"]
    assert [b["tap_action"]["data"]["agents"] for b in buttons] == [["demo-host"]]
    texts = [n for n in _walk(view) if isinstance(n, str)]
    assert "Host agent demo-host" in texts
    assert not [t for t in texts if "nas" in t.split() or t == "nas" or "rack_" in t]


def test_the_view_keeps_the_doc_title_path_and_cards() -> None:
    view = _demo_view()
    assert (view["title"], view["path"]) == ("UPS", "ups")
    assert [card["type"] for card in view["cards"]] == [
        "horizontal-stack",
        "entities",
        "entities",
        "history-graph",
    ]


@pytest.mark.parametrize(
    ("entity_id", "suffix", "prefix"),
    [
        (
            "sensor.river_3_simulated_battery_weakest_pack",
            "battery_weakest_pack",
            "river_3_simulated",
        ),
        ("binary_sensor.agent_demo_host_online", "online", "agent_demo_host"),
        ("sensor.renamed_by_the_user", "battery_weakest_pack", None),
    ],
)
def test_entity_prefix_from_a_registry_entity_id(
    entity_id: str, suffix: str, prefix: str | None
) -> None:
    assert boot.entity_prefix(entity_id, suffix) == prefix


def test_a_doc_without_exactly_one_yaml_block_is_refused() -> None:
    with pytest.raises(boot.BootstrapError):
        boot.dashboard_view("no example here", station_prefix="x", agent_entity_prefix="y",
                            agent_id="z")  # fmt: skip


@pytest.mark.parametrize(
    ("hours", "title"), [(0.25, "Last 15 minutes"), (1, "Last hour"), (6, "Last 6 hours")]
)
def test_the_demo_graphs_span_minutes_and_the_doc_stays_as_written(
    hours: float, title: str
) -> None:
    view = _demo_view()
    demo = boot.with_history_hours(view, hours)
    graphs = [card for card in demo["cards"] if card["type"] == "history-graph"]
    assert [(g["hours_to_show"], g["title"]) for g in graphs] == [(hours, title)]
    assert next(c for c in view["cards"] if c["type"] == "history-graph")["hours_to_show"] == 24
    assert demo["cards"][:3] == view["cards"][:3]
