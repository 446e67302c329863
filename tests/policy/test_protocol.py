"""Command protocol v1: canonical form, signatures, sanitising, building and parsing."""

from __future__ import annotations

import json

from hypothesis import given, settings, strategies as st
import pytest

from custom_components.ecoflow_power.policy.protocol import (
    DEFAULT_PREFIX,
    Ack,
    AckStatus,
    AgentPlatform,
    AgentState,
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

SECRET = "s3cr3t-agent-key-for-tests-only"
PINNED = {
    "v": 1,
    "id": "3f2a9c1e-0b7d-4e21-9a55-6c1d2e3f4a5b",
    "action": "shutdown",
    "delay_sec": 60,
    "ttl_sec": 300,
    "issued_at": 1767225600,
    "reason": "grid lost and soc_min 19.5 <= 20",
    "device": "R651ZAB5XXXX0001",
}
PINNED_CANONICAL = (
    '{"action":"shutdown","delay_sec":60,"device":"R651ZAB5XXXX0001",'
    '"id":"3f2a9c1e-0b7d-4e21-9a55-6c1d2e3f4a5b","issued_at":1767225600,'
    '"reason":"grid lost and soc_min 19.5 <= 20","ttl_sec":300,"v":1}'
)
PINNED_SIG = "11eeb975bcbd82506888cd37ad2b34e146e2069da47e0f6a0b905276ba12a830"
PINNED_ACK = {
    "v": 1,
    "id": "3f2a9c1e-0b7d-4e21-9a55-6c1d2e3f4a5b",
    "agent": "nas",
    "status": "received",
    "at": 1767225601,
    "detail": "",
}
PINNED_ACK_SIG = "a55d515ed6fe87d63c14a2b59530b8d5362f34f11acbca40d303e180195c8999"
STATUS = {
    "v": 1,
    "agent": "nas",
    "state": "online",
    "hostname": "nas.lan",
    "platform": "linux",
    "agent_version": "1.0.0",
    "dry_run": False,
    "shutdown_sec": 90,
    "at": 1767225600,
}


def signed(message: dict, secret: str = SECRET) -> dict:
    return {**message, "sig": sign_message(message, secret)}


# -- canonical form and signatures -------------------------------------------


def test_pinned_command_canonical_and_signature() -> None:
    assert canonical_json(PINNED) == PINNED_CANONICAL
    assert sign_message(PINNED, SECRET) == PINNED_SIG
    assert verify_message({**PINNED, "sig": PINNED_SIG}, SECRET)


def test_pinned_ack_signature() -> None:
    assert sign_message(PINNED_ACK, SECRET) == PINNED_ACK_SIG


def test_canonical_ignores_sig_and_key_order() -> None:
    reordered = dict(reversed(list({**PINNED, "sig": "x"}.items())))
    assert canonical_json(reordered) == PINNED_CANONICAL


def test_build_command_reproduces_pinned_vector() -> None:
    message = build_command(
        action=CommandAction.SHUTDOWN,
        agent_secret=SECRET,
        device="R651ZAB5XXXX0001",
        reason="grid lost and soc_min 19.5 <= 20",
        delay_sec=60,
        ttl_sec=300,
        issued_at=1767225600,
        command_id="3f2a9c1e-0b7d-4e21-9a55-6c1d2e3f4a5b",
    )
    assert message == {**PINNED, "sig": PINNED_SIG}


@pytest.mark.parametrize(
    ("key", "value"),
    [
        ("v", 2),
        ("id", "3f2a9c1e-0b7d-4e21-9a55-6c1d2e3f4a5c"),
        ("action", "abort"),
        ("delay_sec", 0),
        ("ttl_sec", 301),
        ("issued_at", 1767225601),
        ("reason", "grid lost and soc_min 19.5 <= 21"),
        ("device", "R651ZAB5XXXX0002"),
        ("extra", True),
    ],
)
def test_any_tampered_field_fails_verification(key: str, value: object) -> None:
    assert not verify_message({**PINNED, "sig": PINNED_SIG, key: value}, SECRET)


def test_removed_field_fails_verification() -> None:
    message = {**PINNED, "sig": PINNED_SIG}
    del message["reason"]
    assert not verify_message(message, SECRET)


@pytest.mark.parametrize(
    "sig",
    [None, "", PINNED_SIG.upper(), PINNED_SIG[:-1], PINNED_SIG + "0", 12345, "z" * 64],
)
def test_bad_or_missing_sig_fails(sig: object) -> None:
    message = dict(PINNED) if sig is None else {**PINNED, "sig": sig}
    assert not verify_message(message, SECRET)


def test_wrong_or_empty_secret_fails() -> None:
    message = {**PINNED, "sig": PINNED_SIG}
    assert not verify_message(message, "another-secret")
    assert not verify_message(message, "")
    with pytest.raises(ValueError, match="empty secret"):
        sign_message(PINNED, "")


def test_secret_is_utf8_encoded() -> None:
    message = signed(PINNED, "clé-ünïcode")
    assert verify_message(message, "clé-ünïcode")
    assert not verify_message(message, "cle-unicode")


@pytest.mark.parametrize(
    "value",
    [1.5, 2.0, None, [1], {"a": 1}, -1, 2**53, "caf\u00e9", "line\nbreak", "del\x7f"],
)
def test_values_outside_flat_subset_cannot_be_signed(value: object) -> None:
    with pytest.raises(ValueError, match="reason"):
        canonical_json({**PINNED, "reason": value})
    # ... and a message carrying one never verifies, whatever its sig.
    assert not verify_message({**PINNED, "reason": value, "sig": PINNED_SIG}, SECRET)


def test_booleans_and_escapes_are_canonical() -> None:
    text = canonical_json({"b": True, "a": 'say "hi" \\ a/b', "c": 0})
    assert text == '{"a":"say \\"hi\\" \\\\ a/b","b":true,"c":0}'


_flat_values = st.one_of(
    st.booleans(),
    st.integers(min_value=0, max_value=2**53 - 1),
    st.text(alphabet=st.characters(min_codepoint=0x20, max_codepoint=0x7E), max_size=30),
)
_flat_messages = st.dictionaries(
    st.text(alphabet="abcdefghijklmnopqrstuvwxyz_", min_size=1, max_size=10).filter(
        lambda k: k != "sig"
    ),
    _flat_values,
    min_size=1,
    max_size=8,
)


@settings(max_examples=200, deadline=None)
@given(message=_flat_messages, secret=st.text(min_size=1, max_size=40))
def test_property_sign_verify_and_mutation(message: dict, secret: str) -> None:
    sig = sign_message(message, secret)
    assert verify_message({**message, "sig": sig}, secret)
    # Canonical JSON is valid JSON for the same object, minus sig.
    assert json.loads(canonical_json({**message, "sig": sig})) == message
    key = next(iter(message))
    value = message[key]
    mutated = (
        (not value)
        if isinstance(value, bool)
        else (value + 1 if isinstance(value, int) else value + "x")
    )
    assert not verify_message({**message, key: mutated, "sig": sig}, secret)


# -- sanitising ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("grid lost and soc_min 19.5 <= 20", "grid lost and soc_min 19.5 <= 20"),
        ("  Büro\tPC\n\nnumber  2 ", "Buro PC number 2"),
        ("emoji 🔋 battery", "emoji battery"),
        ("ctrl\x00\x07\x1b[31m red\x7f", "ctrl[31m red"),
        ('quote " back \\ ok', 'quote " back \\ ok'),
        ("", ""),
        (None, ""),
        (42, "42"),
    ],
)
def test_sanitize_text(raw: object, expected: str) -> None:
    assert sanitize_text(raw) == expected


