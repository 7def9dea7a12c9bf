"""Audit on the request path: API latency with audit off, at Metadata and at RequestResponse, one run.

Three real `securekube up` servers run side by side, identical except for their audit policy (one
rule for every request: `level: None`, `Metadata` or `RequestResponse`). Each is driven in turn with
the same CREATE and GET workloads (keep-alive mTLS clients as the cluster admin); the order of the
three rotates every round, so drift on a shared machine hits them alike. With audit on, a write is
acknowledged only after its event is durable on disk (fdatasync), so CREATE shows the full cost.

Before measuring, each server's audit log is checked to really record at its level (and "off" to
record nothing), so a misconfigured run stops instead of printing a plausible table.

    .venv/bin/python bench/audit_requests.py [--quick] [--rounds N] [--seconds S] [--out docs/benchmarks.md]

Exit status: 0 all good; 1 a server failed or is misconfigured; 3 some requests failed.
"""
from __future__ import annotations

import argparse
import datetime
import json
import math
import sys
import tempfile
from collections.abc import Sequence
from pathlib import Path

from apiserver import EXIT_REQUEST_ERRORS, EXIT_SERVER_FAILED, REPO, command_line, create_fixtures, run_rounds
from loadgen import LoadResult, Window
from report import Scenario, Summary, machine_lines, paired_ratio, percentile, source_revision, summarize
from servers import ServerFailed, ServerProcess, ServerSpec, with_servers

LEVELS = ("None", "Metadata", "RequestResponse")
LABELS = {"None": "off", "Metadata": "Metadata", "RequestResponse": "RequestResponse"}
TARGET_ADDED_AT_METADATA = 0.15  # the issue: at most 15 % latency added at Metadata
BEGIN_MARKER = "<!-- bench/audit_requests.py: results begin (generated; edits inside are overwritten) -->"
END_MARKER = "<!-- bench/audit_requests.py: results end -->"


def policy_text(level: str) -> str:
    return f"apiVersion: audit.k8s.io/v1\nkind: Policy\nomitStages: [RequestReceived]\nrules:\n  - level: {level}\n"


SPECS = tuple(ServerSpec(LABELS[level], audit_policy=policy_text(level)) for level in LEVELS)


def check_audit_level(server: ServerProcess, level: str) -> None:
    """Fails unless the fixture's create was recorded exactly as the server's policy says."""
    path = server.audit_log_path
    events = [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines()] if path.exists() else []
    creates = [e for e in events if e.get("verb") == "create" and (e.get("objectRef") or {}).get("resource")
               == "configmaps" and e.get("stage") == "ResponseComplete"]
    if level == "None":
        if creates:
            raise ServerFailed(server.spec.label, "recorded a create although its policy is level None")
        return
    if not creates or any(e.get("level") != level for e in creates):
        raise ServerFailed(server.spec.label, f"did not record the fixture's create at level {level}")
    has_bodies = all("requestObject" in e and "responseObject" in e for e in creates)
    if has_bodies != (level == "RequestResponse"):
        raise ServerFailed(server.spec.label, f"records bodies {'with' if has_bodies else 'without'} them at {level}")


def _p50_ratio(runs: Sequence[LoadResult], baseline: Sequence[LoadResult]) -> float:
    return paired_ratio([percentile(r.latencies, 0.5) for r in runs], [percentile(r.latencies, 0.5) for r in baseline])


def _added(ratio: float) -> str:
    return "n/a" if math.isnan(ratio) else f"{(ratio - 1) * 100:+.1f} %"


