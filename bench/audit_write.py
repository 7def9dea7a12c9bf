"""Audit log write path: `AuditLog.append` throughput and latency with 1, 16 and 64 concurrent writers.

Each writer appends one event per call (as the API server does per request) and waits until it is
durable; group commit lets concurrent writers share one fdatasync. Two event sizes: a Metadata
event (~0.6 KB) and a RequestResponse event carrying a ~4 KB object. Rounds interleave the
configurations so machine noise hits them alike; figures are medians over rounds.

Run: .venv/bin/python bench/audit_write.py [--seconds S] [--rounds R] [--dir DIR]
"""
from __future__ import annotations

import argparse
import os
import platform
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securekube.audit.log import AuditLog

WRITERS = (1, 16, 64)


def metadata_event(n: int) -> dict[str, Any]:
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata",
            "auditID": f"8d6c3f0e-1a2b-4c3d-9e8f-{n:012d}", "stage": "ResponseComplete",
            "requestURI": "/api/v1/namespaces/default/configmaps/app-config?fieldManager=kubectl",
            "verb": "update",
            "user": {"username": "alice", "groups": ["developers", "system:authenticated"]},
            "sourceIPs": ["10.0.0.17"], "userAgent": "kubectl/v1.30.2 (linux/amd64) kubernetes/39683505",
            "objectRef": {"resource": "configmaps", "namespace": "default", "name": "app-config",
                          "apiVersion": "v1"},
            "responseStatus": {"metadata": {}, "code": 200},
            "requestReceivedTimestamp": "2024-01-02T03:04:05.123456Z",
            "stageTimestamp": "2024-01-02T03:04:05.127890Z",
            "annotations": {"authorization.k8s.io/decision": "allow",
                            "authorization.k8s.io/reason": 'RBAC: allowed by RoleBinding "dev/default"'}}


def request_response_event(n: int) -> dict[str, Any]:
    body = {"kind": "Deployment", "apiVersion": "apps/v1",
            "metadata": {"name": "web", "namespace": "default", "labels": {f"label-{i}": "x" * 20 for i in range(20)}},
            "spec": {"replicas": 3, "template": {"spec": {"containers": [
                {"name": f"c{i}", "image": "registry.example/app:1.2.3", "args": ["--flag"] * 10,
                 "env": [{"name": f"VAR_{j}", "value": "v" * 16} for j in range(5)]} for i in range(4)]}}}}
    event = metadata_event(n)
    event.update(level="RequestResponse", requestObject=body, responseObject=body)
    return event


EVENTS = {"Metadata (~0.6 KB)": metadata_event, "RequestResponse (~4 KB)": request_response_event}


def run_once(directory: Path, key: Ed25519PrivateKey, writers: int, make_event: Any, seconds: float) -> dict[str, float]:
    latencies: list[list[float]] = [[] for _ in range(writers)]
    stop = threading.Event()
    ready = threading.Barrier(writers + 1)
    with AuditLog(directory / "audit.log", signing_key=key, max_size_bytes=0) as log:
        def write(index: int) -> None:
            mine, n = latencies[index], 0
            ready.wait()
            while not stop.is_set():
                event = make_event(index * 10_000_000 + n)
                started = time.perf_counter()
                log.append([event])
                mine.append(time.perf_counter() - started)
                n += 1

        threads = [threading.Thread(target=write, args=(i,)) for i in range(writers)]
        for thread in threads:
            thread.start()
        commits_before = log.stats().commits
        ready.wait()
        started = time.perf_counter()
        time.sleep(seconds)
        stop.set()
        for thread in threads:
            thread.join()
        elapsed = time.perf_counter() - started
        commits = log.stats().commits - commits_before
    every = sorted(x for per in latencies for x in per)
    return {
        "events_per_s": len(every) / elapsed,
        "p50_ms": every[len(every) // 2] * 1000,
        "p99_ms": every[min(len(every) - 1, int(len(every) * 0.99))] * 1000,
        "appends_per_fsync": len(every) / max(commits, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seconds", type=float, default=2.0, help="measured time per configuration and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--dir", type=Path, default=None, help="where to write the logs (default: a temp dir)")
    args = parser.parse_args()
    key = Ed25519PrivateKey.generate()
    configs = [(name, writers) for name in EVENTS for writers in WRITERS]
    results: dict[tuple[str, int], list[dict[str, float]]] = {c: [] for c in configs}
    base = args.dir or Path(tempfile.mkdtemp(prefix="audit-bench-"))
    base.mkdir(parents=True, exist_ok=True)
    for round_index in range(args.rounds):
        order = configs[round_index % len(configs):] + configs[:round_index % len(configs)]
        for name, writers in order:
            directory = Path(tempfile.mkdtemp(dir=base))
            results[(name, writers)].append(run_once(directory, key, writers, EVENTS[name], args.seconds))
            for path in directory.iterdir():
                path.unlink()
            directory.rmdir()
    if args.dir is None:
        base.rmdir()
    print(f"Command: .venv/bin/python bench/audit_write.py --seconds {args.seconds} --rounds {args.rounds}")
    print(f"- {platform.processor() or platform.machine()}, nproc = {os.cpu_count()}, "
          f"Python {platform.python_version()}, Linux {platform.release()}")
    where = base if args.dir else f"a temporary directory under {tempfile.gettempdir()}"
    print(f"- logs in {where} (every append waits for write + fdatasync; concurrent appends share one)")
    print()
    print("| event | writers | events/s | p50 ms | p99 ms | appends per fdatasync |")
    print("|---|---:|---:|---:|---:|---:|")
    for name, writers in configs:
        rows = results[(name, writers)]

        def median(field: str) -> float:
            return statistics.median(r[field] for r in rows)

        print(f"| {name} | {writers} | {median('events_per_s'):,.0f} | {median('p50_ms'):.2f} | "
              f"{median('p99_ms'):.2f} | {median('appends_per_fsync'):.1f} |")


if __name__ == "__main__":
    main()
