"""A realistic audit log for benchmarks: N audit.k8s.io/v1 Event lines in kube-apiserver's log format.

The mix resembles a busy small cluster over one day: people (kubectl, with groups), service
accounts of workloads and controllers, nodes, health probes, some failed authentication, ~4 %
denials, exec/attach, secret reads and RBAC changes. Each request is logged as upstream's default
policy does: RequestReceived then ResponseComplete (watches also ResponseStarted); writes to RBAC
objects at RequestResponse level carry their bodies, with the escaped quotes real logs have.
Deterministic for a given --seed.

Run: .venv/bin/python bench/audit_events.py --events 1000000 --out /tmp/audit.log [--gzip]
"""
from __future__ import annotations

import argparse
import gzip
import json
import random
import sys
import zlib
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone

PEOPLE = [(name, groups) for name, groups in (
    ("alice", ["developers"]), ("bob", ["developers"]), ("carol", ["sre"]), ("dave", ["sre"]),
    ("erin", ["security"]), ("frank", ["developers"]), ("grace", ["data"]), ("heidi", ["data"]),
    ("ivan", ["contractors"]), ("judy", ["developers"]), ("kubernetes-admin", ["system:masters"]),
    ("mallory", ["contractors"]),
)]
NAMESPACES = ["default", "kube-system", "team-a", "team-b", "team-c", "payments", "data", "monitoring",
              "ingress", "ci", "staging", "prod"]
WORKLOAD_SAS = [(ns, sa) for ns in NAMESPACES for sa in ("default", "deployer", "app")]
CONTROLLERS = ["system:kube-controller-manager", "system:kube-scheduler", "system:apiserver"]
NODES = [f"system:node:node-{i}" for i in range(1, 7)]
KUBECTL_AGENT = "kubectl/v1.30.2 (linux/amd64) kubernetes/3968350"
CLIENT_AGENTS = ["kube-controller-manager/v1.30.2 (linux/amd64) kubernetes/3968350/"
                 "system:serviceaccount:kube-system:replicaset-controller",
                 "OpenAPI-Generator/30.1.0/python", "Go-http-client/2.0", "argocd-application-controller/v0.0.0"]

# (apiGroup, resource, namespaced) with a weight; the core group is "".
RESOURCES = [
    (("", "pods", True), 22), (("", "configmaps", True), 12), (("", "secrets", True), 10),
    (("", "services", True), 6), (("", "endpoints", True), 4), (("", "events", True), 6),
    (("apps", "deployments", True), 8), (("apps", "replicasets", True), 5),
    (("coordination.k8s.io", "leases", True), 8),
    (("", "nodes", False), 4), (("", "namespaces", False), 3), (("", "serviceaccounts", True), 2),
    (("rbac.authorization.k8s.io", "roles", True), 1), (("rbac.authorization.k8s.io", "rolebindings", True), 1),
    (("rbac.authorization.k8s.io", "clusterroles", False), 1),
    (("rbac.authorization.k8s.io", "clusterrolebindings", False), 1),
    (("networking.k8s.io", "networkpolicies", True), 1),
    (("admissionregistration.k8s.io", "validatingwebhookconfigurations", False), 1),
]
VERBS = [("get", 34), ("list", 18), ("watch", 8), ("create", 10), ("update", 10), ("patch", 12), ("delete", 6)]
NON_RESOURCE_PATHS = ["/healthz", "/readyz", "/livez", "/version", "/api", "/apis", "/openapi/v2", "/metrics"]
SUBRESOURCE_VERBS = {"exec": "create", "attach": "create", "log": "get", "status": "update", "portforward": "create"}
CORE_VERSIONS = {"": "v1", "apps": "v1", "coordination.k8s.io": "v1", "rbac.authorization.k8s.io": "v1",
                 "networking.k8s.io": "v1", "admissionregistration.k8s.io": "v1"}
START = datetime(2024, 5, 1, tzinfo=timezone.utc)
DAY_SECONDS = 86400


def _weighted(rng: random.Random, choices: list[tuple[object, int]]) -> object:
    return rng.choices([c for c, _ in choices], weights=[w for _, w in choices])[0]