def results_table(runs: dict[Scenario, dict[str, list[LoadResult]]]) -> tuple[str, list[str]]:
    """The table, and one line per target judged (CREATE at Metadata: p50 added ≤ 15 %)."""
    rows = ["| operation | clients | audit | req/s | p50 ms | p99 ms | p50 added vs off (paired) | errors |",
            "|---|---:|---|---:|---:|---:|---:|---:|"]
    verdicts = []
    for scenario, by_label in runs.items():
        off = by_label["off"]
        for label, results in by_label.items():
            s: Summary = summarize(results)
            added = "—" if label == "off" else _added(_p50_ratio(results, off))
            rows.append(f"| {scenario.operation} | {scenario.clients} | {label} | {s.requests_per_second:,.0f} "
                        f"| {s.p50_ms:.2f} | {s.p99_ms:.2f} | {added} | {s.error_count} |")
        if scenario.verb == "CREATE":
            ratio = _p50_ratio(by_label["Metadata"], off)
            met = ratio - 1 <= TARGET_ADDED_AT_METADATA
            verdicts.append(f"- {scenario.with_clients}, Metadata: p50 added {_added(ratio)} — target ≤ "
                            f"{TARGET_ADDED_AT_METADATA * 100:.0f} %: **{'met' if met else 'MISSED'}**")
    return "\n".join(rows), verdicts


def write_section(path: Path, section: str) -> None:
    """Replaces the text between this benchmark's markers in `path` (appends the block if absent)."""
    block = f"{BEGIN_MARKER}\n{section}\n{END_MARKER}\n"
    text = path.read_text(encoding="utf-8")
    begin, end = text.find(BEGIN_MARKER), text.find(END_MARKER)
    if begin >= 0 and end > begin:
        text = text[:begin] + block + text[end + len(END_MARKER):].lstrip("\n")
    else:
        text = text.rstrip("\n") + "\n\n" + block
    path.write_text(text, encoding="utf-8")


def parse_args(argv: Sequence[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--quick", action="store_true", help="one short round (under a minute)")
    parser.add_argument("--rounds", type=int, default=None, help="rounds (default 5, quick 1)")
    parser.add_argument("--seconds", type=float, default=None, help="measured seconds per run (default 2.5)")
    parser.add_argument("--clients", default="1,16", help="comma-separated client counts (default 1,16)")
    parser.add_argument("--out", type=Path, help="markdown file to write the results section into")
    args = parser.parse_args(argv)
    try:
        args.clients = tuple(int(n) for n in args.clients.split(","))
    except ValueError:
        parser.error("--clients must be comma-separated integers")
    if any(n < 1 for n in args.clients) or (args.rounds or 1) < 1 or (args.seconds or 1) <= 0:
        parser.error("--clients, --rounds and --seconds must be positive")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    rounds = args.rounds or (1 if args.quick else 5)
    window = Window(warmup=0.2 if args.quick else 0.5, measure=args.seconds or (0.5 if args.quick else 2.5))
    plan = [Scenario(verb, "configmaps", n) for verb in ("CREATE", "GET") for n in args.clients]
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    data_root = Path(tempfile.mkdtemp(prefix="securekube-bench-audit-"))

    def measure(servers: dict[str, ServerProcess]) -> dict[Scenario, dict[str, list[LoadResult]]]:
        for level, server in zip(LEVELS, servers.values()):
            create_fixtures(server)
            check_audit_level(server, level)
        return run_rounds(servers, plan, rounds, window, load_processes=2)

    found, problems = with_servers(SPECS, data_root, measure)
    if problems:
        for problem in problems:
            print(f"bench: error: {problem}", file=sys.stderr)
        return EXIT_SERVER_FAILED
    runs = found or {}
    table, verdicts = results_table(runs)
    section = "\n".join([
        "### Results", "",
        f"Command: `{command_line(argv, __file__)}` — started {started}, source `{source_revision(REPO)}`.", "",
        *machine_lines(data_root.parent),
        f"- schedule: {rounds} round(s), each {window.warmup:g} s warm-up + {window.measure:g} s measured per "
        "scenario and server, server order rotating per round", "",
        "Figures are medians over rounds; \"p50 added\" is the median of per-round p50 ratios against the "
        "audit-off server in the same round.", "",
        table, "", *verdicts, ""])
    print(section)
    if args.out is not None:
        write_section(args.out, section)
        print(f"results written to {args.out}", file=sys.stderr)
    errors = sum(summarize(r).error_count for by_label in runs.values() for r in by_label.values())
    return EXIT_REQUEST_ERRORS if errors else 0


if __name__ == "__main__":
    sys.exit(main())
