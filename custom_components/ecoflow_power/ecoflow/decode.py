"""Decode captured EcoFlow payloads from the command line.

    python -m custom_components.ecoflow_power.ecoflow.decode FILE... [--raw]

Each FILE (or "-" for stdin) may hold raw protobuf bytes, hex, base64 or JSON
(one object, or one object per line for pushes, merged in order). Prints the
normalized PowerState as JSON; exits 1 when nothing in a file decodes.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
import json
import sys
from typing import Any

from .models import identify_model
from .state import MessageSource
from .tracker import DeviceTracker

_NOW = 0.0  # captures carry no trustworthy clock; all messages count as "now"
_NEVER_STALE = float("inf")


def _messages(data: bytes) -> list[bytes | dict[str, Any]]:
    """Split a file into messages: JSON lines, one JSON document, or one binary payload."""
    text = data.lstrip()
    if text[:1] in (b"{", b"["):
        try:
            document = json.loads(data)
        except ValueError:
            lines = [line for line in data.splitlines() if line.strip()]
            return [json.loads(line) for line in lines]
        if isinstance(document, list):
            return [item for item in document if isinstance(item, dict)]
        return [document]
    return [data]


def _serial_hint(messages: Sequence[bytes | dict[str, Any]]) -> str | None:
    # A throwaway tracker for an unknown device: it records any serial it sees.
    probe = DeviceTracker("", identify_model("", None))
    for message in messages:
        probe.ingest(message, MessageSource.GET_REPLY, _NOW)
    return probe.payload_sn


def decode_file(
    data: bytes, *, sn: str | None, model_name: str | None, raw: bool
) -> tuple[dict[str, Any] | None, str | None]:
    """(output document, error text)."""
    try:
        messages = _messages(data)
    except ValueError as err:
        return None, f"invalid JSON: {err}"
    if not messages:
        return None, "empty input"
    serial = sn or _serial_hint(messages) or ""
    model = identify_model(serial, model_name)
    tracker = DeviceTracker(serial, model)
    for message in messages:
        tracker.ingest(message, MessageSource.GET_REPLY, _NOW)
    stats = tracker.stats
    if stats.decoded == 0:
        return None, stats.last_error or "no known message type in input"
    document: dict[str, Any] = tracker.snapshot(_NOW, _NEVER_STALE).to_dict()
    document.pop("seen_at", None)
    document.pop("updated_at", None)
    document["family"] = str(model.family)
    if stats.unknown_types:
        document["unknown_types"] = dict(stats.unknown_types)
    if raw:
        document["raw"] = {key: _jsonable(value) for key, value in tracker.raw_fields().items()}
    return document, None


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, tuple):
        return [_jsonable(item) for item in value]
    return value


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m custom_components.ecoflow_power.ecoflow.decode",
        description="Decode EcoFlow payloads (protobuf raw/hex/base64 or JSON) to PowerState JSON.",
    )
    parser.add_argument("files", nargs="+", metavar="FILE", help='payload file, "-" for stdin')
    parser.add_argument("--sn", help="device serial (default: taken from the payload)")
    parser.add_argument("--model", help='product name hint, e.g. "River 3 Plus"')
    parser.add_argument("--raw", action="store_true", help="also print every decoded raw field")
    args = parser.parse_args(argv)

    failures = 0
    results: list[dict[str, Any]] = []
    for name in args.files:
        try:
            if name == "-":
                data = sys.stdin.buffer.read()
            else:
                with open(name, "rb") as handle:
                    data = handle.read()
        except OSError as err:
            print(f"{name}: cannot read: {err.strerror}", file=sys.stderr)
            failures += 1
            continue
        document, error = decode_file(data, sn=args.sn, model_name=args.model, raw=args.raw)
        if document is None:
            print(f"{name}: cannot decode: {error}", file=sys.stderr)
            failures += 1
            continue
        document["file"] = name
        results.append(document)
    if results:
        output = results[0] if len(results) == 1 else results
        print(json.dumps(output, indent=2, ensure_ascii=False, default=str))
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
