"""The decode CLI, run as a real subprocess."""

from __future__ import annotations

import json
from pathlib import Path
import subprocess
import sys

CAPTURES = Path(__file__).parent.parent / "fixtures" / "captures"
ROOT = Path(__file__).parent.parent.parent
MODULE = "custom_components.ecoflow_power.ecoflow.decode"


def run(*args: str, stdin: bytes | None = None) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", MODULE, *args],
        input=stdin,
        capture_output=True,
        cwd=ROOT,
        timeout=60,
        check=False,
    )


def test_hex_file_with_raw_fields() -> None:
    result = run(str(CAPTURES / "pb01_river3_getreply_maodijim.hex"), "--raw")
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["sn"] == "R651PC0CXGCA0798"  # taken from the payload
    assert document["model"] == "River 3"
    assert document["grid"] == "connected"
    assert document["raw"]["display.flow_info_ac_in"] == 2


def test_base64_file() -> None:
    result = run(str(CAPTURES / "pb05_deltapro3_getreply_tolwi270_via_nextaltair.b64"))
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert document["model"] == "Delta Pro 3"
    assert document["soc"] == 35.17
    assert "raw" not in document


def test_stdin_json_with_hints() -> None:
    data = (CAPTURES / "js01_delta2_getreply_latestQuotas_iobroker.json").read_bytes()
    result = run("-", "--sn", "R331ZTEST", "--model", "DELTA 2", stdin=data)
    assert result.returncode == 0, result.stderr
    document = json.loads(result.stdout)
    assert (document["sn"], document["model"], document["soc"]) == ("R331ZTEST", "Delta 2", 86.8)


def test_undecodable_input_fails_clearly() -> None:
    result = run("-", stdin=b"this is not a payload")
    assert result.returncode == 1
    assert b"cannot decode" in result.stderr
    assert result.stdout == b""
