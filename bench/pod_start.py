"""Pod start latency through CRI: create → Running, image present, 20 sequential and 20 parallel pods.

Starts a private containerd (as `securekube up` will), imports the busybox test images, then
measures, for each pod, the time from `PodRuntime.run_pod` to the first status that reports its
container running: first one pod at a time, then all pods submitted at once (each pod's latency
includes its wait behind the others, as a kubelet starting a burst would see it). The pods use a
restricted security context (non-root image, no capabilities, read-only root, RuntimeDefault
seccomp, no privilege escalation), so the numbers include what enforcement costs.
Run (as root): .venv/bin/python bench/pod_start.py [--pods N]
With --api the same pods go through the whole cluster instead: `securekube up` with its node, pods
created through the API as the admin, timed until a watch sees phase Running (API write, scheduler
binding, the kubelet's watch, the runtime, the kubelet's status report).
Target (issue 6): p99 ≤ 2 s (the upstream SLO is 5 s p99 excluding image pull).
"""
from __future__ import annotations

import argparse
import os
import platform
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

from securekube.kubelet.cgroups import PodCgroups
from securekube.kubelet.containerd import CniNetwork, Containerd, ContainerdConfig
from securekube.kubelet.cri.client import CriClient
from securekube.kubelet.images import NONROOT_IMAGE, import_archive, write_test_images
from securekube.kubelet.runtime import PodRunState, PodRuntime, RuntimeConfig
from securekube.kubelet.security import NodeSecurity

RUNNING_TIMEOUT_SECONDS = 60.0


def restricted_pod(index: int, run: str) -> dict[str, Any]:
    return {
        "metadata": {"name": f"bench-{index}", "namespace": "bench", "uid": f"bench-{run}-{index}"},
        "spec": {
            "restartPolicy": "Never",
            "terminationGracePeriodSeconds": 1,
            "securityContext": {"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [{
                "name": "sleeper", "image": NONROOT_IMAGE, "command": ["sleep", "3600"],
                "securityContext": {"allowPrivilegeEscalation": False, "readOnlyRootFilesystem": True,
                                    "capabilities": {"drop": ["ALL"]}},
                "resources": {"limits": {"cpu": "100m", "memory": "32Mi"}},
            }],
        },
    }


def start_and_wait(runtime: PodRuntime, pod: dict[str, Any], submitted: float) -> tuple[float, PodRunState]:
    """Seconds from `submitted` until the pod's container runs, and the pod's state."""
    state = runtime.run_pod(pod)
    deadline = submitted + RUNNING_TIMEOUT_SECONDS
    while True:
        status = runtime.status(state)
        if status.containers[0].state == "running":
            return time.monotonic() - submitted, state
        if status.containers[0].reason not in ("", "ContainerCreating") or time.monotonic() > deadline:
            raise RuntimeError(f"pod {pod['metadata']['name']} did not start: {status.containers[0]}")
        time.sleep(0.02)


def percentile(samples: list[float], fraction: float) -> float:
    ordered = sorted(samples)
    return ordered[min(len(ordered) - 1, int(len(ordered) * fraction))]


def report(label: str, samples: list[float], wall: float) -> None:
    print(f"{label:<11} n={len(samples):<3} p50={statistics.median(samples) * 1000:7.1f} ms  "
          f"p99={percentile(samples, 0.99) * 1000:7.1f} ms  max={max(samples) * 1000:7.1f} ms  "
          f"wall={wall:6.2f} s")


def kill_all(runtime: PodRuntime, states: list[PodRunState]) -> None:
    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(lambda state: runtime.kill_pod(state, grace_seconds=0), states))


def api_pod(index: int, run: str) -> dict[str, Any]:
    """`restricted_pod` as a client creates it (the server assigns uid and namespace)."""
    pod = restricted_pod(index, run)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"bench-{run}-{index}"}, "spec": pod["spec"]}