def test_sanitize_text_truncates() -> None:
    assert sanitize_text("x" * 500) == "x" * 200
    assert sanitize_text("abc def", max_len=4) == "abc"
    with pytest.raises(ValueError, match="max_len"):
        sanitize_text("x", max_len=-1)


@settings(max_examples=200, deadline=None)
@given(st.text())
def test_property_sanitized_text_is_always_signable(text: str) -> None:
    clean = sanitize_text(text)
    assert len(clean) <= 200
    canonical_json({"reason": clean})  # never raises


def test_build_command_sanitises_reason_and_device() -> None:
    message = build_command(
        action="abort",
        agent_secret=SECRET,
        device="Küche\nstation",
        reason="grid\x00 back " + "!" * 300,
        delay_sec=0,
        ttl_sec=30,
        issued_at=1,
        command_id="abc",
    )
    assert message["device"] == "Kuche station"
    assert len(message["reason"]) == 200
    assert message["action"] == "abort"
    assert verify_message(message, SECRET)


@pytest.mark.parametrize(
    "change",
    [
        {"action": "reboot"},
        {"delay_sec": -1},
        {"ttl_sec": 0},
        {"issued_at": -5},
        {"delay_sec": True},
        {"command_id": ""},
        {"command_id": "é"},
        {"command_id": "x" * 129},
        {"agent_secret": ""},
    ],
)
def test_build_command_rejects_bad_input(change: dict) -> None:
    kwargs = {
        "action": "shutdown",
        "agent_secret": SECRET,
        "device": "dev",
        "reason": "r",
        "delay_sec": 60,
        "ttl_sec": 300,
        "issued_at": 1767225600,
        "command_id": "abc",
    }
    with pytest.raises(ValueError, match=r"."):
        build_command(**{**kwargs, **change})


