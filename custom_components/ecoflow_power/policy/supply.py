"""Hosts fed by several stations (redundant power supplies, NUT's MINSUPPLIES).

An agent belongs to one station's engine, its *owner*, which alone sends its
commands. Every other station that feeds the host has the same agent as an
observe-only binding (`AgentBinding(observe_only=True)`): that engine runs the
agent's condition on its own telemetry and never sends anything. A
`SupplyBoard` shared by the engines lets the owner read those conditions:

- `feed_rule="all"` (default, redundant supplies): the shutdown is due when the
  condition is due on every feeding station; the grid back on any of them
  aborts it (before the commit point), since the host has power again.
- `feed_rule="any"`: due as soon as it is due on one station; aborted when the
  grid is back on all of them.

A feeding station without an engine on the board counts as critical (it cannot
keep the host up as far as we know): the rule then never delays a shutdown.
The glue ticks the owner after an input to a feeding station
(`SupplyBoard.dependents`), so a peer's change acts at once.
"""

from __future__ import annotations

from collections.abc import Mapping
from enum import StrEnum
from typing import Protocol

from .settings import AgentBinding


class SuppliedEngine(Protocol):
    """What the board needs of an engine (PolicyEngine), without importing it."""

    @property
    def device_id(self) -> str: ...

    @property
    def grid_present(self) -> bool: ...

    @property
    def agents(self) -> Mapping[str, AgentBinding]: ...

    def attach_board(self, board: SupplyBoard | None) -> None: ...

    def condition_due_at(self, agent_id: str, now: float | None = None) -> float | None: ...


class FeedRule(StrEnum):
    ALL = "all"  # shut down when every feeding station is critical
    ANY = "any"  # shut down when one of them is


class SupplyBoard:
    """The engines of one Home Assistant entry, by station, for multi-fed agents."""

    def __init__(self) -> None:
        self._engines: dict[str, SuppliedEngine] = {}

    def attach(self, engine: SuppliedEngine) -> None:
        self._engines[engine.device_id] = engine
        engine.attach_board(self)

    def known(self, station: str) -> bool:
        return station in self._engines

    def condition_due_at(self, station: str, agent_id: str, now: float) -> float | None:
        engine = self._engines[station]
        return engine.condition_due_at(agent_id, now)

    def grid_present(self, station: str) -> bool:
        return station in self._engines and self._engines[station].grid_present

    def dependents(self, station: str) -> list[str]:
        """Owner stations whose decisions read `station`: tick them after its inputs."""
        return [
            device_id
            for device_id, engine in self._engines.items()
            if device_id != station
            and any(station in binding.feeds for binding in engine.agents.values())
        ]


def combined_due(
    binding: AgentBinding, own: float | None, board: SupplyBoard | None, now: float
) -> float | None:
    """The owner's due time for a multi-fed agent, from every feeding station's."""
    if not binding.feeds or board is None:
        return own
    dues = [own]
    for station in binding.feeds:
        # A station not on the board cannot be shown to keep the host up.
        known = board.known(station)
        dues.append(board.condition_due_at(station, binding.agent_id, now) if known else own)
    if binding.feed_rule == FeedRule.ANY:
        seen = [d for d in dues if d is not None]
        return min(seen) if seen else None
    if any(d is None for d in dues):
        return None
    return max(d for d in dues if d is not None)


def powered_again(binding: AgentBinding, board: SupplyBoard | None, own_present: bool) -> bool:
    """Does the grid's return (here or on a feeding station) give the host power again?"""
    if not binding.feeds or board is None:
        return own_present
    present = [board.grid_present(station) for station in binding.feeds]
    if binding.feed_rule == FeedRule.ALL:
        return own_present or any(present)
    return own_present and all(present)
