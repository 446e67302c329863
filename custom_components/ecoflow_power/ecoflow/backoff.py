"""Capped exponential backoff with jitter for reconnect loops."""

from __future__ import annotations

from collections.abc import Callable
import random


class Backoff:
    """Delays of initial * factor**n, capped, each spread by +-jitter.

    Jitter keeps many clients that lost the same broker from coming back in
    lock-step. ``reset()`` after a success so the next outage starts small.
    """

    def __init__(
        self,
        *,
        initial: float = 1.0,
        maximum: float = 300.0,
        factor: float = 2.0,
        jitter: float = 0.2,
        rand: Callable[[], float] = random.random,
    ) -> None:
        self.initial = initial
        self.maximum = maximum
        self.factor = factor
        self.jitter = jitter
        self._rand = rand
        self.attempts = 0

    def next_delay(self) -> float:
        base = min(self.maximum, self.initial * self.factor**self.attempts)
        self.attempts += 1
        spread = base * self.jitter * (2 * self._rand() - 1)
        return max(0.0, min(self.maximum, base + spread))

    def reset(self) -> None:
        self.attempts = 0
