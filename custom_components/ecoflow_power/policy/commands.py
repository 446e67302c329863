"""Command tracking: issuing shutdowns, aborts and pings, resends, and acks.

The decision says when a shutdown is due; this module says whether one may go
out now (an earlier one still pending, the cooldown), builds and signs it,
re-sends it until acknowledged, and applies what the agent answers.
"""

from __future__ import annotations

import math

from .audit import AuditKind, DecisionMode
from .context import EngineContext
from .effects import Effect, PolicyEvent, PublishCommand
from .protocol import Ack, AckStatus, CommandAction, build_command, verify_message
from .tracking import TERMINAL_STATUSES, AgentRuntime, SentCommand


class Commands:
    """Everything the engine sends, and what became of it."""

    def __init__(self, ctx: EngineContext) -> None:
        self._ctx = ctx

    # -- may a new automatic shutdown go out? ------------------------------------

    def blocked_until(self, rt: AgentRuntime, now: float) -> float | None:
        """Earliest time a new automatic shutdown may go out (None: not blocked).

        `math.inf`: held back until an event releases the previous shutdown
        (the agent comes back online, the grid stays back, new secret).

        Only a shutdown of the current mode that is still the agent's business
        holds a new one back: one the engine aborted (grid back, disarmed), a
        dry-run while live, or a released one never does. While it is pending
        on the agent (before its commit point) nothing new goes out; after
        that, within one outage, the cooldown spaces retries (0: no timed
        retries). A manual abort holds like a refusal: the user said no.
        """
        s = rt.shutdown
        if s is None or s.released or s.mode is not self._ctx.default_mode():
            return None
        if s.aborted and not s.abort_manual:
            return None  # grid back or disarmed: never a reason to wait
        cooldown = self._ctx.settings.cooldown_sec
        if cooldown > 0:
            return max(float(s.commit_at), s.sent_at + cooldown)
        if s.outcome is None and not s.past_commit(now):
            return float(s.commit_at)
        return math.inf

    def in_cooldown(self, rt: AgentRuntime, now: float) -> bool:
        until = self.blocked_until(rt, now)
        return until is not None and now < until

    def pending(self, rt: AgentRuntime, now: float) -> SentCommand | None:
        """The agent's live shutdown still before its commit point (abortable), if any."""
        s = rt.shutdown
        if s is None or not s.is_live() or s.past_commit(now):
            return None
        return s

    def release_after_restore(self) -> None:
        """The grid stayed back: the outage is over, a new one gets its own shutdown.

        Shutdowns still before their commit point (a manual one) keep holding.
        """
        now = self._ctx.clock()
        for rt in self._ctx.runtime.values():
            s = rt.shutdown
            if s is not None and (s.outcome is not None or s.past_commit(now)):
                s.released = True

    def agent_online(
        self, rt: AgentRuntime, since: float, now: float, effects: list[Effect]
    ) -> None:
        """The agent (re)connected at `since`: a shutdown it never confirmed is re-issued.

        Before the command expires the very same payload goes out again (the
        agent dedups by id); after it, or once the agent came back after the
        commit point (the host was restarted), the shutdown no longer holds a
        new one back, and the decision sends a fresh one if still due.
        """
        s = rt.shutdown
        if s is None or s.released or not s.published:
            return
        if since > s.commit_at or (s.outcome is not None and not s.aborted):
            s.released = True
            self._ctx.audit_add(
                effects,
                now,
                AuditKind.AGENT_ONLINE,
                "agent back after its shutdown: a new one goes out if still due",
                agent_id=rt.agent_id,
                command_id=s.id,
            )
            return
        if s.acknowledged or not s.is_live() or s.grid_restored:
            return
        if now < s.expires_at and not self.resend_blocked(s):
            s.last_sent_at = now
            s.closed = False
            effects.append(PublishCommand(rt.agent_id, s.action, s.payload, resend=True))
            self._ctx.audit_add(
                effects,
                now,
                AuditKind.RESEND,
                "agent online without acknowledging the shutdown: re-sent",
                agent_id=rt.agent_id,
                command_id=s.id,
            )
        elif now >= s.expires_at:
            s.released = True
            self._ctx.audit_add(
                effects,
                now,
                AuditKind.AGENT_ONLINE,
                "agent online, shutdown never acknowledged and expired: re-issued if due",
                agent_id=rt.agent_id,
                command_id=s.id,
            )

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
        if cmd.published:
            effects.append(PublishCommand(rt.agent_id, CommandAction.SHUTDOWN, cmd.payload))
        kind = AuditKind.MANUAL_SHUTDOWN if manual else AuditKind.SHUTDOWN
        ctx.audit_add(
            effects,
            now,
            kind,
            audit_reason or reason,
            agent_id=rt.agent_id,
            command_id=cmd.id,
            mode=mode,
        )
        effects.append(
            ctx.event(
                PolicyEvent.SHUTDOWN_SENT,
                agent_id=rt.agent_id,
                command_id=cmd.id,
                reason=cmd.payload["reason"],
                delay_sec=delay_sec,
                execute_at=cmd.commit_at,
                mode=str(mode),
                published=cmd.published,
                manual=manual,
            )
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
        if abort.published:
            effects.append(PublishCommand(rt.agent_id, CommandAction.ABORT, abort.payload))
        kind = AuditKind.MANUAL_ABORT if manual else AuditKind.ABORT
        ctx.audit_add(
            effects, now, kind, reason, agent_id=rt.agent_id, command_id=abort.id, mode=mode
        )
        effects.append(
            ctx.event(
                PolicyEvent.SHUTDOWN_ABORTED,
                agent_id=rt.agent_id,
                command_id=abort.id,
                ref=abort.ref,
                reason=abort.payload["reason"],
                mode=str(mode),
                published=abort.published,
                manual=manual,
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

    # -- resends ---------------------------------------------------------------------

    def resend_blocked(self, cmd: SentCommand) -> bool:
        # Disarmed holds back automatic shutdowns, resends included; aborts
        # and pings are never held back (they cannot cause an action).
        return cmd.action is CommandAction.SHUTDOWN and not cmd.manual and not self._ctx.armed

    def resend_due(self, now: float, effects: list[Effect]) -> None:
        ctx = self._ctx
        interval = ctx.settings.resend_interval_sec
        for rt in ctx.runtime.values():
            for cmd in rt.tracked():
                if not cmd.awaiting_ack():
                    continue
                if cmd.action is CommandAction.ABORT and _abort_pointless(rt, cmd, now):
                    cmd.closed = True
                    continue
                if now >= cmd.expires_at:
                    cmd.closed = True
                    ctx.audit_add(
                        effects,
                        now,
                        AuditKind.UNACKNOWLEDGED,
                        f"{cmd.action} not acknowledged within ttl {cmd.ttl_sec} s",
                        agent_id=rt.agent_id,
                        command_id=cmd.id,
                    )
                    continue
                if self.resend_blocked(cmd) or now < cmd.last_sent_at + interval:
                    continue
                cmd.last_sent_at = now
                effects.append(PublishCommand(rt.agent_id, cmd.action, cmd.payload, resend=True))
                ctx.audit_add(
                    effects,
                    now,
                    AuditKind.RESEND,
                    f"{cmd.action} not acknowledged yet",
                    agent_id=rt.agent_id,
                    command_id=cmd.id,
                )

    def deadlines(self, now: float) -> list[float]:
        interval = self._ctx.settings.resend_interval_sec
        out: list[float] = []
        for rt in self._ctx.runtime.values():
            for cmd in rt.tracked():
                if cmd.awaiting_ack():
                    out.append(cmd.expires_at)
                    resend_at = cmd.next_resend_at(interval)
                    if resend_at is not None and not self.resend_blocked(cmd):
                        out.append(resend_at)
            shutdown = rt.shutdown
            if shutdown is not None and shutdown.is_live() and now < shutdown.commit_at:
                out.append(shutdown.commit_at)  # the state sensor changes there
        return out

    # -- acks --------------------------------------------------------------------------

    def handle_ack(self, agent_id: str, ack: Ack, now: float, effects: list[Effect]) -> None:
        ctx = self._ctx
        rt = ctx.runtime.get(agent_id)
        cmd = None if rt is None or ack.agent != agent_id else rt.find(ack.id)
        if rt is None or cmd is None:
            why = "unknown agent" if rt is None else "agent mismatch or unknown command id"
            ctx.audit_add(
                effects,
                now,
                AuditKind.ACK_IGNORED,
                f"{ack.status} from {ack.agent}: {why}",
                agent_id=agent_id,
                command_id=ack.id,
            )
            return
        # A `duplicate` answers a resend the agent already has: it must not hide
        # the real state (e.g. `executing`) that the first copy produced.
        if not (ack.status is AckStatus.DUPLICATE and cmd.acknowledged):
            rt.last_ack_status = ack.status
            rt.last_ack_at = now
            rt.last_ack_detail = ack.detail
        cmd.acknowledged = True
        cmd.closed = True  # any ack stops the resends: the agent has it
        if ack.status is AckStatus.SCHEDULED:
            cmd.execute_at = ack.execute_at
        elif ack.status is AckStatus.EXECUTING:
            cmd.committed = True
        elif ack.status in TERMINAL_STATUSES:
            self._apply_terminal_ack(rt, cmd, ack)
        detail = f": {ack.detail}" if ack.detail else ""
        ctx.audit_add(
            effects,
            now,
            AuditKind.ACK,
            f"{cmd.action} acked {ack.status}{detail}",
            agent_id=agent_id,
            command_id=cmd.id,
        )

    @staticmethod
    def _apply_terminal_ack(rt: AgentRuntime, cmd: SentCommand, ack: Ack) -> None:
        cmd.outcome = ack.status
        if cmd.action is not CommandAction.ABORT:
            return
        target = rt.shutdown
        ref = ack.ref or cmd.ref
        if target is None or ref is None or target.id != ref:
            return
        if ack.status is AckStatus.ABORTED:
            target.outcome = AckStatus.ABORTED
        elif ack.detail.startswith("too_late"):
            target.committed = True  # the abort lost the race: the host goes down

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


def _abort_pointless(rt: AgentRuntime, abort: SentCommand, now: float) -> bool:
    target = rt.shutdown
    if target is None or abort.ref is None or target.id != abort.ref:
        return False
    return target.past_commit(now) or target.outcome is not None
