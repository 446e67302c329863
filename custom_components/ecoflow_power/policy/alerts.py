"""Repairs the engine raises about its own ability to protect: blind, unprotected, cut-off."""

from __future__ import annotations

from .context import EngineContext
from .effects import (
    REPAIR_POLICY_BLIND,
    REPAIR_POLICY_UNPROTECTED,
    REPAIR_STATION_CUTOFF,
    Effect,
    RepairChange,
)
from .failsafe import FailSafe


def check_alerts(ctx: EngineContext, failsafe: FailSafe, now: float, effects: list[Effect]) -> None:
    obs = ctx.obs
    blind = failsafe.blind(now)
    if blind != obs.blind_shown:
        obs.blind_shown = blind
        fires = [t for rt in ctx.acting().values() if (t := failsafe.projected(rt)) is not None]
        fires_at = f"{min(fires):.0f}" if blind and fires else ""
        effects.append(RepairChange(REPAIR_POLICY_BLIND, blind, {"fires_at": fires_at}))
    unprotected = failsafe.unprotected(now)
    if unprotected != obs.unprotected:
        obs.unprotected = unprotected
        effects.append(RepairChange(REPAIR_POLICY_UNPROTECTED, unprotected))
    cutoff = obs.cutoff_pct
    raised = [
        (binding.threshold(ctx.settings), ctx.threshold(agent_id))
        for agent_id, binding in ctx.bindings.items()
        if not binding.observe_only
        and cutoff is not None
        and binding.threshold(ctx.settings) <= cutoff
    ]
    if bool(raised) != obs.cutoff_shown:
        obs.cutoff_shown = bool(raised)
        placeholders = {}
        if raised and cutoff is not None:
            threshold, effective = min(raised)
            placeholders = {
                "cutoff": f"{cutoff:g}",
                "threshold": f"{threshold:g}",
                "effective": f"{effective:g}",
            }
        effects.append(RepairChange(REPAIR_STATION_CUTOFF, bool(raised), placeholders))