def through_api(pods: int) -> None:
    """create → Running through `securekube up` and its node, sequentially and all at once."""
    import socket
    import sys
    import threading

    from securekube.kubelet.apiclient import ApiClient, load_kubeconfig

    base = Path(tempfile.mkdtemp(prefix="skbench-api-", dir="/tmp"))
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    log_path = base / "up.log"
    with open(log_path, "wb") as log:
        up = subprocess.Popen([sys.executable, "-m", "securekube.cli.main", "up", "--data-dir", str(base / "data"),
                               "--port", str(port), "--kubelet-port", "0", "--node-name", "bench-node"],
                              stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 90
        while b"securekube: ready" not in log_path.read_bytes():
            if up.poll() is not None or time.monotonic() > deadline:
                raise SystemExit(f"securekube up did not start:\n{log_path.read_text()}")
            time.sleep(0.1)
        if b"joined as system:node:bench-node" not in log_path.read_bytes():
            raise SystemExit(f"the node did not join:\n{log_path.read_text()}")
        client = ApiClient(load_kubeconfig(base / "data" / "admin.kubeconfig"))
        path = "/api/v1/namespaces/default/pods"
        running: dict[str, float] = {}
        seen = threading.Condition()

        def watch() -> None:
            version = client.get(path)["metadata"]["resourceVersion"]
            for event in client.watch(path, version):
                obj = event.get("object") or {}
                if (obj.get("status") or {}).get("phase") == "Running":
                    with seen:
                        running.setdefault(obj["metadata"]["name"], time.monotonic())
                        seen.notify_all()

        threading.Thread(target=watch, daemon=True).start()
        time.sleep(0.5)

        def wait_running(names: list[str]) -> None:
            with seen:
                if not seen.wait_for(lambda: all(n in running for n in names), RUNNING_TIMEOUT_SECONDS):
                    raise SystemExit(f"pods did not start: {sorted(set(names) - set(running))}")

        def delete_all(names: list[str]) -> None:
            for name in names:
                client.delete(f"{path}/{name}", {"gracePeriodSeconds": 0})

        client.create(path, api_pod(0, "warmup"))
        wait_running(["bench-warmup-0"])
        delete_all(["bench-warmup-0"])

        sequential, names = [], []
        began = time.monotonic()
        for index in range(pods):
            submitted = time.monotonic()
            pod = api_pod(index, "seq")
            client.create(path, pod)
            wait_running([pod["metadata"]["name"]])
            sequential.append(running[pod["metadata"]["name"]] - submitted)
            names.append(pod["metadata"]["name"])
        sequential_wall = time.monotonic() - began
        delete_all(names)
        print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
              f"kernel {platform.release()}, Python {platform.python_version()}")
        print("path: API create -> scheduler -> kubelet watch -> CRI -> status -> watch (phase Running)")
        report("sequential", sequential, sequential_wall)

        began = time.monotonic()
        batch = [api_pod(index, "par") for index in range(pods)]
        with ThreadPoolExecutor(max_workers=pods) as pool:
            list(pool.map(lambda pod: client.create(path, pod), batch))
        created = time.monotonic() - began
        wait_running([pod["metadata"]["name"] for pod in batch])
        print(f"(parallel: all {pods} creates answered after {created * 1000:.0f} ms)")
        parallel_wall = time.monotonic() - began
        parallel = [running[pod["metadata"]["name"]] - began for pod in batch]
        report("parallel", parallel, parallel_wall)
    finally:
        up.terminate()
        up.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pods", type=int, default=20)
    parser.add_argument("--api", action="store_true", help="through `securekube up` and its node, not CRI alone")
    args = parser.parse_args()
    if os.geteuid() != 0:
        raise SystemExit("pod_start.py: running containers needs root")
    if args.api:
        through_api(args.pods)
        return

    base = Path(tempfile.mkdtemp(prefix="skbench-", dir="/tmp"))
    suffix = secrets.token_hex(3)
    cgroups = PodCgroups(parent=f"securekube-bench-{suffix}")
    containerd = Containerd(ContainerdConfig(
        base_dir=base / "containerd",
        network=CniNetwork(name=f"sk-bench-{suffix}", bridge=f"skb{suffix}", subnet="10.199.250.0/24")))
    containerd.start()
    try:
        import_archive(write_test_images(base / "images.tar"), containerd.socket_path, containerd.snapshotter)
        with CriClient(containerd.socket_path) as cri:
            version = cri.version()
            runtime = PodRuntime(cri, RuntimeConfig(
                log_root=base / "pods", node_security=NodeSecurity(seccomp_root=base / "seccomp"),
                pod_pids_limit=256, cgroups=cgroups))

            _, warmup = start_and_wait(runtime, restricted_pod(0, "warmup"), time.monotonic())
            kill_all(runtime, [warmup])  # first-use costs (snapshot of the image, CNI) stay out

            sequential: list[float] = []
            states: list[PodRunState] = []
            began = time.monotonic()
            for index in range(args.pods):
                latency, state = start_and_wait(runtime, restricted_pod(index, "seq"), time.monotonic())
                sequential.append(latency)
                states.append(state)
            sequential_wall = time.monotonic() - began
            kill_all(runtime, states)

            began = time.monotonic()
            with ThreadPoolExecutor(max_workers=args.pods) as pool:
                results = list(pool.map(
                    lambda index: start_and_wait(runtime, restricted_pod(index, "par"), began),
                    range(args.pods)))
            parallel_wall = time.monotonic() - began
            kill_all(runtime, [state for _, state in results])

        runc = subprocess.run(["runc", "--version"], capture_output=True, text=True, check=False)
        print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
              f"kernel {platform.release()}, Python {platform.python_version()}")
        print(f"runtime: {version.runtime_name} {version.runtime_version} ({version.runtime_api_version}), "
              f"{runc.stdout.splitlines()[0] if runc.stdout else 'runc ?'}, "
              f"snapshotter {containerd.snapshotter}")
        report("sequential", sequential, sequential_wall)
        report("parallel", [latency for latency, _ in results], parallel_wall)
    finally:
        containerd.stop(purge=True)
        cgroups.remove_parent()
        shutil.rmtree(base, ignore_errors=True)


if __name__ == "__main__":
    main()
