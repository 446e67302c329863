"""Command tracking: issuing shutdowns, aborts and pings, resends, and acks.

The decision says when a shutdown is due; this module says whether one may go
out now (an earlier one still pending, the cooldown), builds and signs it,
re-sends it until acknowledged, and applies what the agent answers.
"""

from __future__ import annotations

from typing import Any

from .acks import apply_ack
from .audit import AuditKind, DecisionMode
from .context import EngineContext
from .effects import Effect, PolicyEvent, PublishCommand
from .holdback import agent_returned, blocked_until, release_after_restore
from .protocol import (
    Ack,
    CommandAction,
    build_command,
    sanitize_text,
    verify_message,
)
from .resend import resend_blocked, resend_deadlines, resend_due
from .tracking import AgentRuntime, SentCommand


class Commands:
    """Everything the engine sends, and what became of it."""

    def __init__(self, ctx: EngineContext) -> None:
        self._ctx = ctx

    # -- may a new automatic shutdown go out? (holdback.py) ------------------------

    def blocked_until(self, rt: AgentRuntime, now: float) -> float | None:
        return blocked_until(self._ctx, rt, now)

    def in_cooldown(self, rt: AgentRuntime, now: float) -> bool:
        until = blocked_until(self._ctx, rt, now)
        return until is not None and now < until

    def release_after_restore(self, now: float) -> None:
        release_after_restore(self._ctx, now)

    # -- the agent comes back ----------------------------------------------------------

    def agent_online(
        self, rt: AgentRuntime, since: float, now: float, effects: list[Effect]
    ) -> None:
        agent_returned(self._ctx, rt, since, now, effects)

    def abort_pending(self, now: float, reason: str, effects: list[Effect]) -> None:
        """Abort every shutdown still before its commit point (disarm)."""
        for rt in self._ctx.acting().values():
            s = rt.shutdown
            if s is None or not s.is_live() or s.released or s.grid_restored:
                continue
            if s.past_commit(now):
                self._ctx.audit_add(
                    effects,
                    now,
                    AuditKind.ABORT_TOO_LATE,
                    f"{reason} after commit point {s.commit_at}: cannot be stopped",
                    agent_id=rt.agent_id,
                    command_id=s.id,
                )
                continue
            self.send_abort(
                rt, s, now, f"{reason} before commit point {s.commit_at}", effects, manual=False
            )

    # -- issuing -------------------------------------------------------------------

    def issue(
        self,
        rt: AgentRuntime,
        action: CommandAction,
        now: float,
        *,
        delay_sec: int,
        ttl_sec: int,
        reason: str,
        mode: DecisionMode,
        manual: bool = False,
        ref: str | None = None,
    ) -> SentCommand:
        ctx = self._ctx
        issued_at = int(now)
        command_id = ctx.id_factory()
        payload = build_command(
            action=action,
            agent_secret=ctx.bindings[rt.agent_id].secret,
            device=ctx.device_id,
            reason=reason,
            delay_sec=delay_sec,
            ttl_sec=ttl_sec,
            issued_at=issued_at,
            command_id=command_id,
            ref=ref,
        )
        return SentCommand(
            id=command_id,
            action=action,
            payload=payload,
            issued_at=issued_at,
            delay_sec=delay_sec,
            ttl_sec=ttl_sec,
            sent_at=now,
            last_sent_at=now,
            mode=mode,
            manual=manual,
            ref=ref,
        )

    def send_shutdown(
        self,
        rt: AgentRuntime,
        now: float,
        *,
        reason: str,
        delay_sec: int,
        mode: DecisionMode,
        effects: list[Effect],
        manual: bool = False,
        audit_reason: str | None = None,
    ) -> SentCommand:
        ctx = self._ctx
        # A dry-run test while the policy is live must not replace (or free)
        # the real shutdown in the tracking: it is kept on the side.
        rehearsal = mode is not ctx.default_mode() and mode is not DecisionMode.LIVE
        if rt.shutdown is not None and not rehearsal:
            rt.shutdown.closed = True  # superseded: only the newest one is resent
        cmd = self.issue(
            rt,
            CommandAction.SHUTDOWN,
            now,
            delay_sec=delay_sec,
            ttl_sec=ctx.settings.ttl_sec,
            reason=reason,
            mode=mode,
            manual=manual,
        )
        if rehearsal:
            # A dry-run test must not hide the live shutdown from its abort.
            rt.rehearsal = cmd
        else:
            rt.shutdown = cmd
        rt.last_shutdown_at = now
        self._announce(
            rt,
            cmd,
            now,
            effects,
            audit=AuditKind.MANUAL_SHUTDOWN if manual else AuditKind.SHUTDOWN,
            audit_reason=audit_reason or reason,
            event=PolicyEvent.SHUTDOWN_SENT,
            delay_sec=delay_sec,
            execute_at=cmd.commit_at,
        )
        return cmd

    def send_abort(
        self,
        rt: AgentRuntime,
        target: SentCommand | None,
        now: float,
        reason: str,
        effects: list[Effect],
        *,
        manual: bool,
    ) -> None:
        ctx = self._ctx
        ttl = ctx.settings.ttl_sec
        if target is not None:
            # Expire with the commit point: an abort that arrives after it is
            # useless, and resends must never go out after it.
            ttl = max(1, min(ttl, target.commit_at - int(now)))
            mode = target.mode
        else:
            mode = ctx.default_mode()
        if rt.abort is not None:
            rt.abort.closed = True
        abort = self.issue(
            rt,
            CommandAction.ABORT,
            now,
            delay_sec=0,
            ttl_sec=ttl,
            reason=reason,
            mode=mode,
            manual=manual,
            ref=None if target is None else target.id,
        )
        rt.abort = abort
        if target is not None:
            target.abort_id = abort.id
            target.abort_manual = manual
            target.closed = True
        self._announce(
            rt,
            abort,
            now,
            effects,
            audit=AuditKind.MANUAL_ABORT if manual else AuditKind.ABORT,
            audit_reason=reason,
            event=PolicyEvent.SHUTDOWN_ABORTED,
            ref=abort.ref,
        )

    def _announce(
        self,
        rt: AgentRuntime,
        cmd: SentCommand,
        now: float,
        effects: list[Effect],
        *,
        audit: AuditKind,
        audit_reason: str,
        event: PolicyEvent,
        **details: Any,
    ) -> None:
        """A new shutdown or abort: published (unless held back), audited, an event."""
        ctx = self._ctx
        if cmd.published:
            effects.append(PublishCommand(rt.agent_id, cmd.action, cmd.payload))
        ctx.audit_add(
            effects,
            now,
            audit,
            audit_reason,
            agent_id=rt.agent_id,
            command_id=cmd.id,
            mode=cmd.mode,
        )
        effects.append(
            ctx.event(
                event,
                agent_id=rt.agent_id,
                command_id=cmd.id,
                reason=cmd.payload["reason"],
                mode=str(cmd.mode),
                published=cmd.published,
                manual=cmd.manual,
                **details,
            )
        )

    def send_ping(self, rt: AgentRuntime, now: float, effects: list[Effect]) -> None:
        ctx = self._ctx
        if rt.ping is not None:
            rt.ping.closed = True
        rt.ping = self.issue(
            rt,
            CommandAction.PING,
            now,
            delay_sec=0,
            ttl_sec=ctx.settings.ttl_sec,
            reason="ping",
            mode=DecisionMode.LIVE,
        )
        effects.append(PublishCommand(rt.agent_id, CommandAction.PING, rt.ping.payload))
        ctx.audit_add(
            effects, now, AuditKind.PING, "ping", agent_id=rt.agent_id, command_id=rt.ping.id
        )

    # -- manual commands and disarmed decisions ---------------------------------------

    def manual_shutdown(
        self,
        rt: AgentRuntime,
        now: float,
        *,
        delay_sec: int | None,
        reason: str,
        mode: DecisionMode,
        effects: list[Effect],
    ) -> None:
        ctx = self._ctx
        notes = []
        if self.in_cooldown(rt, now):
            notes.append("cooldown bypassed")
        if not ctx.armed:
            notes.append("armed switch bypassed")
        text = sanitize_text(reason) or "manual shutdown"
        audit_reason = f"{text} ({', '.join(notes)})" if notes else text
        binding = ctx.bindings[rt.agent_id]
        delay = binding.delay(ctx.settings) if delay_sec is None else delay_sec
        self.send_shutdown(
            rt,
            now,
            reason=text,
            delay_sec=delay,
            mode=mode,
            effects=effects,
            manual=True,
            audit_reason=audit_reason,
        )

    def manual_abort(self, rt: AgentRuntime, now: float, effects: list[Effect]) -> None:
        target = rt.shutdown if rt.shutdown is not None and rt.shutdown.is_live() else None
        if target is not None and target.past_commit(now):
            self._ctx.audit_add(
                effects,
                now,
                AuditKind.ABORT_TOO_LATE,
                f"manual abort refused: commit point {target.commit_at} passed",
                agent_id=rt.agent_id,
                command_id=target.id,
            )
            return
        self.send_abort(rt, target, now, "manual abort", effects, manual=True)

    def record_suppressed(
        self, rt: AgentRuntime, reason: str, now: float, effects: list[Effect]
    ) -> None:
        """Disarmed: the decision is recorded once per episode, nothing is sent."""
        ctx = self._ctx
        ctx.audit_add(
            effects,
            now,
            AuditKind.SHUTDOWN,
            f"{reason} (disarmed: not sent)",
            agent_id=rt.agent_id,
            mode=DecisionMode.DISARMED,
        )
        effects.append(
            ctx.event(
                PolicyEvent.SHUTDOWN_SENT,
                agent_id=rt.agent_id,
                command_id=None,
                reason=reason,
                mode=str(DecisionMode.DISARMED),
                published=False,
                manual=False,
            )
        )

    # -- grid back -------------------------------------------------------------------

    def abort_on_restore(
        self, rt: AgentRuntime, now: float, effects: list[Effect], where: str = ""
    ) -> None:
        """Grid present: abort the agent's automatic shutdown if still before its commit point."""
        ctx = self._ctx
        shutdown = rt.shutdown
        # Manual shutdowns are the user's explicit wish: only manual_abort
        # cancels them. Automatic ones are handled once per restoration.
        if shutdown is None or shutdown.manual or shutdown.grid_restored:
            return
        shutdown.grid_restored = True
        if not shutdown.is_live():
            return
        if shutdown.past_commit(now):
            shutdown.closed = True  # a late copy would shut a powered host down
            ctx.audit_add(
                effects,
                now,
                AuditKind.ABORT_TOO_LATE,
                f"grid restored{where} after commit point {shutdown.commit_at}: no abort",
                agent_id=rt.agent_id,
                command_id=shutdown.id,
            )
            return
        self.send_abort(
            rt,
            shutdown,
            now,
            f"grid restored{where} before commit point {shutdown.commit_at}",
            effects,
            manual=False,
        )

    # -- resends (resend.py) --------------------------------------------------------------

    def resend_blocked(self, cmd: SentCommand) -> bool:
        return resend_blocked(self._ctx, cmd)

    def resend_due(self, now: float, effects: list[Effect]) -> None:
        resend_due(self._ctx, now, effects)

    def deadlines(self, now: float) -> list[float]:
        return resend_deadlines(self._ctx, now)

    # -- acks (acks.py) ------------------------------------------------------------------

    def handle_ack(self, agent_id: str, ack: Ack, now: float, effects: list[Effect]) -> None:
        apply_ack(self._ctx, agent_id, ack, now, effects)

    def close_unverifiable(self) -> None:
        """Stop resending commands signed with a secret the agent no longer holds.

        After a secret rotation the stored payload would only earn a
        `bad_signature`; the policy issues a fresh command when one is due.
        """
        ctx = self._ctx
        for agent_id, rt in ctx.runtime.items():
            secret = ctx.bindings[agent_id].secret
            for cmd in rt.tracked():
                if cmd.awaiting_ack() and not verify_message(cmd.payload, secret):
                    cmd.closed = True
            s = rt.shutdown
            if s is not None and s.published and not verify_message(s.payload, secret):
                s.released = True  # the agent would refuse it: a fresh one goes out if due
