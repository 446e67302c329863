"""tests/fixtures/protocol/vectors.json: up to date, self-consistent, and per the spec."""

from __future__ import annotations

import json
from typing import Any

import pytest

from custom_components.ecoflow_power.policy.lease import parse_lease
from custom_components.ecoflow_power.policy.protocol import (
    canonical_json,
    parse_ack,
    parse_status,
    sign_message,
    verify_message,
)
from tests.policy import make_vectors
from tests.policy.reference_agent import expected_acks, lease_outcome

VECTORS: dict[str, Any] = json.loads(make_vectors.VECTORS_PATH.read_text(encoding="utf-8"))

REQUIRED_COMMAND_CASES = {
    "valid_shutdown",
    "abort_cancels_pending",
    "ping",
    "expired",
    "replayed_id",
    "bad_signature",
    "unsigned_with_secret",
    "unsigned_without_secret",
    "malformed_json",
    "legacy_seed_payload_without_secret",
    "legacy_seed_payload_with_secret",
    "replayed_id_while_pending",
    "abort_ref_cancels_pending",
    "abort_other_ref_cancels_nothing",
    "agent_clock_ahead_countdown_relative",
    "agent_clock_behind_countdown_relative",
    "oversized_payload_dropped",
}
REQUIRED_LEASE_CASES = {
    "on_battery_countdown",
    "retained_lease_read_late",
    "fsd_live",
    "fsd_expired_no_boot_loop",
    "grid_present_cancels",
    "bad_signature",
}


def _ids(cases: list[dict[str, Any]]) -> list[str]:
    return [case["name"] for case in cases]


def test_file_matches_generator() -> None:
    assert make_vectors.VECTORS_PATH.read_text(encoding="utf-8") == make_vectors.render(), (
        "vectors.json is out of date: run python -m tests.policy.make_vectors"
    )


def test_pinned_values_are_the_specified_ones() -> None:
    pinned = VECTORS["pinned"]
    assert pinned["secret"] == "s3cr3t-agent-key-for-tests-only"
    assert pinned["command_sig"] == (
        "11eeb975bcbd82506888cd37ad2b34e146e2069da47e0f6a0b905276ba12a830"
    )
    assert pinned["ack_sig"] == "a55d515ed6fe87d63c14a2b59530b8d5362f34f11acbca40d303e180195c8999"
    assert pinned["command"]["sig"] == pinned["command_sig"]
    assert canonical_json(pinned["command"]) == pinned["command_canonical"]
    assert sign_message(pinned["ack"], pinned["secret"]) == pinned["ack_sig"]


def test_all_required_cases_present() -> None:
    names = _ids(VECTORS["commands"])
    assert set(names) >= REQUIRED_COMMAND_CASES
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", VECTORS["commands"], ids=_ids(VECTORS["commands"]))
def test_command_vector_is_self_consistent(case: dict[str, Any]) -> None:
    message = case["message"]
    if message is None:
        assert case["canonical"] is None
        return
    assert json.loads(case["payload"]) == message
    assert canonical_json(message) == case["canonical"]
    assert message.get("sig") == case["sig"]
    if case["sig"] is None or case["secret"] is None:
        assert case["valid"] is None
    else:
        valid = verify_message(message, case["secret"])
        assert case["valid"] is valid
        acks = case["expected"]["acks"]
        rejected_for_sig = bool(acks) and acks[0].get("detail_prefix") == "bad_signature"
        assert valid is not rejected_for_sig


@pytest.mark.parametrize("case", VECTORS["commands"], ids=_ids(VECTORS["commands"]))
def test_command_vector_outcome_follows_documented_rules(case: dict[str, Any]) -> None:
    accepted, acks = expected_acks(case)
    assert accepted == case["expected"]["accepted"]
    documented = [{"id": _default_id(case), **ack} for ack in case["expected"]["acks"]]
    assert acks == documented


def _default_id(case: dict[str, Any]) -> str:
    message = case["message"] or {}
    return message.get("id", "")


@pytest.mark.parametrize("case", VECTORS["acks"], ids=_ids(VECTORS["acks"]))
def test_ack_vectors(case: dict[str, Any]) -> None:
    assert canonical_json(case["message"]) == case["canonical"]
    ack = parse_ack(case["payload"], case["secret"])
    assert (ack is not None) == case["expected"]["valid"] == case["valid"]
    if ack is not None:
        assert ack.id == case["message"]["id"]
        assert ack.status == case["message"]["status"]


@pytest.mark.parametrize("case", VECTORS["statuses"], ids=_ids(VECTORS["statuses"]))
def test_status_vectors(case: dict[str, Any]) -> None:
    assert canonical_json(case["message"]) == case["canonical"]
    status = parse_status(case["payload"], case["secret"])
    assert (status is not None) == case["expected"]["valid"] == case["valid"]


def test_all_required_lease_cases_present() -> None:
    names = _ids(VECTORS["leases"])
    assert set(names) >= REQUIRED_LEASE_CASES
    assert len(names) == len(set(names))


@pytest.mark.parametrize("case", VECTORS["leases"], ids=_ids(VECTORS["leases"]))
def test_lease_vector_outcome_follows_documented_rules(case: dict[str, Any]) -> None:
    assert canonical_json(case["message"]) == case["canonical"]
    assert json.loads(case["payload"]) == case["message"]
    parsed = parse_lease(case["payload"], case["secret"], case["agent_id"])
    expected = dict(case["expected"])
    valid = expected.pop("valid")
    assert case["valid"] is valid
    outcome = lease_outcome(case)
    assert outcome == expected
    # parse_lease checks shape, agent and signature (not the agent's clock)
    clock_only = outcome.get("reason") in ("future", "expired")
    assert (parsed is not None) == (outcome["action"] != "ignore" or clock_only)


def test_unauthenticated_cases_say_so() -> None:
    for case in VECTORS["commands"]:
        assert case["allow_unauthenticated"] is (case["secret"] is None), case["name"]
