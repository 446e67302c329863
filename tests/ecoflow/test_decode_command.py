"""The decode command on the captured payloads, in-process (main() and as `python -m`).

test_decode_cli.py runs it as a real subprocess; these run the same module in
this interpreter, so every path of it is measured, and check what a user
troubleshooting a station reads: the model, the state, the errors.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
import runpy
import sys

import pytest

from custom_components.ecoflow_power.ecoflow import decode

CAPTURES = Path(__file__).parent.parent / "fixtures" / "captures"
MODULE = "custom_components.ecoflow_power.ecoflow.decode"

# Every capture that is a whole message as a station sends it: the product-name hint
# a user would pass when the payload carries no serial, and the model it is of
# (named by the capture's source file). pb02 is a bare inner payload, see below.
MODELS: dict[str, tuple[str | None, str]] = {
    "js01_delta2_getreply_latestQuotas_iobroker.json": ("DELTA 2", "Delta 2"),
    "js02_deltapro_getreply_latestQuotas_iobroker.json": (None, "Delta Pro"),
    "js03_river2max_getreply_latestQuotas_iobroker.json": ("RIVER 2 MAX", "River 2 Max"),
    "js04_river2pro_getreply_latestQuotas_iobroker.json": (None, "River 2 Pro"),
    "js05_delta2max_2slaves_getreply_latestQuotas_tolwi_diag.json": (None, "Delta 2 Max"),
    "js05b_delta2max_2slaves_getreply_latestQuotas_iobroker.json": (None, "Delta 2 Max"),
    "js06_delta2max_openapi_quota_all_tess1o.json": ("DELTA 2 MAX", "Delta 2 Max"),
    "js08_powerstream_openapi_quota_all_shuette42_masked.json": ("PowerStream", "PowerStream"),
    "pb01_river3_getreply_maodijim.bin": (None, "River 3"),
    "pb01_river3_getreply_maodijim.hex": (None, "River 3"),
    "pb03_delta3plus_getreply_iobroker.hex": ("DELTA 3 PLUS", "Delta 3 Plus"),
    "pb04_delta3_p231_display_encrypted_shuette42.hex": ("DELTA 3", "Delta 3"),
    "pb05_deltapro3_getreply_tolwi270_via_nextaltair.b64": (None, "Delta Pro 3"),
    "pb06_powerstream_heartbeat_pvcharging_iobroker.hex": (None, "PowerStream"),
    "pb07_powerstream_heartbeat_idle_iobroker.hex": (None, "PowerStream"),
}


def run_main(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = decode.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_every_capture_is_listed_here() -> None:
    payloads = {
        path.name
        for path in CAPTURES.iterdir()
        if not path.name.endswith(".source.json") and not path.name.startswith("pb02_")
    }
    assert payloads - {"js07_delta2_mqtt_property_pushes_v1ckxy_issue6.jsonl"} == set(MODELS)


@pytest.mark.parametrize("name", sorted(MODELS))
def test_each_capture_decodes_to_its_model_with_a_battery_level(
    capsys: pytest.CaptureFixture[str], name: str
) -> None:
    hint, model = MODELS[name]
    code, out, err = run_main(capsys, str(CAPTURES / name), *(["--model", hint] if hint else []))
    assert code == 0, err
    document = json.loads(out)
    assert document["model"] == model
    assert document["family"] != "unknown"
    assert document["soc_min"] is not None
    assert document["file"] == str(CAPTURES / name)
    # Captures carry no trustworthy clock: no times in the output.
    assert "seen_at" not in document
    assert "updated_at" not in document


def test_without_serial_or_hint_the_state_still_decodes_for_an_unknown_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    name = "js01_delta2_getreply_latestQuotas_iobroker.json"
    code, out, _ = run_main(capsys, str(CAPTURES / name))
    assert code == 0
    document = json.loads(out)
    assert (document["model"], document["family"]) == ("EcoFlow device", "unknown")
    assert document["soc_min"] is not None


def test_json_lines_of_pushes_are_merged_in_order(capsys: pytest.CaptureFixture[str]) -> None:
    name = "js07_delta2_mqtt_property_pushes_v1ckxy_issue6"
    stated = json.loads((CAPTURES / f"{name}.source.json").read_text())["values_stated_by_source"]
    code, out, err = run_main(
        capsys,
        str(CAPTURES / f"{name}.jsonl"),
        "--sn",
        "R331ZTEST0001",
        "--model",
        "DELTA 2",
        "--raw",
    )
    assert code == 0, err
    document = json.loads(out)
    assert (document["sn"], document["model"]) == ("R331ZTEST0001", "Delta 2")
    assert document["soc_min"] == stated["bms_bmsStatus.f32ShowSoc"]
    # Each push carries only what changed; the last value of a key wins.
    assert document["raw"]["inv.acInVol"] == 123084  # "123113 then 123084 (mV)"
    assert document["raw"]["bms_bmsStatus.vol"] == 53491  # "53494 then 53491 (mV)"
    assert document["raw"]["inv.acInAmp"] == stated["inv.acInAmp"]
    assert document["ac_in_v"] == pytest.approx(123.1, abs=0.05)


def test_raw_fields_of_a_protobuf_station_print_as_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, str(CAPTURES / "pb01_river3_getreply_maodijim.bin"), "--raw")
    assert code == 0
    raw = json.loads(out)["raw"]
    # Repeated fields become lists; every value survives the JSON round trip.
    assert any(isinstance(value, list) for value in raw.values())
    assert raw["display.flow_info_ac_in"] == 2


def test_message_types_it_does_not_know_are_counted(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(capsys, str(CAPTURES / "pb07_powerstream_heartbeat_idle_iobroker.hex"))
    assert code == 0
    assert json.loads(out)["unknown_types"]


def test_several_files_print_a_list_in_the_order_given(capsys: pytest.CaptureFixture[str]) -> None:
    files = [
        str(CAPTURES / "pb05_deltapro3_getreply_tolwi270_via_nextaltair.b64"),
        str(CAPTURES / "js01_delta2_getreply_latestQuotas_iobroker.json"),
    ]
    code, out, _ = run_main(capsys, *files)
    assert code == 0
    documents = json.loads(out)
    assert [d["file"] for d in documents] == files
    assert [d["soc_min"] for d in documents] == [35.0, 86.8]


def test_a_missing_file_is_named_and_the_others_still_print(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    missing = tmp_path / "not-there.hex"
    good = str(CAPTURES / "pb01_river3_getreply_maodijim.hex")
    code, out, err = run_main(capsys, str(missing), good)
    assert code == 1
    assert f"{missing}: cannot read: No such file or directory" in err
    assert json.loads(out)["model"] == "River 3"


@pytest.mark.parametrize(
    ("content", "error"),
    [
        (b'{"params": {"pd.soc": 5}\n{broken', "invalid JSON"),
        (b"[]", "empty input"),
        (b'[1, "two", null]', "empty input"),
        (b'{"unrelated": true}', "cannot decode"),
        (b"\x00\x01\x02 not protobuf", "cannot decode"),
    ],
)
def test_input_that_is_no_payload_fails_with_a_reason_and_prints_nothing(
    capsys: pytest.CaptureFixture[str], tmp_path: Path, content: bytes, error: str
) -> None:
    path = tmp_path / "input"
    path.write_bytes(content)
    code, out, err = run_main(capsys, str(path))
    assert code == 1
    assert out == ""
    assert err.startswith(f"{path}: cannot decode: ")
    assert error in err


def test_a_bare_inner_payload_is_not_mistaken_for_a_message(
    capsys: pytest.CaptureFixture[str],
) -> None:
    # pb02 is the protobuf inside an envelope, without the envelope a station sends.
    code, out, err = run_main(
        capsys, str(CAPTURES / "pb02_river3plus_cmsheartbeat_iob326.pdata_decrypted.hex")
    )
    assert code == 1
    assert "no known message type" in err
    assert out == ""


def test_a_list_of_json_messages_is_read_as_one_message_each(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    reply = json.loads((CAPTURES / "js01_delta2_getreply_latestQuotas_iobroker.json").read_text())
    path = tmp_path / "list.json"
    path.write_text(json.dumps([reply, "ignored: not an object"]))
    code, out, _ = run_main(capsys, str(path), "--model", "DELTA 2")
    assert code == 0
    assert json.loads(out)["model"] == "Delta 2"


def test_bytes_fields_print_as_hex() -> None:
    assert decode._jsonable(b"\x01\xab") == "01ab"
    assert decode._jsonable((b"\xff", 3)) == ["ff", 3]


def test_stdin_is_read_with_a_dash(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    data = (CAPTURES / "pb03_delta3plus_getreply_iobroker.hex").read_bytes()
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(data)))
    code, out, _ = run_main(capsys, "-", "--model", "Delta 3 Plus")
    assert code == 0
    document = json.loads(out)
    assert (document["file"], document["model"]) == ("-", "Delta 3 Plus")


def test_run_as_a_module_exits_with_the_result(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(sys, "argv", [MODULE, str(CAPTURES / "pb01_river3_getreply_maodijim.hex")])
    monkeypatch.delitem(sys.modules, MODULE, raising=False)
    with pytest.raises(SystemExit) as exited:
        runpy.run_module(MODULE, run_name="__main__")
    assert exited.value.code == 0
    assert json.loads(capsys.readouterr().out)["model"] == "River 3"


def test_no_file_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exited:
        decode.main([])
    assert exited.value.code == 2
    assert "FILE" in capsys.readouterr().err
