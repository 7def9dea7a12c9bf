"""Audit review speed on a generated 1,000,000-event log: `audit query` vs jq, and summary / rbac-gen.

Generates the log with bench/audit_events.py (upstream format, both stages per request), then in
each round, interleaved so machine noise hits both alike:
  securekube audit query LOG --user alice --verb get --resource secrets -o jsonl
  jq -c 'select(<the same conditions, one event per request>)' LOG
and checks both selected the same requests (same auditIDs). Then times `audit summary` and
`audit rbac-gen --user alice`. Prints a markdown table of medians (wall clock and CPU seconds).
Targets (issue 5): query at least 3x faster than jq; summary and rbac-gen under 30 s each.

Run: .venv/bin/python bench/audit_review.py [--events 1000000] [--rounds 3] [--log EXISTING.log]
Needs jq (apt-get install -y jq).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
import audit_events  # noqa: E402  (the generator next to this script)

USER, VERB, RESOURCE = "alice", "get", "secrets"
# One event per request, as `audit query` shows by default: the final stage. (The generated log has
# a final stage for every request, so this equals query's "final, else latest" rule here.)
JQ_FILTER = (f'select((.user.username == "{USER}" or .impersonatedUser.username == "{USER}") '
             f'and .verb == "{VERB}" and .objectRef.resource == "{RESOURCE}" '
             f'and (.stage == "ResponseComplete" or .stage == "Panic"))')
SECUREKUBE = [sys.executable, "-m", "securekube.cli.main", "audit"]


def timed(command: list[str], out_path: Path) -> tuple[float, float]:
    """(wall seconds, CPU seconds of the child) for one run, its stdout in out_path; fails loudly."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    with open(out_path, "wb") as out:
        result = subprocess.run(command, stdout=out, stderr=subprocess.PIPE, check=False)
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command[:6])} ... failed ({result.returncode}):\n{result.stderr.decode()}")
    return wall, (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def audit_ids(path: Path) -> list[str]:
    return sorted(json.loads(line)["auditID"] for line in path.read_text().splitlines() if line)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=1_000_000)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--log", type=Path, help="use this log instead of generating one")
    args = parser.parse_args(argv)
    jq = shutil.which("jq")
    if jq is None:
        raise SystemExit("jq is not installed (apt-get install -y jq)")

    with tempfile.TemporaryDirectory(prefix="audit-bench-") as tmp:
        work = Path(tmp)
        log = args.log
        if log is None:
            log = work / "audit.log"
            start = time.perf_counter()
            audit_events.write(str(log), args.events)
            print(f"generated {args.events:,} events ({log.stat().st_size / 1e6:.0f} MB) in "
                  f"{time.perf_counter() - start:.0f} s", file=sys.stderr)
        commands = {
            "query": SECUREKUBE + ["query", str(log), "--user", USER, "--verb", VERB, "--resource", RESOURCE,
                                   "-o", "jsonl"],
            "jq": [jq, "-c", JQ_FILTER, str(log)],
            "summary": SECUREKUBE + ["summary", str(log)],
            "rbac-gen": SECUREKUBE + ["rbac-gen", str(log), "--user", USER],
        }
        times: dict[str, list[tuple[float, float]]] = {name: [] for name in commands}
        for round_number in range(args.rounds):
            for name, command in commands.items():
                times[name].append(timed(command, work / f"{name}.out"))
                print(f"round {round_number + 1} {name}: {times[name][-1][0]:.2f} s", file=sys.stderr)
            ours, theirs = audit_ids(work / "query.out"), audit_ids(work / "jq.out")
            if ours != theirs:
                raise SystemExit(f"query and jq disagree: {len(ours)} vs {len(theirs)} events")
        selected = len(ours)

    def median(name: str, index: int) -> float:
        return statistics.median(t[index] for t in times[name])

    print(f"\nAudit review on {args.events if args.log is None else 'the given'} events "
          f"({selected} selected by both query and jq), {args.rounds} interleaved rounds, medians.\n")
    print(f"Machine: {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}, "
          f"{subprocess.run([jq, '--version'], capture_output=True, text=True).stdout.strip()}\n")
    print("| command | wall s (median) | wall s (min-max) | CPU s (median) | target |")
    print("|---|---:|---:|---:|---|")
    targets = {"query": "≥ 3× faster than jq", "jq": "", "summary": "< 30 s", "rbac-gen": "< 30 s"}
    for name in commands:
        walls = [t[0] for t in times[name]]
        print(f"| {name} | {median(name, 0):.2f} | {min(walls):.2f}-{max(walls):.2f} | {median(name, 1):.2f} | "
              f"{targets[name]} |")
    print(f"\nquery vs jq: {median('jq', 0) / median('query', 0):.1f}× faster (wall), "
          f"{median('jq', 1) / median('query', 1):.1f}× less CPU")
    print(f"command: .venv/bin/python bench/audit_review.py --events {args.events} --rounds {args.rounds}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
