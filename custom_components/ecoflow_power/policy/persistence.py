"""The engine's stored state: a JSON-serialisable snapshot and its strict reader."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Final

from .audit import AuditTrail
from .context import EngineContext
from .observations import Observations
from .tracking import AgentRuntime

STATE_VERSION: Final = 1


class PolicyStateError(ValueError):
    """A stored engine state that cannot be read (any shape, type or version problem)."""


def dump(ctx: EngineContext) -> dict[str, Any]:
    return {
        "version": STATE_VERSION,
        "device_id": ctx.device_id,
        "armed": ctx.armed,
        **ctx.obs.to_dict(),
        "agents": {agent_id: rt.to_dict() for agent_id, rt in ctx.runtime.items()},
        "audit": ctx.audit.to_list(),
    }


def load_into(ctx: EngineContext, data: Mapping[str, Any]) -> None:
    """Fill a fresh context from `data`; raises PolicyStateError, leaving ctx untouched."""
    try:
        obs = Observations.from_dict(data)
        agents = data.get("agents", {})
        if not isinstance(agents, Mapping):
            raise TypeError("agents must be a mapping")
        runtime = {
            agent_id: AgentRuntime.from_dict(agent_id, raw)
            for agent_id, raw in agents.items()
            if agent_id in ctx.runtime
        }
        audit = AuditTrail.from_list(data.get("audit", []))
        armed = data.get("armed", True)
        if not isinstance(armed, bool):
            raise TypeError("armed must be a bool")
    except (KeyError, TypeError, ValueError, AttributeError) as err:
        raise PolicyStateError(f"unreadable policy state: {err}") from err
    ctx.obs = obs
    ctx.runtime.update(runtime)
    ctx.audit = audit
    ctx.armed = armed


def check_header(data: Any) -> str:
    """The stored device id, after checking the shape and version."""
    if not isinstance(data, Mapping):
        raise PolicyStateError("policy state is not a mapping")
    if data.get("version") != STATE_VERSION:
        raise PolicyStateError(f"unsupported policy state version {data.get('version')!r}")
    device_id = data.get("device_id")
    if not isinstance(device_id, str) or not device_id:
        raise PolicyStateError("policy state has no device_id")
    return device_id
