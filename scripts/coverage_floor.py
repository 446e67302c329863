"""Fail when a module of the integration is covered below the floor (95 %).

Run by scripts/test after a whole run (the coverage data is in .coverage):

    .venv/bin/python scripts/coverage_floor.py [--floor 95]

Statement coverage per file, as `coverage report` computes it; generated
protobuf modules are omitted by pyproject's [tool.coverage.run].
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys

import coverage

ROOT = Path(__file__).resolve().parent.parent


def module_coverage(data_file: Path) -> dict[str, float]:
    cov = coverage.Coverage(data_file=str(data_file), config_file=str(ROOT / "pyproject.toml"))
    cov.load()
    figures: dict[str, float] = {}
    for measured in sorted(cov.get_data().measured_files()):
        path = Path(measured)
        if path.name.endswith("_pb2.py"):
            continue
        _, statements, _, missing, _ = cov.analysis2(measured)
        if statements:
            name = str(path.relative_to(ROOT)) if path.is_relative_to(ROOT) else measured
            figures[name] = 100.0 * (len(statements) - len(missing)) / len(statements)
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--floor", type=float, default=95.0)
    parser.add_argument("--data-file", type=Path, default=ROOT / ".coverage")
    args = parser.parse_args()
    figures = module_coverage(args.data_file)
    if not figures:
        print("coverage floor: no coverage data", file=sys.stderr)
        return 1
    below = {name: pct for name, pct in figures.items() if pct < args.floor}
    lowest = min(figures, key=figures.__getitem__)
    if below:
        print(f"coverage floor: {len(below)} module(s) under {args.floor:g} %:")
        for name, pct in sorted(below.items(), key=lambda item: item[1]):
            print(f"  {pct:5.1f} %  {name}")
        return 1
    print(
        f"coverage floor: all {len(figures)} modules at {args.floor:g} % or more "
        f"(lowest: {lowest}, {figures[lowest]:.1f} %)"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
