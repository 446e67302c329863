"""Server side of Open API signing: accept a request only as the real cloud would."""

from __future__ import annotations

from collections.abc import Mapping
import hmac

from custom_components.ecoflow_power.ecoflow.signing import build_sign_string, sign

# How far the request timestamp may be from the server clock. The real limit is
# not published; a few minutes is what signing guides warn about.
MAX_SKEW_MS = 5 * 60 * 1000


def check_signature(
    headers: Mapping[str, str],
    params: Mapping[str, str],
    keys: Mapping[str, str],
    *,
    now_ms: int,
    max_skew_ms: int = MAX_SKEW_MS,
) -> str | None:
    """None when the request is properly signed, else a reason (never a secret)."""
    access_key = headers.get("accessKey", "")
    nonce = headers.get("nonce", "")
    timestamp = headers.get("timestamp", "")
    given = headers.get("sign", "")
    if not (access_key and nonce and timestamp and given):
        return "missing signature headers"
    secret = keys.get(access_key)
    if secret is None:
        return "unknown access key"
    try:
        stamp = int(timestamp)
    except ValueError:
        return "timestamp is not a number"
    if abs(now_ms - stamp) > max_skew_ms:
        return "timestamp out of range"
    expected = sign(secret, build_sign_string(params, access_key, nonce, timestamp))
    if not hmac.compare_digest(expected, given.lower()):
        return "signature mismatch"
    return None
