"""API server benchmark: GET and CREATE of config maps and secrets, encryption at rest on vs off.

Starts two real `securekube up` servers side by side (secrets encrypted with secretbox, and the
same with an identity-only EncryptionConfiguration), drives each with 1, 16 and 64 keep-alive
mTLS clients, alternating the two servers round by round, and prints a markdown report (also
written into a marked section of --out). Exit status: 0 when every server stayed up and every
request succeeded; 1 when a server failed to start, died, or is not configured as expected; 3
when the run completed but some requests failed (the report shows which).

    .venv/bin/python bench/apiserver.py [--quick] [--out docs/benchmarks.md]
"""
from __future__ import annotations

import argparse
import base64
import datetime
import http.client
import json
import os
import shlex
import sys
import tempfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from loadgen import LoadResult, Window, Workload, client_context, run_load
from report import (Comparison, Scenario, check_targets, compare, machine_lines, percentile, results_section,
                    source_revision, write_document)
from servers import DEFAULT_LAUNCHER, ClientFiles, ServerFailed, ServerProcess, ServerSpec, with_servers

REPO = Path(__file__).resolve().parent.parent
NAMESPACE = "default"
FIXTURE_NAME = "bench-get"  # the one object of each kind that the GET scenarios read
PREFIX_MARKER = "00000000"  # replaced by random hex in every CREATE body
SERVERS = (ServerSpec("on", encrypt_secrets=True), ServerSpec("off", encrypt_secrets=False))
EXIT_SERVER_FAILED = 1
EXIT_REQUEST_ERRORS = 3


@dataclass(frozen=True)
class Schedule:
    """How long and how often each scenario runs against each server."""

    rounds: int
    window: Window
    clients: tuple[int, ...]
    load_processes: int

    def describe(self) -> str:
        return (f"{self.rounds} round(s) per scenario and server, each {self.window.warmup:g} s warm-up + "
                f"{self.window.measure:g} s measured, on/off order alternating per round")


FULL = Schedule(rounds=5, window=Window(warmup=0.5, measure=2.5), clients=(1, 16, 64), load_processes=2)
QUICK = Schedule(rounds=1, window=Window(warmup=0.2, measure=0.5), clients=(1, 16, 64), load_processes=2)


def _object(kind: str, metadata: dict[str, str]) -> dict[str, object]:
    if kind == "Secret":
        password = base64.b64encode(b"benchmark-password").decode("ascii")
        return {"apiVersion": "v1", "kind": "Secret", "metadata": metadata, "type": "Opaque",
                "data": {"password": password}}
    return {"apiVersion": "v1", "kind": "ConfigMap", "metadata": metadata, "data": {"mode": "benchmark"}}


KINDS = {"configmaps": "ConfigMap", "secrets": "Secret"}


def workload(scenario: Scenario) -> Workload:
    collection = f"/api/v1/namespaces/{NAMESPACE}/{scenario.resource}"
    if scenario.verb == "GET":
        return Workload("GET", f"{collection}/{FIXTURE_NAME}")
    # A fresh generateName prefix per request: a full run creates tens of thousands of objects, and
    # under one prefix the server's 5-character random suffix then collides now and then (409
    # AlreadyExists; upstream retries those since Kubernetes 1.32, KEP-4420). That is a finding
    # for the server, not something a throughput figure should mix in.
    body = json.dumps(_object(KINDS[scenario.resource], {"generateName": f"bench-{PREFIX_MARKER}-"})).encode()
    return Workload("POST", collection, body, unique_marker=PREFIX_MARKER.encode())


def scenarios(clients: Sequence[int]) -> list[Scenario]:
    return [Scenario(verb, resource, n) for verb in ("GET", "CREATE") for resource in KINDS for n in clients]


# -- set-up -------------------------------------------------------------------------------------
def _request(files: ClientFiles, method: str, path: str, body: bytes | None = None) -> tuple[int, str]:
    """One request on its own connection; returns (status, "TLS version cipher")."""
    conn = http.client.HTTPSConnection(files.host, files.port, context=client_context(files), timeout=30)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "application/json"})
        response = conn.getresponse()
        response.read()
        tls = f"{conn.sock.version()} {conn.sock.cipher()[0]}"  # type: ignore[union-attr]
        return response.status, tls
    finally:
        conn.close()


def create_fixtures(server: ServerProcess) -> str:
    """Creates the objects the GET scenarios read and checks how the secret was stored; returns the TLS used."""
    tls = ""
    for resource, kind in KINDS.items():
        body = json.dumps(_object(kind, {"name": FIXTURE_NAME})).encode()
        status, tls = _request(server.client_files, "POST", f"/api/v1/namespaces/{NAMESPACE}/{resource}", body)
        if status != 201:
            raise ServerFailed(server.spec.label, f"answered HTTP {status} to creating {resource}/{FIXTURE_NAME}")
    server.check_secret_encryption(NAMESPACE, FIXTURE_NAME)
    return tls


