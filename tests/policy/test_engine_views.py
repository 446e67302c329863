"""What the engine shows while a shutdown is under way (sensors read these)."""

from __future__ import annotations

from collections.abc import Callable

from tests.policy.conftest import Harness, shutdowns


def test_next_commit_point_replaces_the_fire_time_once_a_shutdown_is_out(
    make: Callable[..., Harness],
) -> None:
    h = make(debounce_sec=60, delay_sec=30, cooldown_sec=180)
    h.connected(soc=50)
    h.lost(soc=15)
    status = h.engine.status()
    assert status.pending_fire_at == h.clock.now + 60
    assert status.next_commit_at is None

    sent = shutdowns(h.at(60))
    assert len(sent) == 1
    status = h.engine.status()
    # The countdown a user watches is now the host's commit point, not the
    # engine's next re-fire after the cooldown.
    assert status.next_commit_at == sent[0].payload["issued_at"] + 30
    assert status.agents["nas"].commit_at == status.next_commit_at

    h.at(31)
    assert h.engine.status().next_commit_at is None


def test_a_refire_after_the_cooldown_describes_the_current_battery(
    make: Callable[..., Harness],
) -> None:
    h = make(debounce_sec=0, delay_sec=10, cooldown_sec=100)
    h.connected(soc=50)
    first = shutdowns(h.lost(soc=19) + h.at(0))
    assert "soc_min 19 <= 20" in first[0].payload["reason"]
    h.lost(soc=12)
    again = shutdowns(h.at(101) + h.lost(soc=12))
    assert len(again) == 1
    assert "soc_min 12 <= 20" in again[0].payload["reason"]


def test_a_duplicate_ack_does_not_hide_that_the_host_is_executing(
    make: Callable[..., Harness],
) -> None:
    from custom_components.ecoflow_power.policy.protocol import AckStatus

    h = make(debounce_sec=0, delay_sec=5)
    h.connected(soc=50)
    sent = shutdowns(h.lost(soc=10) + h.at(0))
    command_id = sent[0].payload["id"]
    h.ack("nas", command_id, AckStatus.RECEIVED)
    h.ack("nas", command_id, AckStatus.EXECUTING)
    # Queued resends delivered after a broker restart come back as duplicates.
    h.ack("nas", command_id, AckStatus.DUPLICATE, detail="duplicate")
    view = h.engine.status().agents["nas"]
    assert view.last_ack_status is AckStatus.EXECUTING
    assert view.committed


def test_a_first_ack_of_duplicate_is_still_shown(make: Callable[..., Harness]) -> None:
    from custom_components.ecoflow_power.policy.protocol import AckStatus

    h = make(debounce_sec=0)
    h.connected(soc=50)
    sent = shutdowns(h.lost(soc=10) + h.at(0))
    h.ack("nas", sent[0].payload["id"], AckStatus.DUPLICATE, detail="duplicate")
    assert h.engine.status().agents["nas"].last_ack_status is AckStatus.DUPLICATE
