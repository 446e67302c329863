"""When each agent's automatic shutdown goes out: the condition, combined.

Joins the decision (this station's condition), the feeding stations of hosts
fed by several (supply.py), the infrastructure order, and the hold-back of an
earlier shutdown (holdback.py); and aborts what the grid's return, here or on
a feeding station, makes pointless.
"""

from __future__ import annotations

import math

from .commands import Commands
from .context import EngineContext
from .decision import Decision
from .effects import Effect
from .supply import SupplyBoard, combined_due, powered_again
from .tracking import AgentRuntime


class Schedule:
    def __init__(self, ctx: EngineContext, decision: Decision, commands: Commands) -> None:
        self._ctx = ctx
        self._decision = decision
        self._commands = commands
        self.board: SupplyBoard | None = None

    def due(self, rt: AgentRuntime, now: float) -> float | None:
        """The agent's condition, combined over feeding stations and infrastructure order."""
        ctx = self._ctx
        binding = ctx.bindings[rt.agent_id]
        due = combined_due(binding, self._decision.due_at(rt, now), self.board, now)
        if binding.infrastructure:
            return due
        # Infrastructure agents (HA, the broker) go last: when one is due, every
        # other agent of the station is due too.
        for other in ctx.acting().values():
            if ctx.bindings[other.agent_id].infrastructure:
                infra = combined_due(
                    ctx.bindings[other.agent_id],
                    self._decision.due_at(other, now),
                    self.board,
                    now,
                )
                if infra is not None:
                    due = infra if due is None else min(due, infra)
        return due

    def fire_at(self, rt: AgentRuntime, now: float) -> float | None:
        """When this agent's next automatic shutdown goes out.

        None if its condition does not hold, or if a shutdown already out holds
        a new one back until some event (see Commands.blocked_until).
        """
        if self._ctx.bindings[rt.agent_id].observe_only:
            return None
        due = self.due(rt, now)
        if due is None:
            return None
        blocked = self._commands.blocked_until(rt, now)
        if blocked is None:
            return due
        if blocked == math.inf:
            return None
        return max(due, blocked)

    def abort_where_powered(
        self,
        now: float,
        effects: list[Effect],
        own_present: bool,
        where: str = "",
        *,
        peers_only: bool = False,
    ) -> None:
        """The grid is back (here, or on a feeding station): abort what that makes pointless.

        `peers_only`: only hosts fed by several stations, whose power may come
        back through another station's grid (checked on every evaluation).
        """
        ctx = self._ctx
        for agent_id, rt in ctx.acting().items():
            binding = ctx.bindings[agent_id]
            if peers_only:
                if not binding.feeds or not powered_again(binding, self.board, own_present):
                    continue
            elif not powered_again(binding, self.board, True):
                continue
            self._commands.abort_on_restore(rt, now, effects, where)