# -- the run ------------------------------------------------------------------------------------
def run_rounds(servers: dict[str, ServerProcess], plan: Sequence[Scenario], rounds: int, window: Window,
               load_processes: int) -> dict[Scenario, dict[str, list[LoadResult]]]:
    """Every round runs every scenario on every server back to back; which server goes first rotates
    per round (with two servers: alternates), so drift on a shared machine hits them alike."""
    runs: dict[Scenario, dict[str, list[LoadResult]]] = {s: {label: [] for label in servers} for s in plan}
    labels = list(servers)
    for round_index in range(rounds):
        shift = round_index % len(labels)
        order = labels[shift:] + labels[:shift]
        for scenario in plan:
            for label in order:
                server = servers[label]
                result = run_load(server.client_files, workload(scenario), scenario.clients, load_processes, window,
                                  server.cpu_seconds)
                if not server.alive():
                    raise ServerFailed(label, f"died during {scenario.operation} ×{scenario.clients}:\n"
                                              f"{server.log_tail()}")
                runs[scenario][label].append(result)
                errors = sum(result.errors.values())
                print(f"round {round_index + 1}/{rounds} {scenario.operation:18} ×{scenario.clients:<3} {label:15}: "
                      f"{result.requests_per_second:7.0f} req/s p50 {percentile(result.latencies, 0.5) * 1000:6.2f} ms"
                      f"{f'  {errors} errors' if errors else ''}", file=sys.stderr, flush=True)
    return runs


def compare_servers(servers: dict[str, ServerProcess], schedule: Schedule) -> list[Comparison]:
    """The on/off comparison of every scenario of the schedule."""
    plan = scenarios(schedule.clients)
    runs = run_rounds(servers, plan, schedule.rounds, schedule.window, schedule.load_processes)
    on, off = servers
    return [compare(s, runs[s][on], runs[s][off]) for s in plan]


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                     formatter_class=argparse.RawDescriptionHelpFormatter, epilog=(
                                         "exit status: 0 all good; 1 a server failed or is misconfigured; "
                                         "3 some requests failed"))
    parser.add_argument("--quick", action="store_true", help="smoke run: one short round (well under a minute)")
    parser.add_argument("--out", type=Path, help="markdown file to write the results section into")
    parser.add_argument("--rounds", type=int, help="rounds per scenario and server (default 5, quick 1)")
    parser.add_argument("--seconds", type=float, help="measured seconds per run (default 2.5, quick 0.5)")
    parser.add_argument("--clients", help="comma-separated client counts (default 1,16,64)")
    parser.add_argument("--load-processes", type=int, help="load generator processes per run (default 2)")
    parser.add_argument("--server-script", type=Path,
                        help="run this Python script instead of the securekube CLI for both servers (it receives the "
                             "CLI's arguments: up --data-dir DIR --port N); to measure an experimental change")
    parser.add_argument("--keep-data", action="store_true", help="keep the servers' data directories (printed)")
    args = parser.parse_args(argv)
    if args.rounds is not None and args.rounds < 1 or args.seconds is not None and args.seconds <= 0:
        parser.error("--rounds and --seconds must be positive")
    if args.load_processes is not None and args.load_processes < 1:
        parser.error("--load-processes must be positive")
    if args.clients is not None:
        try:
            args.clients = tuple(int(n) for n in args.clients.split(","))
        except ValueError:
            parser.error("--clients must be comma-separated integers")
        if any(n < 1 for n in args.clients):
            parser.error("--clients must be positive")
    return args


def schedule_from(args: argparse.Namespace) -> Schedule:
    base = QUICK if args.quick else FULL
    return Schedule(rounds=args.rounds or base.rounds,
                    window=Window(base.window.warmup, args.seconds or base.window.measure),
                    clients=args.clients or base.clients, load_processes=args.load_processes or base.load_processes)


def command_line(argv: Sequence[str], script: str = __file__) -> str:
    """The command that reproduces this run, relative to the repository (for the report)."""
    python = os.path.relpath(sys.executable, REPO) if sys.executable.startswith(str(REPO)) else sys.executable
    return shlex.join([python, os.path.relpath(Path(script).resolve(), REPO), *argv])


def main(argv: Sequence[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    args = parse_args(argv)
    schedule = schedule_from(args)
    started = datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
    launcher = (str(args.server_script.resolve()),) if args.server_script else DEFAULT_LAUNCHER
    data_root = Path(tempfile.mkdtemp(prefix="securekube-bench-"))
    tls = ""

    def measure(servers: dict[str, ServerProcess]) -> list[Comparison]:
        nonlocal tls
        for server in servers.values():
            tls = create_fixtures(server)
        print(f"servers ready: {', '.join(f'{s.spec.label} on port {s.port}' for s in servers.values())}",
              file=sys.stderr, flush=True)
        return compare_servers(servers, schedule)

    found, problems = with_servers(SERVERS, data_root, measure, launcher=launcher, keep_data=args.keep_data)
    comparisons = found or []
    if problems:
        for problem in problems:
            print(f"bench: error: {problem}", file=sys.stderr)
        return EXIT_SERVER_FAILED

    loadgen = (f"bench/loadgen.py (Python asyncio; {tls}; one keep-alive connection per client, clients "
               f"split over up to {schedule.load_processes} processes)")
    section = results_section(comparisons, check_targets(comparisons), command=command_line(argv), started=started,
                              revision=source_revision(REPO), machine=machine_lines(data_root.parent),
                              settings=schedule.describe(), loadgen=loadgen,
                              server=" ".join(["python", *launcher, "up", "--no-node"]))
    print(section)
    if args.out is not None:
        write_document(args.out, section)
        print(f"results written to {args.out}", file=sys.stderr)
    if any(c.on.error_count or c.off.error_count for c in comparisons):
        print("bench: error: some requests failed; see the errors column", file=sys.stderr)
        return EXIT_REQUEST_ERRORS
    return 0


if __name__ == "__main__":
    sys.exit(main())