# -- parsing acks and statuses ----------------------------------------------------


def test_parse_pinned_ack_from_bytes_and_str() -> None:
    payload = json.dumps({**PINNED_ACK, "sig": PINNED_ACK_SIG})
    expected = Ack(
        id=PINNED_ACK["id"], agent="nas", status=AckStatus.RECEIVED, at=1767225601, detail=""
    )
    assert parse_ack(payload, SECRET) == expected
    assert parse_ack(payload.encode(), SECRET) == expected


def test_parse_ack_optional_fields() -> None:
    message = signed({**PINNED_ACK, "status": "aborted", "ref": "shut-1", "execute_at": 5})
    ack = parse_ack(json.dumps(message), SECRET)
    assert ack is not None
    assert (ack.status, ack.ref, ack.execute_at) == (AckStatus.ABORTED, "shut-1", 5)


@pytest.mark.parametrize(
    "payload",
    [
        b"\xff\xfe",
        "not json",
        "[1, 2]",
        json.dumps({**PINNED_ACK, "sig": PINNED_ACK_SIG, "status": "executing"}),
        json.dumps(PINNED_ACK),
        json.dumps(signed(PINNED_ACK, "other")),
        json.dumps(signed({**PINNED_ACK, "v": 2})),
        json.dumps(signed({**PINNED_ACK, "status": "exploded"})),
        json.dumps(signed({**PINNED_ACK, "at": True})),
        json.dumps(signed({k: v for k, v in PINNED_ACK.items() if k != "agent"})),
        json.dumps(signed({**PINNED_ACK, "ref": 7})),
    ],
)
def test_parse_ack_rejects_malformed_or_unsigned(payload: str | bytes) -> None:
    assert parse_ack(payload, SECRET) is None


def test_parse_status() -> None:
    status = parse_status(json.dumps(signed(STATUS)), SECRET)
    assert status is not None
    assert status.state is AgentState.ONLINE
    assert status.platform is AgentPlatform.LINUX
    assert (status.agent, status.hostname, status.shutdown_sec, status.dry_run) == (
        "nas",
        "nas.lan",
        90,
        False,
    )


@pytest.mark.parametrize(
    "message",
    [
        {**STATUS, "state": "sleeping"},
        {**STATUS, "platform": "beos"},
        {**STATUS, "dry_run": 0},
        {**STATUS, "shutdown_sec": True},
        {k: v for k, v in STATUS.items() if k != "hostname"},
    ],
)
def test_parse_status_rejects_bad_shape(message: dict) -> None:
    assert parse_status(json.dumps(signed(message)), SECRET) is None


def test_parse_status_rejects_bad_signature() -> None:
    assert parse_status(json.dumps(signed(STATUS, "other")), SECRET) is None
    assert parse_status(json.dumps(STATUS), SECRET) is None


# -- topics -------------------------------------------------------------------------


def test_topics() -> None:
    assert command_topic(DEFAULT_PREFIX, "nas") == "power-manager/nas/cmd"
    assert ack_topic("lab/power/", "nas-01") == "lab/power/nas-01/ack"
    assert status_topic("p", "vm_2.lab") == "p/vm_2.lab/status"


@pytest.mark.parametrize(
    ("prefix", "agent_id"),
    [("p", "a/b"), ("p", "+"), ("p", "#"), ("p", ""), ("p", "-lead"), ("", "nas"), ("a/#", "nas")],
)
def test_topics_reject_unsafe_parts(prefix: str, agent_id: str) -> None:
    with pytest.raises(ValueError, match="invalid"):
        command_topic(prefix, agent_id)
