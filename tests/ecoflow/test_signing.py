"""Signing of Open API requests, pinned to fixed vectors.

The first vector is the worked example of EcoFlow's developer documentation
("HTTP access steps", step 8); the others were computed by hand with hmac.
"""

from __future__ import annotations

import hashlib
import hmac

from hypothesis import given, strategies as st

from custom_components.ecoflow_power.ecoflow.signing import (
    build_sign_string,
    flatten_params,
    sign,
    signed_headers,
)

DOC_ACCESS_KEY = "Fp4SvIprYSDPXtYJidEtUAd1o"
DOC_SECRET_KEY = "WIbFEKre0s6sLnh4ei7SPUeYnptHG6V"
DOC_NONCE = "345164"
DOC_TIMESTAMP = "1671171709428"
DOC_PARAMS = {"sn": "123456789", "params": {"cmdSet": 11, "id": 24, "eps": 0}}
DOC_STRING = (
    "params.cmdSet=11&params.eps=0&params.id=24&sn=123456789"
    "&accessKey=Fp4SvIprYSDPXtYJidEtUAd1o&nonce=345164&timestamp=1671171709428"
)
DOC_SIGN = "07c13b65e037faf3b153d51613638fa80003c4c38d2407379a7f52851af1473e"


def test_documented_example_sign_string() -> None:
    assert build_sign_string(DOC_PARAMS, DOC_ACCESS_KEY, DOC_NONCE, DOC_TIMESTAMP) == DOC_STRING


def test_documented_example_signature() -> None:
    assert sign(DOC_SECRET_KEY, DOC_STRING) == DOC_SIGN


def test_documented_example_headers() -> None:
    headers = signed_headers(
        DOC_ACCESS_KEY, DOC_SECRET_KEY, DOC_PARAMS, nonce=DOC_NONCE, timestamp=DOC_TIMESTAMP
    )
    assert headers == {
        "accessKey": DOC_ACCESS_KEY,
        "nonce": DOC_NONCE,
        "timestamp": DOC_TIMESTAMP,
        "sign": DOC_SIGN,
    }


def test_documented_flattening_of_lists_and_nested_objects() -> None:
    params = {
        "name": "demo1",
        "ids": [1, 2, 3],
        "deviceInfo": {"id": 1},
        "deviceList": [{"id": 1}, {"id": 2}],
    }
    assert flatten_params(params) == {
        "name": "demo1",
        "ids[0]": "1",
        "ids[1]": "2",
        "ids[2]": "3",
        "deviceInfo.id": "1",
        "deviceList[0].id": "1",
        "deviceList[1].id": "2",
    }
    assert build_sign_string(params, "AK", "1", "2") == (
        "deviceInfo.id=1&deviceList[0].id=1&deviceList[1].id=2"
        "&ids[0]=1&ids[1]=2&ids[2]=3&name=demo1&accessKey=AK&nonce=1&timestamp=2"
    )


def test_booleans_render_as_lowercase_words() -> None:
    params = {"sn": "R331ZEB5XXXX0002", "enabled": True, "off": False}
    assert flatten_params(params) == {"sn": "R331ZEB5XXXX0002", "enabled": "true", "off": "false"}
    text = build_sign_string(params, "ak-test", "123456", 1700000000000)
    assert text == (
        "enabled=true&off=false&sn=R331ZEB5XXXX0002"
        "&accessKey=ak-test&nonce=123456&timestamp=1700000000000"
    )
    assert sign("sk-test", text) == (
        "4a1f38249fc42f01de4b839fbbcd885781aab3a18a68782f8fa2c597827b2333"
    )


def test_nested_lists_of_lists_and_deep_objects() -> None:
    assert flatten_params({"a": {"b": {"c": [[1, 2], {"d": None}]}}}) == {
        "a.b.c[0][0]": "1",
        "a.b.c[0][1]": "2",
        "a.b.c[1].d": "",
    }


def test_empty_params_sign_only_the_auth_triple() -> None:
    expected = "accessKey=Fp4SvIprYSDPXtYJidEtUAd1o&nonce=345164&timestamp=1671171709428"
    for empty in ({}, None):
        assert build_sign_string(empty, DOC_ACCESS_KEY, DOC_NONCE, DOC_TIMESTAMP) == expected
    assert sign(DOC_SECRET_KEY, expected) == (
        "4409ae9efeaf0be9b8b48f02ebef8e804387e745e513588c136955606ca496f5"
    )


def test_keys_sort_in_ascii_order() -> None:
    # Upper case sorts before lower case, and "x[10]" before "x[2]": plain
    # byte order, which is what the server uses.
    params = {"beta": 1, "Zeta": 2, "alpha": 3, "x": list(range(11))}
    text = build_sign_string(params, "A", "N", "T")
    keys = [pair.split("=")[0] for pair in text.split("&")]
    assert keys[:5] == ["Zeta", "alpha", "beta", "x[0]", "x[10]"]
    assert keys[5] == "x[1]"
    assert keys[-3:] == ["accessKey", "nonce", "timestamp"]


def test_signature_is_lowercase_hex_hmac_sha256() -> None:
    expected = hmac.new(b"secret", b"message", hashlib.sha256).hexdigest()
    assert sign("secret", "message") == expected
    assert expected == expected.lower()
    assert len(expected) == 64


@given(
    st.dictionaries(
        st.text(
            alphabet="abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789", min_size=1
        ),
        st.one_of(st.integers(), st.booleans(), st.text(alphabet="abc123", max_size=5)),
        max_size=6,
    )
)
def test_flat_params_appear_sorted_before_the_auth_triple(params: dict[str, object]) -> None:
    text = build_sign_string(params, "AK", "N", "T")
    assert text.endswith("accessKey=AK&nonce=N&timestamp=T")
    assert "&&" not in text
    assert not text.startswith("&")
    body = text.removesuffix("accessKey=AK&nonce=N&timestamp=T").removesuffix("&")
    pairs = body.split("&") if body else []
    assert [p.split("=", 1)[0] for p in pairs] == sorted(str(k) for k in params)
