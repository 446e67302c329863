"""Request signing of the EcoFlow developer ("Open") API.

The server recomputes the signature from the headers and the query/body
parameters, so the flattening and ordering below must match its rules to the
byte. Pinned by the worked example in EcoFlow's developer documentation
(see tests/ecoflow/test_signing.py).
"""

from __future__ import annotations

from collections.abc import Mapping
import hashlib
import hmac
from typing import Any


def _render(value: Any) -> str:
    # The server is written in Java: booleans print as true/false, not Python's
    # True/False, and a missing value as an empty string.
    if isinstance(value, bool):
        return "true" if value else "false"
    if value is None:
        return ""
    return str(value)


def _flatten_into(out: dict[str, str], prefix: str, value: Any) -> None:
    if isinstance(value, Mapping):
        for key, inner in value.items():
            _flatten_into(out, f"{prefix}.{key}" if prefix else str(key), inner)
    elif isinstance(value, list | tuple):
        for index, inner in enumerate(value):
            _flatten_into(out, f"{prefix}[{index}]", inner)
    else:
        out[prefix] = _render(value)


def flatten_params(params: Mapping[str, Any]) -> dict[str, str]:
    """Flatten nested parameters: dicts as ``a.b``, lists as ``x[0]``."""
    out: dict[str, str] = {}
    _flatten_into(out, "", params)
    return out


def build_sign_string(
    params: Mapping[str, Any] | None, access_key: str, nonce: str, timestamp: str | int
) -> str:
    """The exact text the server signs: sorted parameters, then the auth triple."""
    flat = flatten_params(params or {})
    # Plain str sort is ASCII order for the ASCII keys the API uses.
    joined = "&".join(f"{key}={flat[key]}" for key in sorted(flat))
    auth = f"accessKey={access_key}&nonce={nonce}&timestamp={timestamp}"
    return f"{joined}&{auth}" if joined else auth


def sign(secret_key: str, sign_string: str) -> str:
    """Lowercase hex HMAC-SHA256 of ``sign_string`` keyed by ``secret_key``."""
    return hmac.new(
        secret_key.encode("utf-8"), sign_string.encode("utf-8"), hashlib.sha256
    ).hexdigest()


def signed_headers(
    access_key: str,
    secret_key: str,
    params: Mapping[str, Any] | None,
    *,
    nonce: str,
    timestamp: str | int,
) -> dict[str, str]:
    """The four headers every signed request carries."""
    text = build_sign_string(params, access_key, nonce, timestamp)
    return {
        "accessKey": access_key,
        "nonce": str(nonce),
        "timestamp": str(timestamp),
        "sign": sign(secret_key, text),
    }
