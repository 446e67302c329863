"""Protocol 2 on the integration side: the power lease, ref-aware aborts, v2 ack/status fields."""

from __future__ import annotations

import json

import pytest

from custom_components.ecoflow_power.ecoflow.state import GridStatus
from custom_components.ecoflow_power.policy.lease import (
    LEASE_VALID_SEC,
    LeaseGrid,
    build_lease,
    clock_offset_sec,
    lease_expiry,
    lease_state,
    lease_topic,
    parse_lease,
)
from custom_components.ecoflow_power.policy.protocol import (
    JobState,
    build_command,
    parse_ack,
    parse_status,
    sign_message,
    verify_message,
)
from custom_components.ecoflow_power.policy.status import AgentView, PolicyState, PolicyStatus

SECRET = "s3cr3t-agent-key-for-tests-only"
T = 1767225600


def _lease(**changes: object) -> dict:
    fields: dict = {
        "agent_id": "nas",
        "agent_secret": SECRET,
        "device": "R651ZAB5XXXX0001",
        "grid": "on_battery",
        "soc_min": 19.54,
        "shutdown_by": T + 120,
        "fsd": False,
        "issued_at": T,
        "expires_at": T + 210,
    }
    fields.update(changes)
    return build_lease(**fields)


def test_lease_round_trip_and_wire_form() -> None:
    message = _lease()
    assert message["v"] == 2
    assert message["type"] == "lease"
    assert message["soc_min"] == "19.5"  # floats cannot be signed: one decimal as text
    assert verify_message(message, SECRET)
    lease = parse_lease(json.dumps(message), SECRET, "nas")
    assert lease is not None
    assert lease.grid is LeaseGrid.ON_BATTERY
    assert lease.shutdown_by == T + 120
    assert lease.soc_min == 19.5
    assert lease_topic("power-manager", "nas") == "power-manager/nas/power"


def test_lease_without_deadline_or_soc_omits_them() -> None:
    message = _lease(grid="present", shutdown_by=None, soc_min=None)
    assert "shutdown_by" not in message
    assert "soc_min" not in message
    lease = parse_lease(json.dumps(message), SECRET, "nas")
    assert lease is not None
    assert lease.shutdown_by is None
    assert lease.soc_min is None


@pytest.mark.parametrize(
    ("payload", "secret", "agent"),
    [
        (json.dumps(_lease()), "another-secret", "nas"),
        (json.dumps(_lease()), SECRET, "pc-study"),
        (json.dumps({**_lease(), "fsd": True}), SECRET, "nas"),
        (json.dumps({**_lease(), "v": 1}), SECRET, "nas"),
        ("{not json", SECRET, "nas"),
        (json.dumps(_lease()) + " " * 9000, SECRET, "nas"),
    ],
    ids=["wrong-secret", "other-agent", "tampered", "version", "junk", "oversized"],
)
def test_parse_lease_refuses(payload: str, secret: str, agent: str) -> None:
    assert parse_lease(payload, secret, agent) is None


@pytest.mark.parametrize(
    "changes",
    [{"agent_id": "bad id"}, {"expires_at": T - 1}, {"soc_min": 101.0}, {"issued_at": -1}],
)
def test_build_lease_refuses_bad_input(changes: dict) -> None:
    with pytest.raises(ValueError, match=r"agent id|expires_at|soc_min|issued_at"):
        _lease(**changes)


def test_lease_expiry_covers_the_deadline() -> None:
    assert lease_expiry(T, None) == T + LEASE_VALID_SEC
    assert lease_expiry(T, T + 600) == T + 600 + LEASE_VALID_SEC
    assert lease_expiry(T, T - 30) == T + LEASE_VALID_SEC


def _view(**changes: object) -> AgentView:
    fields: dict = {
        "agent_id": "nas",
        "soc_threshold": 20,
        "delay_sec": 60,
        "pending_fire_at": None,
        "last_command_id": None,
        "last_command_action": None,
        "last_command_at": None,
        "last_ack_status": None,
        "last_ack_at": None,
        "last_ack_detail": "",
        "acknowledged": False,
        "committed": False,
    }
    fields.update(changes)
    return AgentView(**fields)


def _status(**changes: object) -> PolicyStatus:
    fields: dict = {
        "device_id": "R651ZAB5XXXX0001",
        "state": PolicyState.NORMAL,
        "armed": True,
        "dry_run": False,
        "grid": GridStatus.CONNECTED,
        "soc_min": 55.55,
        "remaining_discharge_min": None,
        "telemetry_stale": False,
        "pending_fire_at": None,
        "agents": {},
    }
    fields.update(changes)
    return PolicyStatus(**fields)


@pytest.mark.parametrize(
    ("status", "grid"),
    [
        (_status(), LeaseGrid.PRESENT),
        (_status(grid=GridStatus.LOST, state=PolicyState.ON_BATTERY), LeaseGrid.ON_BATTERY),
        (_status(telemetry_stale=True), LeaseGrid.UNKNOWN),
        (_status(state=PolicyState.BLIND), LeaseGrid.UNKNOWN),
        (_status(state=PolicyState.UNPROTECTED), LeaseGrid.UNKNOWN),
        (_status(grid=None), LeaseGrid.UNKNOWN),
    ],
    ids=["present", "lost", "stale", "blind", "unprotected", "never-known"],
)
def test_lease_says_present_only_on_fresh_evidence(status: PolicyStatus, grid: LeaseGrid) -> None:
    state = lease_state(status, _view())
    assert state.grid is grid
    assert state.soc_min == pytest.approx(55.5, abs=0.06)


