"""Drive a RUNNING agent (any platform) through the protocol's test vectors.

For agents that cannot run in the test suite (the Windows PowerShell agent):
start the agent in dry-run with the pinned test secret, then from any machine
with Python and paho-mqtt:

    python -m tests.agents.drive_agent --host BROKER --agent-id pc-study \\
        [--port 1883] [--username U --password P]

It runs every `commands[]` case of tests/fixtures/protocol/vectors.json whose
secret matches the agent's (`--no-secret` for an agent without one), the way
tests/agents/test_agents.py does against the Linux and macOS agents, and
prints PASS/FAIL per case. Cases answered "nothing_pending" run first, before
any shutdown has executed. The agent MUST be in dry-run.
"""

from __future__ import annotations

import argparse
from pathlib import Path
import sys
import tempfile
from types import SimpleNamespace

from tests.agents.conftest import SECRET, Harness
from tests.agents.test_agents import _load_vectors, _run_vector_case


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--host", required=True)
    parser.add_argument("--port", type=int, default=1883)
    parser.add_argument("--agent-id", required=True)
    parser.add_argument("--username")
    parser.add_argument("--password")
    parser.add_argument("--no-secret", action="store_true", help="the agent has no secret")
    args = parser.parse_args()
    with_secret = not args.no_secret
    cases = [c for c in _load_vectors()["commands"] if bool(c["secret"]) == with_secret]
    cases.sort(
        key=lambda c: (
            0 if (c["message"] or {}).get("action") == "abort" and not c["pending_shutdown"] else 1
        )
    )
    broker = SimpleNamespace(host=args.host, port=args.port)
    with tempfile.TemporaryDirectory() as tmp:
        h = Harness(
            "remote",
            broker,
            Path(tmp),
            agent_id=args.agent_id,
            username=args.username,
            password=args.password,
        )
        failures = 0
        try:
            print(f"secret: {SECRET if with_secret else '(none)'}; {len(cases)} cases")
            for n, case in enumerate(cases):
                problems = _run_vector_case(h, case, n)
                print(("PASS " if not problems else "FAIL ") + case["name"])
                for problem in problems:
                    print("     " + problem)
                failures += bool(problems)
        finally:
            h.client.disconnect()
            h.client.loop_stop()
    print(f"{len(cases) - failures}/{len(cases)} passed")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
