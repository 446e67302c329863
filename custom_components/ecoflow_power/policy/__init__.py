"""Shutdown policy engine and command protocol v1 (pure: no Home Assistant imports)."""

from __future__ import annotations

from .audit import AuditKind, AuditRecord, AuditTrail, DecisionMode
from .effects import (
    REPAIR_POLICY_BLIND,
    REPAIR_POLICY_UNPROTECTED,
    REPAIR_STATION_CUTOFF,
    REPAIR_TELEMETRY_STALE,
    Effect,
    EmitEvent,
    PolicyEvent,
    PublishCommand,
    RepairChange,
)
from .engine import PolicyEngine
from .persistence import PolicyStateError
from .protocol import (
    DEFAULT_PREFIX,
    PROTOCOL_VERSION,
    Ack,
    AckStatus,
    AgentPlatform,
    AgentState,
    AgentStatus,
    CommandAction,
    ack_topic,
    build_command,
    canonical_json,
    command_topic,
    parse_ack,
    parse_status,
    sanitize_text,
    sign_message,
    status_topic,
    verify_message,
)
from .settings import AgentBinding, PolicySettings
from .status import AgentView, PolicyState, PolicyStatus
from .supply import FeedRule, SupplyBoard
from .telemetry import PolicyTelemetry

__all__ = [
    "DEFAULT_PREFIX",
    "PROTOCOL_VERSION",
    "REPAIR_POLICY_BLIND",
    "REPAIR_POLICY_UNPROTECTED",
    "REPAIR_STATION_CUTOFF",
    "REPAIR_TELEMETRY_STALE",
    "Ack",
    "AckStatus",
    "AgentBinding",
    "AgentPlatform",
    "AgentState",
    "AgentStatus",
    "AgentView",
    "AuditKind",
    "AuditRecord",
    "AuditTrail",
    "CommandAction",
    "DecisionMode",
    "Effect",
    "EmitEvent",
    "FeedRule",
    "PolicyEngine",
    "PolicyEvent",
    "PolicySettings",
    "PolicyState",
    "PolicyStateError",
    "PolicyStatus",
    "PolicyTelemetry",
    "PublishCommand",
    "RepairChange",
    "SupplyBoard",
    "ack_topic",
    "build_command",
    "canonical_json",
    "command_topic",
    "parse_ack",
    "parse_status",
    "sanitize_text",
    "sign_message",
    "status_topic",
    "verify_message",
]