def test_lease_state_carries_deadline_and_fsd() -> None:
    view = _view(shutdown_by=T + 99.9, fsd=True)
    state = lease_state(_status(grid=GridStatus.LOST), view)
    assert state.shutdown_by == T + 99
    assert state.fsd
    assert state.needs_refresh
    assert not lease_state(_status(), _view()).needs_refresh


def test_clock_offset_from_a_prompt_answer() -> None:
    assert clock_offset_sec(T + 30, T, T + 0.2) == pytest.approx(30.4, abs=0.01)
    assert clock_offset_sec(T - 30, T, T + 0.2) == pytest.approx(-29.6, abs=0.01)
    assert clock_offset_sec(T, T, T + 6) is None
    assert clock_offset_sec(T, T + 1, T) is None


def test_abort_names_its_target() -> None:
    abort = build_command(
        action="abort",
        agent_secret=SECRET,
        device="R651ZAB5XXXX0001",
        reason="grid restored",
        delay_sec=0,
        ttl_sec=30,
        issued_at=T,
        command_id="abort-1",
        ref="shutdown-1",
    )
    assert abort["ref"] == "shutdown-1"
    assert verify_message(abort, SECRET)
    with pytest.raises(ValueError, match="only an abort"):
        build_command(
            action="shutdown",
            agent_secret=SECRET,
            device="x",
            reason="x",
            delay_sec=1,
            ttl_sec=30,
            issued_at=T,
            command_id="s",
            ref="other",
        )


def test_duplicate_ack_carries_the_job_state() -> None:
    ack = {
        "v": 1,
        "id": "s-1",
        "agent": "nas",
        "status": "duplicate",
        "at": T,
        "detail": "duplicate: id seen before",
        "job": "pending",
        "execute_at": T + 60,
    }
    parsed = parse_ack(json.dumps({**ack, "sig": sign_message(ack, SECRET)}), SECRET)
    assert parsed is not None
    assert parsed.job is JobState.PENDING
    assert parsed.execute_at == T + 60
    bad = {**ack, "job": "sleeping"}
    assert parse_ack(json.dumps({**bad, "sig": sign_message(bad, SECRET)}), SECRET) is None


def test_protocol2_status_fields() -> None:
    status = {
        "v": 1,
        "protocol": 2,
        "agent": "nas",
        "state": "online",
        "hostname": "nas",
        "platform": "linux",
        "agent_version": "2.0.0",
        "dry_run": True,
        "shutdown_sec": 45,
        "at": T,
        "job": "pending",
        "job_id": "lease-1767225600",
        "lease_deadline": T + 120,
    }
    parsed = parse_status(json.dumps({**status, "sig": sign_message(status, SECRET)}), SECRET)
    assert parsed is not None
    assert parsed.protocol == 2
    assert parsed.job is JobState.PENDING
    assert parsed.lease_deadline == T + 120
    v1 = {
        k: v for k, v in status.items() if k not in ("protocol", "job", "job_id", "lease_deadline")
    }
    parsed_v1 = parse_status(json.dumps({**v1, "sig": sign_message(v1, SECRET)}), SECRET)
    assert parsed_v1 is not None
    assert parsed_v1.protocol == 1
    assert parsed_v1.job is None


def test_status_reports_the_broker_interface_for_wake_on_lan() -> None:
    status = {
        "v": 1,
        "protocol": 2,
        "agent": "nas",
        "state": "online",
        "hostname": "nas",
        "platform": "linux",
        "agent_version": "2.0.0",
        "dry_run": True,
        "shutdown_sec": 45,
        "at": T,
        "mac": "02:fc:00:00:00:01",
        "broadcast": "192.168.1.255",
    }
    parsed = parse_status(json.dumps({**status, "sig": sign_message(status, SECRET)}), SECRET)
    assert parsed is not None
    assert parsed.mac == "02:fc:00:00:00:01"
    assert parsed.broadcast == "192.168.1.255"
    for bad in ({"mac": "02-FC-00-00-00-01"}, {"broadcast": "ff02::1"}):
        message = {**status, **bad}
        assert (
            parse_status(json.dumps({**message, "sig": sign_message(message, SECRET)}), SECRET)
            is None
        )


def test_only_material_changes_are_published_before_the_refresh() -> None:
    from custom_components.ecoflow_power.policy.lease import LEASE_EARLIER_SEC, LeaseState

    base = LeaseState(LeaseGrid.ON_BATTERY, 40.0, T + 600, fsd=False)
    assert not LeaseState(LeaseGrid.ON_BATTERY, 39.9, T + 600, fsd=False).supersedes(base)
    assert not LeaseState(LeaseGrid.ON_BATTERY, 40.0, T + 640, fsd=False).supersedes(base)
    earlier = T + 600 - LEASE_EARLIER_SEC
    assert LeaseState(LeaseGrid.ON_BATTERY, 40.0, earlier, fsd=False).supersedes(base)
    assert LeaseState(LeaseGrid.ON_BATTERY, 40.0, T + 600, fsd=True).supersedes(base)
    assert LeaseState(LeaseGrid.PRESENT, 40.0, None, fsd=False).supersedes(base)
    assert LeaseState(LeaseGrid.ON_BATTERY, 40.0, None, fsd=False).supersedes(base)
