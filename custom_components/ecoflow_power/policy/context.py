"""The state every part of the engine shares, and the two ways it reports (audit, events)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any, Final

from .audit import DEFAULT_AUDIT_SIZE, AuditKind, AuditRecord, AuditTrail, DecisionMode
from .effects import Effect, EmitEvent, PolicyEvent
from .observations import Observations
from .settings import AgentBinding, PolicySettings
from .tracking import AgentRuntime

# A backward step smaller than this is jitter, not a clock change.
CLOCK_STEP_TOLERANCE_SEC: Final = 2.0

# How far above the station's own cut-off an effective threshold is raised.
CUTOFF_MARGIN_PCT: Final = 5.0


def effective_threshold(threshold: float, cutoff_pct: float | None) -> float:
    if cutoff_pct is None or cutoff_pct < threshold:
        return threshold
    return min(100.0, cutoff_pct + CUTOFF_MARGIN_PCT)


@dataclass(slots=True)
class EngineContext:
    device_id: str
    settings: PolicySettings
    clock: Callable[[], float]
    id_factory: Callable[[], str]
    armed: bool = True
    bindings: dict[str, AgentBinding] = field(default_factory=dict)
    runtime: dict[str, AgentRuntime] = field(default_factory=dict)
    obs: Observations = field(default_factory=Observations)
    audit: AuditTrail = field(default_factory=lambda: AuditTrail(DEFAULT_AUDIT_SIZE))
    last_now: float | None = None  # newest clock value seen (to notice a backward step)

    def acting(self) -> dict[str, AgentRuntime]:
        """Agents this engine sends commands to (observe-only bindings left out)."""
        return {
            agent_id: rt
            for agent_id, rt in self.runtime.items()
            if not self.bindings[agent_id].observe_only
        }

    def threshold(self, agent_id: str) -> float:
        """The agent's effective threshold: above the station's own cut-off.

        A station that cuts its AC output at its discharge limit or backup
        reserve would switch the host off before a threshold at or below it.
        """
        return effective_threshold(
            self.bindings[agent_id].threshold(self.settings), self.obs.cutoff_pct
        )

    def now(self, effects: list[Effect]) -> float:
        """The clock, after absorbing a backward step of it.

        Readings are taken in the order they arrive. When Home Assistant's
        clock steps back, every stored time moves back with it, so timers keep
        what they had left and newer readings are not mistaken for old ones.
        The time between the last input and the step is lost.
        """
        now = self.clock()
        last = self.last_now
        if last is not None and now < last - CLOCK_STEP_TOLERANCE_SEC:
            shift = last - now
            self.obs.rebase(shift)
            for rt in self.runtime.values():
                rt.rebase(shift)
            self.audit_add(effects, now, AuditKind.CLOCK_STEP, f"clock stepped back {shift:.0f} s")
            self.last_now = now
        else:
            self.last_now = now if last is None else max(now, last)
        return now

    def default_mode(self) -> DecisionMode:
        return DecisionMode.DRY_RUN if self.settings.dry_run else DecisionMode.LIVE

    def event(self, event_type: PolicyEvent, **data: Any) -> EmitEvent:
        return EmitEvent(event_type, {"device_id": self.device_id, **data})

    def audit_add(
        self,
        effects: list[Effect],
        now: float,
        kind: AuditKind,
        reason: str,
        *,
        agent_id: str | None = None,
        command_id: str | None = None,
        mode: DecisionMode | None = None,
    ) -> None:
        binding = self.bindings.get(agent_id) if agent_id is not None else None
        obs = self.obs
        record = AuditRecord(
            at=now,
            device_id=self.device_id,
            kind=kind,
            reason=reason,
            agent_id=agent_id,
            grid=None if obs.grid is None else str(obs.grid),
            soc_min=obs.soc_min,
            threshold=None if binding is None else self.threshold(binding.agent_id),
            remaining_min=obs.remaining,
            command_id=command_id,
            mode=mode,
        )
        self.audit.append(record)
        effects.append(record)