def _time(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def _identity(rng: random.Random) -> tuple[dict | None, str, str]:
    """(user info or None for a failed authentication, source IP, user agent)."""
    roll = rng.random()
    if roll < 0.005:
        return None, f"203.0.113.{rng.randrange(1, 40)}", rng.choice(["curl/8.5.0", "python-requests/2.31.0"])
    if roll < 0.30:
        name, groups = rng.choice(PEOPLE)
        return ({"username": name, "groups": [*groups, "system:authenticated"]},
                f"10.0.{PEOPLE.index((name, groups))}.{rng.randrange(2, 9)}", KUBECTL_AGENT)
    if roll < 0.70:
        ns, sa = rng.choice(WORKLOAD_SAS)
        return ({"username": f"system:serviceaccount:{ns}:{sa}", "uid": f"{zlib.crc32(f'{ns}/{sa}'.encode()):08x}",
                 "groups": ["system:serviceaccounts", f"system:serviceaccounts:{ns}", "system:authenticated"]},
                f"10.244.{NAMESPACES.index(ns)}.{rng.randrange(2, 250)}", rng.choice(CLIENT_AGENTS))
    if roll < 0.90:
        return ({"username": rng.choice(CONTROLLERS), "groups": ["system:authenticated"]}, "127.0.0.1",
                "kube-controller-manager/v1.30.2 (linux/amd64) kubernetes/3968350/leader-election")
    node = rng.choice(NODES)
    return ({"username": node, "groups": ["system:nodes", "system:authenticated"]},
            f"192.168.1.{NODES.index(node) + 10}", "kubelet/v1.30.2 (linux/amd64) kubernetes/3968350")


def _request(rng: random.Random, user: dict | None) -> dict:
    """Verb, requestURI, objectRef (absent for non-resource requests), code, decision, reason."""
    if user is not None and rng.random() < 0.05:
        path = rng.choice(NON_RESOURCE_PATHS)
        return {"verb": "get", "uri": path, "ref": None, "code": 200, "decision": "allow",
                "reason": 'RBAC: allowed by ClusterRoleBinding "system:public-info-viewer" of ClusterRole '
                          '"system:public-info-viewer" to Group "system:authenticated"'}
    group, res, namespaced = _weighted(rng, RESOURCES)  # type: ignore[misc]
    verb = str(_weighted(rng, VERBS))
    ns = rng.choice(NAMESPACES) if namespaced else ""
    singular = res[:-3] + "y" if res.endswith("ies") else res[:-1]
    name = "" if verb in ("list", "watch") else f"{singular}-{rng.randrange(1, 60)}"
    if verb == "create" and rng.random() < 0.2:
        name = ""  # generateName: the name is only known from the response
    sub = ""
    if res == "pods" and rng.random() < 0.06:
        sub = rng.choice(list(SUBRESOURCE_VERBS))
        verb, name = SUBRESOURCE_VERBS[sub], name or f"pod-{rng.randrange(1, 60)}"
    base = f"/apis/{group}/{CORE_VERSIONS[group]}" if group else "/api/v1"
    uri = base + (f"/namespaces/{ns}" if ns else "") + f"/{res}" + (f"/{name}" if name and verb != "create" else "")
    uri += f"/{sub}" if sub else ""
    if verb == "list":
        uri += "?limit=500"
    elif verb == "watch":
        uri += f"?allowWatchBookmarks=true&resourceVersion={rng.randrange(10**6)}&watch=true"
    ref = {"resource": res, "namespace": ns, "name": name, "apiGroup": group, "apiVersion": CORE_VERSIONS[group],
           "subresource": sub}
    ref = {k: v for k, v in ref.items() if v}  # upstream omits empty fields
    denied = user is not None and (rng.random() < 0.04 or (res == "secrets" and rng.random() < 0.1))
    if user is None:
        return {"verb": verb, "uri": uri, "ref": ref, "code": 401, "decision": "", "reason": ""}
    if denied:
        return {"verb": verb, "uri": uri, "ref": ref, "code": 403, "decision": "forbid", "reason": ""}
    code = {"get": 200, "list": 200, "watch": 200, "create": 201, "update": 200, "patch": 200, "delete": 200}[verb]
    if verb == "get" and rng.random() < 0.05:
        code = 404
    elif verb in ("update", "patch") and rng.random() < 0.03:
        code = 409
    elif rng.random() < 0.001:
        code = 500
    binding = "cluster-admin" if "system:masters" in user["groups"] else "edit"
    reason = (f'RBAC: allowed by ClusterRoleBinding "{binding}" of ClusterRole "{binding}" to User '
              f'"{user["username"]}"')
    return {"verb": verb, "uri": uri, "ref": ref, "code": code, "decision": "allow", "reason": reason}


def _body(ref: dict) -> dict:
    obj = {"kind": ref["resource"].rstrip("s").capitalize(), "apiVersion": "rbac.authorization.k8s.io/v1",
           "metadata": {"name": ref.get("name", "generated"), "namespace": ref.get("namespace"),
                        "annotations": {"kubectl.kubernetes.io/last-applied-configuration":
                                        json.dumps({"kind": "Role", "metadata": {"name": ref.get("name", "")}})}}}
    return obj


def events(count: int, seed: int = 1) -> Iterator[dict]:
    """`count` Events in time order (a request's stages are adjacent, as one API server writes them)."""
    rng = random.Random(seed)
    step = DAY_SECONDS / max(count / 2.1, 1)
    moment = START
    emitted = 0
    while emitted < count:
        moment += timedelta(seconds=rng.expovariate(1 / step))
        user, ip, agent = _identity(rng)
        request = _request(rng, user)
        audit_id = "%08x-%04x-4%03x-%04x-%012x" % (rng.getrandbits(32), rng.getrandbits(16), rng.getrandbits(12),
                                                    0x8000 | rng.getrandbits(14), rng.getrandbits(48))
        ref = request["ref"]
        rbac_write = ref is not None and ref.get("apiGroup") == "rbac.authorization.k8s.io" and request["verb"] in (
            "create", "update", "patch")
        level = "RequestResponse" if rbac_write else "Metadata"
        base = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": level, "auditID": audit_id,
                "stage": "RequestReceived", "requestURI": request["uri"], "verb": request["verb"],
                "user": user or {}, "sourceIPs": [ip], "userAgent": agent}
        if ref is not None:
            base["objectRef"] = ref
        received = _time(moment)
        base["requestReceivedTimestamp"] = received
        base["stageTimestamp"] = received
        stages = ["RequestReceived"]
        if request["verb"] == "watch" and request["code"] == 200:
            stages.append("ResponseStarted")
        stages.append("ResponseComplete")
        for stage in stages:
            if emitted >= count:
                return
            event = dict(base, stage=stage)
            if stage != "RequestReceived":
                finished = moment + timedelta(milliseconds=rng.uniform(0.5, 40 if stage == "ResponseComplete" else 5))
                event["stageTimestamp"] = _time(finished)
                status: dict = {"metadata": {}, "code": request["code"]}
                if request["code"] >= 400:
                    status.update(status="Failure", reason={401: "Unauthorized", 403: "Forbidden", 404: "NotFound",
                                                             409: "Conflict", 500: "InternalError"}[request["code"]])
                event["responseStatus"] = status
                if rbac_write and request["code"] < 300:
                    event["requestObject"] = _body(ref)
                    event["responseObject"] = _body(ref)
                if request["decision"]:
                    event["annotations"] = {"authorization.k8s.io/decision": request["decision"],
                                            "authorization.k8s.io/reason": request["reason"]}
            yield event
            emitted += 1


def write(path: str, count: int, seed: int = 1, compress: bool = False) -> None:
    opener = gzip.open if compress else open
    with opener(path, "wt", encoding="utf-8") as out:  # type: ignore[operator]
        batch: list[str] = []
        for event in events(count, seed):
            batch.append(json.dumps(event, separators=(",", ":")))
            if len(batch) >= 10000:
                out.write("\n".join(batch) + "\n")
                batch.clear()
        if batch:
            out.write("\n".join(batch) + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=100_000, help="number of Event lines (default 100000)")
    parser.add_argument("--out", default="-", help="file to write (default: stdout)")
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--gzip", action="store_true", help="gzip the output file")
    args = parser.parse_args(argv)
    if args.out == "-":
        for event in events(args.events, args.seed):
            sys.stdout.write(json.dumps(event, separators=(",", ":")) + "\n")
    else:
        write(args.out, args.events, args.seed, args.gzip)
    return 0


if __name__ == "__main__":
    sys.exit(main())
