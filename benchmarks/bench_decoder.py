"""Microseconds per message for each capture (a script, not a test).

    .venv/bin/python benchmarks/bench_decoder.py [--tree PATH]

"decode" = envelope + protobuf/JSON decode only; "ingest" = the whole
DeviceTracker.ingest (decode, filters, normalize, grid, change detection) of
the same message arriving again and again, as steady telemetry does;
"ratio" = ingest / decode. Targets: < 20 us to decode a DisplayPropertyUpload
push; ingest at most 2.5 x decode (issue 16).

--tree PATH measures the code of another checkout (e.g. the commit before a
change, `git worktree add /work/wt/baseline COMMIT`) with this script and
this checkout's captures, so both figures come from the same run and method.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
import sys
import timeit

# The code to measure goes first on the import path (see --tree in main()).
sys.path.insert(
    0,
    str(
        Path(sys.argv[sys.argv.index("--tree") + 1]).resolve()
        if "--tree" in sys.argv[1:-1]
        else Path(__file__).resolve().parent.parent
    ),
)

from custom_components.ecoflow_power.ecoflow.envelope import parse_envelope, payload_bytes
from custom_components.ecoflow_power.ecoflow.json_decoder import decode_json
from custom_components.ecoflow_power.ecoflow.models import DeviceFamily, identify_model
from custom_components.ecoflow_power.ecoflow.protobuf_decoder import decode_frame
from custom_components.ecoflow_power.ecoflow.state import MessageSource
from custom_components.ecoflow_power.ecoflow.tracker import DeviceTracker

CAPTURES = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "captures"
SERIALS = {
    "pb01": "R651PC0CXGCA0798", "pb03": "P351X", "pb04": "P231X", "pb05": "MR51X",
    "pb06": "HW51X", "pb07": "HW51X", "js01": "R331X", "js02": "DCEBZX", "js03": "R611X",
    "js04": "R621X", "js05": "R351X", "js05b": "R351X", "js06": "R351X", "js07": "R331X",
    "js08": "HW51X",
}  # fmt: skip


def per_call_us(func: object, number: int) -> float:
    timer = timeit.Timer(func)  # type: ignore[arg-type]
    best = min(timer.repeat(repeat=5, number=number))
    return best / number * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--tree", type=Path, help="checkout whose code to measure")
    parser.parse_args()
    print(f"code: {Path(sys.path[0])}")
    print(f"{'capture':58} {'decode us':>10} {'ingest us':>10} {'ratio':>6}")
    for path in sorted(CAPTURES.iterdir()):
        if path.name.endswith(".source.json") or "pdata_decrypted" in path.name:
            continue
        stem = path.name.split("_")[0]
        model = identify_model(SERIALS.get(stem, ""), None)
        if path.suffix in (".json", ".jsonl"):
            lines = path.read_text().splitlines() if path.suffix == ".jsonl" else [path.read_text()]
            messages: list[object] = [json.loads(line) for line in lines if line.strip()]
            message = messages[-1]

            def decode(message: object = message, family: DeviceFamily = model.family) -> None:
                decode_json(message, family)
        else:
            # MQTT delivers raw bytes; hex/base64 are only how the captures were
            # published, so convert once outside the timed loop.
            payload = payload_bytes(path.read_bytes())
            message = payload

            def decode(payload: bytes = payload, family: DeviceFamily = model.family) -> None:
                for frame in parse_envelope(payload):
                    decode_frame(frame, family)

        tracker = DeviceTracker("bench", model)
        clock = [0.0]

        def ingest(
            message: object = message, tracker: DeviceTracker = tracker, clock: list[float] = clock
        ) -> None:
            # A new timestamp per call, as live pushes would have.
            clock[0] += 1.0
            tracker.ingest(message, MessageSource.PROPERTY, clock[0])  # type: ignore[arg-type]

        decode_us = per_call_us(decode, 2000)
        ingest_us = per_call_us(ingest, 500)
        print(f"{path.name:58} {decode_us:10.1f} {ingest_us:10.1f} {ingest_us / decode_us:6.2f}")


if __name__ == "__main__":
    main()
