"""Authorization decision latency with 10, 1,000 and 10,000 RoleBindings over 1,000 namespaces.

Measures the union the API server uses (Node → system:masters → RBAC) on a mix of allowed and
denied requests; rounds for the three sizes are interleaved so machine noise hits them alike.
Run: .venv/bin/python bench/authz.py [--requests N] [--rounds R]
Targets (issue 3): p99 ≤ 50 µs, and the 10,000 case within 1.5× of the 10 case.
"""
from __future__ import annotations

import argparse
import platform
import random
import statistics
import time

from securekube.authn.interfaces import UserInfo
from securekube.authz.bootstrap_policy import bootstrap_objects
from securekube.authz.interfaces import Attributes
from securekube.authz.node import NodeAuthorizer
from securekube.authz.privileged import PrivilegedGroupAuthorizer
from securekube.authz.rbac import RBACAuthorizer
from securekube.authz.union import UnionAuthorizer

NAMESPACES = 1000
SIZES = (10, 1_000, 10_000)


def build(bindings: int) -> UnionAuthorizer:
    rbac = RBACAuthorizer()
    for obj in bootstrap_objects():
        rbac.apply(obj["kind"], obj)
    for i in range(bindings):
        rbac.apply("RoleBinding", {
            "metadata": {"name": f"binding-{i}", "namespace": f"ns-{i % NAMESPACES}"},
            "roleRef": {"apiGroup": "rbac.authorization.k8s.io", "kind": "ClusterRole",
                        "name": ("view", "edit")[i % 2]},
            "subjects": [{"kind": "User", "name": f"user-{i}", "apiGroup": "rbac.authorization.k8s.io"},
                         {"kind": "Group", "name": f"team-{i % 50}", "apiGroup": "rbac.authorization.k8s.io"}]})
    return UnionAuthorizer(NodeAuthorizer(), PrivilegedGroupAuthorizer(), rbac)


def workload(bindings: int, count: int) -> list[Attributes]:
    rng = random.Random(7)
    out = []
    for _ in range(count):
        i = rng.randrange(bindings)
        user = UserInfo(f"user-{i}", groups=(f"team-{i % 50}", "system:authenticated"))
        ns = f"ns-{i % NAMESPACES}"
        out.append(rng.choice([
            Attributes(user, "get", True, ns, "", "v1", "pods", "", "web"),          # allowed by its binding
            Attributes(user, "delete", True, "", "", "v1", "nodes", "", "n1"),       # denied everywhere
            Attributes(user, "list", True, "elsewhere", "", "v1", "configmaps"),     # other namespace
            Attributes(user, "get", False, path="/version"),                         # non-resource
        ]))
    return out


def percentiles(samples: list[int]) -> tuple[float, float]:
    samples.sort()
    return samples[len(samples) // 2] / 1000, samples[int(len(samples) * 0.99)] / 1000


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=20_000)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    authorizers = {n: build(n) for n in SIZES}
    requests = {n: workload(n, args.requests) for n in SIZES}
    results: dict[int, list[tuple[float, float]]] = {n: [] for n in SIZES}
    clock = time.perf_counter_ns
    for _ in range(args.rounds):
        for n in SIZES:
            authorizer, reqs = authorizers[n], requests[n]
            for attrs in reqs[:1000]:  # warm-up
                authorizer.authorize(attrs)
            samples = []
            for attrs in reqs:
                start = clock()
                authorizer.authorize(attrs)
                samples.append(clock() - start)
            results[n].append(percentiles(samples))
    print(f"machine: {platform.processor() or platform.machine()}, Python {platform.python_version()}")
    print("| RoleBindings | p50 µs | p99 µs | p99 vs 10 |")
    print("|---:|---:|---:|---:|")
    base = statistics.median(p99 for _, p99 in results[SIZES[0]])
    for n in SIZES:
        p50 = statistics.median(p for p, _ in results[n])
        p99 = statistics.median(p for _, p in results[n])
        print(f"| {n:,} | {p50:.1f} | {p99:.1f} | {p99 / base:.2f}× |")


if __name__ == "__main__":
    main()
