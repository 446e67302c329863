"""What services and entities ask of the policy: shutdown, abort, ping, arm.

A mixin of PolicyCoordinator. Service calls await their publishes, so a
command the broker never got is reported as failed, not as sent.
"""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from homeassistant.core import HomeAssistant, callback
from homeassistant.exceptions import HomeAssistantError, ServiceValidationError

from .agents import AgentConfig
from .clock import now_ts
from .const import DOMAIN
from .policy.effects import Effect, PublishCommand
from .policy.engine import PolicyEngine


class PolicyActions:
    """Manual commands of the policy coordinator."""

    hass: HomeAssistant
    engines: dict[str, PolicyEngine]
    agents: dict[str, AgentConfig]
    _pong_waiters: dict[str, asyncio.Future[float]]

    if TYPE_CHECKING:

        @property
        def mqtt_available(self) -> bool: ...

        def _run_effects_and_reschedule(
            self, effects: list[Effect], sn: str | None = None
        ) -> None: ...

        async def _async_publish(self, effect: PublishCommand) -> None: ...

        def _run_effect(self, effect: Effect, sn: str | None) -> None: ...

        def _finish(self, acted: bool) -> None: ...

    async def _async_run_service_effects(self, effects: list[Effect], sn: str) -> list[str]:
        """Run a service's effects, awaiting its publishes; raise if one could not go out."""
        # In order, as automatic effects run; only the broker publishes are
        # awaited (a local agent's command is answered by its router).
        router = getattr(self, "local_router", None)
        sent: list[str] = []
        publishes: list[PublishCommand] = []
        for effect in effects:
            if not isinstance(effect, PublishCommand):
                self._run_effect(effect, sn)
            elif router is not None and router(sn, effect):
                sent.append(effect.agent_id)
            else:
                publishes.append(effect)
        self._finish(bool(effects))
        failed: dict[str, str] = {}
        for effect in publishes:
            try:
                await self._async_publish(effect)
            except HomeAssistantError as err:
                failed[effect.agent_id] = str(err)
            else:
                sent.append(effect.agent_id)
        if failed:
            raise HomeAssistantError(
                translation_domain=DOMAIN,
                translation_key="publish_failed",
                translation_placeholders={
                    "agents": ", ".join(failed),
                    "error": next(iter(failed.values())),
                },
            )
        return sent

    def require_mqtt(self) -> None:
        if not self.mqtt_available:
            raise ServiceValidationError(translation_domain=DOMAIN, translation_key="mqtt_missing")

    @callback
    def set_armed(self, sn: str, armed: bool) -> None:
        engine = self.engines[sn]
        self._run_effects_and_reschedule(engine.set_armed(armed) or [], sn)

    async def async_manual_shutdown(
        self, agent_ids: list[str], *, delay_sec: int | None, reason: str, dry_run: bool
    ) -> list[str]:
        """Send shutdowns and wait until they reached the broker (or raise)."""
        sent: list[str] = []
        for sn, ids in self._group_by_station(agent_ids).items():
            effects = self.engines[sn].manual_shutdown(
                ids, delay_sec=delay_sec, reason=reason, dry_run=dry_run
            )
            sent += await self._async_run_service_effects(effects, sn)
        return sent

    async def async_manual_abort(self, agent_ids: list[str]) -> list[str]:
        """Send aborts and wait until they reached the broker (or raise)."""
        sent: list[str] = []
        for sn, ids in self._group_by_station(agent_ids).items():
            sent += await self._async_run_service_effects(self.engines[sn].manual_abort(ids), sn)
        return sent

    async def async_ping(self, agent_ids: list[str], wait_sec: float) -> dict[str, Any]:
        """Ping agents and wait for their pongs; report who answered and how fast."""
        started = now_ts()
        waiters: dict[str, asyncio.Future[float]] = {}
        command_ids: list[str] = []
        for sn, ids in self._group_by_station(agent_ids).items():
            effects = self.engines[sn].ping(ids)
            for effect in effects:
                if isinstance(effect, PublishCommand):
                    future: asyncio.Future[float] = self.hass.loop.create_future()
                    command_ids.append(effect.payload["id"])
                    self._pong_waiters[effect.payload["id"]] = future
                    waiters[effect.agent_id] = future
            self._run_effects_and_reschedule(effects, sn)
        try:
            if waiters:
                await asyncio.wait(list(waiters.values()), timeout=wait_sec)
        finally:
            for command_id in command_ids:
                self._pong_waiters.pop(command_id, None)
        result: dict[str, Any] = {}
        for agent_id in agent_ids:
            answer = waiters.get(agent_id)
            answered = answer is not None and answer.done() and not answer.cancelled()
            result[agent_id] = {
                "answered": answered,
                "latency_ms": round((answer.result() - started) * 1000)
                if answer is not None and answered
                else None,
            }
        return result

    def _group_by_station(self, agent_ids: list[str]) -> dict[str, list[str]]:
        grouped: dict[str, list[str]] = {}
        for agent_id in agent_ids:
            agent = self.agents.get(agent_id)
            if agent is None or agent.device not in self.engines:
                raise ServiceValidationError(
                    translation_domain=DOMAIN,
                    translation_key="unknown_agent",
                    translation_placeholders={"agent": agent_id},
                )
            grouped.setdefault(agent.device, []).append(agent_id)
        return grouped

    def agents_of_station(self, sn: str) -> list[str]:
        return [agent.agent_id for agent in self.agents.values() if agent.device == sn]
