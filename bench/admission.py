"""Admission latency of a pod create: every shipped admission policy + Pod Security, next to admission off.

Configurations, measured in interleaved rounds so machine noise hits them alike:
  off      an AdmissionChain with no stages (what a request costs when admission is off)
  psa      Pod Security Admission only (namespace enforcing restricted)
  rego     the Rego stage only (every admission policy in policies/, embedded OPA)
  full     the chain the API server runs: OPA mutation, NodeRestriction, Pod Security, OPA validation
Each is timed on an allowed pod (hardened, passes everything) and on a denied one.

With --replay-events N it also replays a synthetic audit log of N events (the fixture log's
requests repeated) through the shipped policies and reports events/s.
Run: .venv/bin/python bench/admission.py [--requests N] [--rounds R] [--replay-events 100000]
Target (issue 4): p99 <= 1 ms added per request by the full chain.
"""
from __future__ import annotations

import argparse
import copy
import json
import os
import platform
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

from securekube.admission.chain import AdmissionChain
from securekube.admission.interfaces import AdmissionError, AdmissionRequest
from securekube.admission.judge import Judge
from securekube.admission.noderestriction import NodeRestriction
from securekube.admission.opa import RegoAdmission
from securekube.admission.podsecurity import PodSecurityAdmission
from securekube.admission.replay import ReplayReport, read_audit_lines, replay
from securekube.authn.interfaces import UserInfo
from securekube.policy import go_runtime
from securekube.policy.embedded import EmbeddedEngineConfig, EmbeddedOpaEngine
from securekube.policy.loader import read_policies

ROOT = Path(__file__).resolve().parents[1]
NAMESPACE = {"apiVersion": "v1", "kind": "Namespace",
             "metadata": {"name": "team-a", "labels": {"pod-security.kubernetes.io/enforce": "restricted"}}}
USER = UserInfo("ada", groups=("developers", "system:authenticated"))


def hardened_pod() -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team-a",
                                                              "labels": {"app": "web"}},
            "spec": {"securityContext": {"runAsNonRoot": True, "runAsUser": 10001,
                                         "seccompProfile": {"type": "RuntimeDefault"}},
                     "containers": [{"name": "web", "image": "localhost/web:1.4.2",
                                     "resources": {"limits": {"cpu": "500m", "memory": "128Mi"}},
                                     "securityContext": {"allowPrivilegeEscalation": False,
                                                         "capabilities": {"drop": ["ALL"]}}}]}}


def bad_pod() -> dict[str, Any]:
    pod = hardened_pod()
    pod["spec"]["containers"][0]["image"] = "nginx:latest"
    pod["spec"]["hostNetwork"] = True
    return pod


def create(pod: dict[str, Any]) -> AdmissionRequest:
    return AdmissionRequest(uid="bench", kind={"group": "", "version": "v1", "kind": "Pod"},
                            resource={"group": "", "version": "v1", "resource": "pods"}, sub_resource="", name="web",
                            namespace="team-a", operation="CREATE", user_info=USER, object=pod, old_object=None,
                            namespace_object=NAMESPACE)


def time_chain(chain: AdmissionChain, request: AdmissionRequest, count: int) -> list[int]:
    clock = time.perf_counter_ns
    samples = []
    for _ in range(count):
        start = clock()
        try:
            chain.admit(request)
        except AdmissionError:
            pass
        samples.append(clock() - start)
    return samples


def percentile(samples: list[int], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))] / 1000


def replay_throughput(rego: RegoAdmission, events: int, workers: int) -> tuple[float, int]:
    lines = (ROOT / "tests" / "fixtures" / "audit-replay" / "cluster-audit.log").read_text().splitlines()
    usable = [line for line in lines if line.startswith('{"kind": "Event"')]
    with tempfile.TemporaryDirectory() as directory:
        log = Path(directory) / "audit.log"
        with log.open("w") as out:
            for index in range(events):
                event = json.loads(usable[index % len(usable)])
                event["auditID"] = f"bench-{index}"
                out.write(json.dumps(event) + "\n")
        report = ReplayReport()
        started = time.perf_counter()
        replay(read_audit_lines([log], report.problems), Judge(rego).judge, report, workers=workers)
        elapsed = time.perf_counter() - started
    return report.events / elapsed, report.replayed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=2000, help="timed requests per configuration and round")
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--replay-events", type=int, default=0)
    parser.add_argument("--workers", type=int, default=2, help="replay workers (engine slots)")
    args = parser.parse_args()
    if go_runtime.needs_restart():  # measure the engine as `securekube up` runs it
        go_runtime.restart_with_engine_gc()

    engine = EmbeddedOpaEngine(EmbeddedEngineConfig(max_concurrent_evaluations=max(1, args.workers)))
    rego = RegoAdmission(engine)
    policies = [p for p in read_policies(ROOT / "policies", engine) if p.is_admission]
    rego.set_policies(policies)
    chains = {
        "off": AdmissionChain([], []),
        "psa": AdmissionChain([], [PodSecurityAdmission()]),
        "rego": AdmissionChain([rego.mutating], [rego.validating]),
        "full": AdmissionChain([rego.mutating], [NodeRestriction(), PodSecurityAdmission(), rego.validating]),
    }
    requests = {"allowed": create(hardened_pod()), "denied": create(bad_pod())}
    for name, chain in chains.items():  # warm-up: prepared queries, worker threads
        for request in requests.values():
            time_chain(chain, copy.deepcopy(request), 200)
    results: dict[tuple[str, str], list[tuple[float, float]]] = {}
    for round_index in range(args.rounds):
        order = list(chains) if round_index % 2 == 0 else list(reversed(chains))
        for name in order:
            for kind, request in requests.items():
                samples = time_chain(chains[name], request, args.requests)
                results.setdefault((name, kind), []).append((percentile(samples, 0.5), percentile(samples, 0.99)))

    print(f"# bench/admission.py --requests {args.requests} --rounds {args.rounds}")
    print(f"# {platform.python_implementation()} {platform.python_version()}, {platform.platform()}, "
          f"{len(policies)} admission policies, GOGC={os.environ.get('GOGC', '(unset)')}, "
          f"GOMEMLIMIT={os.environ.get('GOMEMLIMIT', '(unset)')}")
    print("| chain | pod | p50 µs | p99 µs | p50 added vs off µs | p99 added vs off µs |")
    print("|---|---|---:|---:|---:|---:|")
    for kind in requests:
        off_p50 = statistics.median(p50 for p50, _ in results[("off", kind)])
        off_p99 = statistics.median(p99 for _, p99 in results[("off", kind)])
        for name in chains:
            p50 = statistics.median(v for v, _ in results[(name, kind)])
            p99 = statistics.median(v for _, v in results[(name, kind)])
            print(f"| {name} | {kind} | {p50:.1f} | {p99:.1f} | {p50 - off_p50:.1f} | {p99 - off_p99:.1f} |")
    if args.replay_events:
        rate, replayed = replay_throughput(rego, args.replay_events, args.workers)
        print(f"\nreplay: {args.replay_events} events ({replayed} replayed) at {rate:,.0f} events/s "
              f"with {args.workers} workers")
    engine.close()


if __name__ == "__main__":
    main()
