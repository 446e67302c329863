"""Reconnect delays: grow, stay capped, spread out, and start small again after a success."""

from __future__ import annotations

from itertools import cycle

from custom_components.ecoflow_power.ecoflow.backoff import Backoff


def test_delays_double_until_the_cap_then_stay_there() -> None:
    backoff = Backoff(initial=0.5, maximum=6, factor=2, jitter=0)
    assert [backoff.next_delay() for _ in range(7)] == [0.5, 1, 2, 4, 6, 6, 6]
    assert backoff.attempts == 7


def test_a_success_makes_the_next_outage_start_small_again() -> None:
    backoff = Backoff(initial=1, maximum=300, jitter=0)
    for _ in range(10):
        backoff.next_delay()
    backoff.reset()
    assert backoff.attempts == 0
    assert backoff.next_delay() == 1


def test_jitter_spreads_clients_within_its_fraction_and_never_past_the_cap() -> None:
    draws = cycle([0.0, 0.25, 0.5, 0.75, 1.0])
    backoff = Backoff(initial=10, maximum=40, factor=2, jitter=0.2, rand=lambda: next(draws))
    delays = [backoff.next_delay() for _ in range(5)]
    bases = [10, 20, 40, 40, 40]
    for delay, base in zip(delays, bases, strict=True):
        assert base * 0.8 <= delay <= min(base * 1.2, 40)
    # Draws below and above the middle give delays below and above the base.
    assert delays[0] == 8.0
    assert delays[2] == 40.0  # 40 with no spread (draw 0.5)
    assert delays[4] == 40.0  # 48 clamped to the cap
    assert len(set(delays)) > 1


def test_a_jitter_wider_than_the_delay_never_gives_a_negative_wait() -> None:
    backoff = Backoff(initial=1, maximum=10, jitter=1.5, rand=lambda: 0.0)
    assert backoff.next_delay() == 0.0


def test_the_default_jitter_is_random_but_bounded() -> None:
    backoff = Backoff(initial=2, maximum=2)
    delays = {backoff.next_delay() for _ in range(50)}
    assert all(1.6 <= delay <= 2 for delay in delays)
    assert len(delays) > 1
