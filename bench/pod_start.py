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
binding, the kubelet's watch, the runtime, the kubelet's status report). There, each pod's time is
also split into its steps (created → bound → seen by the kubelet → sandbox ready → containers
started → status sent → watch sees Running), from the scheduler's and the kubelet's log lines.
Before the burst, the sequential pods' teardown is waited for, so the burst measures starts only.
Both modes print the CPU time each part used during the burst (cluster or bench process,
containerd with the CNI plugins it runs, the shims with runc, the pods' cgroups) and the whole
machine's, since on this shared 2-vCPU machine CPU is what bounds a burst.
Target (issue 6): p99 ≤ 2 s (the upstream SLO is 5 s p99 excluding image pull).
"""
from __future__ import annotations

import argparse
import os
import platform
import re
import resource
import secrets
import shutil
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securekube.kubelet.cgroups import PodCgroups
from securekube.kubelet.containerd import CniNetwork, Containerd, ContainerdConfig
from securekube.kubelet.cri.client import CriClient
from securekube.kubelet.images import NONROOT_IMAGE, import_archive, write_test_images
from securekube.kubelet.runtime import PodRunState, PodRuntime, RuntimeConfig
from securekube.kubelet.security import NodeSecurity

RUNNING_TIMEOUT_SECONDS = 60.0
TEARDOWN_TIMEOUT_SECONDS = 60.0
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
CGROUP_ROOT = Path("/sys/fs/cgroup")

# `securekube up` with the two INFO loggers whose lines time each pod's steps: the scheduler's
# "pod NS/NAME bound to node N" and the kubelet's start-up line (kubelet/pod_worker.py).
UP_WITH_STARTUP_LOGS = """
import logging, runpy
handler = logging.StreamHandler()
handler.setFormatter(logging.Formatter("%(created).6f %(name)s: %(message)s"))
for name in ("securekube.scheduler", "securekube.kubelet.podstartup"):
    logger = logging.getLogger(name)
    logger.setLevel(logging.INFO)
    logger.addHandler(handler)
runpy.run_module("securekube.cli.main", run_name="__main__", alter_sys=True)
"""
BOUND_LINE = re.compile(r"^(\d+\.\d+) securekube\.scheduler: pod [^/\s]+/(\S+) bound to node", re.M)
STARTUP_LINE = re.compile(r"^(\d+\.\d+) securekube\.kubelet\.podstartup: pod [^/\s]+/(\S+) running: "
                          r"sandbox ready (\S+) ms, containers started (\S+) ms, status sent (\S+) ms, "
                          r"acknowledged (\S+) ms", re.M)
STEPS = ("create → bound", "bound → kubelet saw it", "saw → sandbox ready", "sandbox → containers started",
         "started → status sent", "sent → watch sees Running", "create → Running")


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


# ---- CPU accounting ------------------------------------------------------------------------------

def process_cpu(pid: int) -> float:
    """CPU seconds (user + system) a process used itself and through the children it has reaped."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0  # gone: what it used is in its parent's children time
    return sum(int(value) for value in fields[11:15]) / CLOCK_TICKS


def shim_pids(socket_path: Path) -> list[int]:
    """The containerd-shim processes serving the containerd on `socket_path`."""
    marker = str(socket_path).encode()
    pids = []
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            command = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if b"containerd-shim" in command and marker in command:
            pids.append(int(entry.name))
    return pids


def cgroup_cpu(parent: str) -> float:
    """CPU seconds used so far by everything under the pod cgroup parent (cgroup v1 or v2)."""
    try:
        if (CGROUP_ROOT / "cgroup.controllers").exists():
            stat = (CGROUP_ROOT / parent / "cpu.stat").read_text().split()
            return int(stat[stat.index("usage_usec") + 1]) / 1e6
        return int((CGROUP_ROOT / "cpuacct" / parent / "cpuacct.usage").read_text()) / 1e9
    except (OSError, ValueError):
        return 0.0


def machine_cpu() -> float:
    """CPU seconds the whole machine was busy (every process, not only ours)."""
    with open("/proc/stat", encoding="ascii") as stat:
        values = [int(value) for value in stat.readline().split()[1:]]
    return (sum(values) - values[3] - values[4]) / CLOCK_TICKS


@dataclass(frozen=True)
class CpuParts:
    """Where to read each part's CPU time: the process that drives CRI, containerd, the pods' cgroups."""

    driver: Callable[[], float]
    driver_label: str
    containerd_pid: int
    socket_path: Path
    pod_cgroup_parent: str


def cpu_snapshot(parts: CpuParts) -> dict[str, float]:
    return {parts.driver_label: parts.driver(),
            "containerd (+CNI plugins)": process_cpu(parts.containerd_pid),
            "shims (+runc)": sum(process_cpu(pid) for pid in shim_pids(parts.socket_path)),
            "pod cgroups (runc init, pods)": cgroup_cpu(parts.pod_cgroup_parent),
            "whole machine": machine_cpu()}


@contextmanager
def cpu_used(parts: CpuParts, pods: int) -> Iterator[None]:
    """Prints the CPU seconds each part used inside the block. Shims that exit inside it are not
    counted (none do during a burst of starts)."""
    before, began = cpu_snapshot(parts), time.monotonic()
    yield
    after, wall = cpu_snapshot(parts), time.monotonic() - began
    used = {name: after[name] - before[name] for name in after}
    ours = sum(value for name, value in used.items() if name != "whole machine")
    print(f"CPU during the burst ({wall:.2f} s wall, {os.cpu_count()} CPUs = {wall * (os.cpu_count() or 1):.1f} "
          f"CPU-s available): " + ", ".join(f"{name} {value:.2f} s" for name, value in used.items())
          + f"; ours {ours:.2f} s = {ours / pods * 1000:.0f} ms per pod")


def driver_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_SELF)
    return usage.ru_utime + usage.ru_stime


def pod_cgroup_parent_of(socket_path: Path) -> str:
    """The pod cgroup parent of a node, read from one of its containers (a child of a shim)."""
    shims = set(shim_pids(socket_path))
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            parent = int(Path(entry, "stat").read_text().rsplit(")", 1)[1].split()[1])
            if parent not in shims:
                continue
            for line in Path(entry, "cgroup").read_text().splitlines():
                _, controllers, path = line.split(":", 2)
                if controllers in ("cpu,cpuacct", "cpuacct", ""):
                    return path.strip("/").split("/")[0]
        except (OSError, ValueError, IndexError):
            continue
    return ""


# ---- through the whole cluster -------------------------------------------------------------------

def api_pod(index: int, run: str) -> dict[str, Any]:
    """`restricted_pod` as a client creates it (the server assigns uid and namespace)."""
    pod = restricted_pod(index, run)
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"bench-{run}-{index}"}, "spec": pod["spec"]}


def step_times(log_text: str, created: dict[str, float], bound_seen: dict[str, float],
               running: dict[str, float]) -> dict[str, list[float]]:
    """Each pod's steps in seconds (wall clock, one machine), from the cluster's log and the bench's watch.

    Pods whose kubelet line is missing (a kubelet that does not log it) give only the steps they can.
    """
    bound = {name: float(ts) for ts, name in BOUND_LINE.findall(log_text)}
    startup = {m[1]: (float(m[0]), m[2], m[3], m[4], m[5]) for m in STARTUP_LINE.findall(log_text)}
    steps: dict[str, list[float]] = {step: [] for step in STEPS}
    for name, began in created.items():
        if name not in running:
            continue
        steps["create → Running"].append(running[name] - began)
        bound_at = bound.get(name, bound_seen.get(name))
        if bound_at is not None:
            steps["create → bound"].append(bound_at - began)
        if name not in startup or "?" in startup[name][1:]:
            continue
        logged_at, sandbox_ms, started_ms, sent_ms, acknowledged_ms = startup[name]
        seen_at = logged_at - float(acknowledged_ms) / 1000
        sandbox_at, started_at, sent_at = (seen_at + float(ms) / 1000 for ms in (sandbox_ms, started_ms, sent_ms))
        if bound_at is not None:
            steps["bound → kubelet saw it"].append(seen_at - bound_at)
        steps["saw → sandbox ready"].append(sandbox_at - seen_at)
        steps["sandbox → containers started"].append(started_at - sandbox_at)
        steps["started → status sent"].append(sent_at - started_at)
        steps["sent → watch sees Running"].append(running[name] - sent_at)
    return steps


def report_steps(label: str, steps: dict[str, list[float]]) -> None:
    print(f"{label + ' steps (ms)':<32} {'p50':>7}  {'p99':>7}")
    for step in STEPS:
        samples = steps[step]
        if samples:
            print(f"  {step:<30} {statistics.median(samples) * 1000:7.0f}  {percentile(samples, 0.99) * 1000:7.0f}")
        else:
            print(f"  {step:<30} {'-':>7}  {'-':>7}")


def wait_for_no_sandboxes(cri: CriClient) -> None:
    """Blocks until the node's runtime holds no pod sandbox (the kubelet has torn down deleted pods)."""
    deadline = time.monotonic() + TEARDOWN_TIMEOUT_SECONDS
    while cri.list_pod_sandboxes():
        if time.monotonic() > deadline:
            raise SystemExit("the deleted pods' sandboxes were not removed in time")
        time.sleep(0.1)


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
        up = subprocess.Popen([sys.executable, "-c", UP_WITH_STARTUP_LOGS, "up", "--data-dir", str(base / "data"),
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
        socket_path = base / "data" / "node" / "containerd" / "containerd.sock"
        path = "/api/v1/namespaces/default/pods"
        running: dict[str, float] = {}  # wall clock (time.time()), comparable with the log's times
        bound_seen: dict[str, float] = {}
        seen = threading.Condition()

        def watch() -> None:
            version = client.get(path)["metadata"]["resourceVersion"]
            for event in client.watch(path, version):
                obj = event.get("object") or {}
                name = (obj.get("metadata") or {}).get("name", "")
                with seen:
                    if (obj.get("spec") or {}).get("nodeName"):
                        bound_seen.setdefault(name, time.time())
                    if (obj.get("status") or {}).get("phase") == "Running":
                        running.setdefault(name, time.time())
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

        with CriClient(socket_path) as cri:
            client.create(path, api_pod(0, "warmup"))
            wait_running(["bench-warmup-0"])
            parts = CpuParts(driver=lambda: process_cpu(up.pid), driver_label="cluster process (API, scheduler, "
                             "kubelet)", containerd_pid=containerd_pid(up.pid), socket_path=socket_path,
                             pod_cgroup_parent=pod_cgroup_parent_of(socket_path))
            delete_all(["bench-warmup-0"])
            wait_for_no_sandboxes(cri)

            sequential, created = [], {}
            began = time.monotonic()
            for index in range(pods):
                pod = api_pod(index, "seq")
                name = pod["metadata"]["name"]
                created[name] = time.time()
                client.create(path, pod)
                wait_running([name])
                sequential.append(running[name] - created[name])
            sequential_wall = time.monotonic() - began
            sequential_steps = step_times(log_path.read_text(errors="replace"), created, bound_seen, running)
            delete_all(list(created))
            wait_for_no_sandboxes(cri)
            print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
                  f"kernel {platform.release()}, Python {platform.python_version()}, "
                  f"load average {os.getloadavg()[0]:.1f}")
            print("path: API create -> scheduler -> kubelet watch -> CRI -> status -> watch (phase Running)")
            report("sequential", sequential, sequential_wall)

            batch = [api_pod(index, "par") for index in range(pods)]
            with cpu_used(parts, pods):
                began, began_wall = time.monotonic(), time.time()
                with ThreadPoolExecutor(max_workers=pods) as pool:
                    list(pool.map(lambda pod: client.create(path, pod), batch))
                answered = time.monotonic() - began
                wait_running([pod["metadata"]["name"] for pod in batch])
                parallel_wall = time.monotonic() - began
            print(f"(parallel: all {pods} creates answered after {answered * 1000:.0f} ms)")
            parallel_created = {pod["metadata"]["name"]: began_wall for pod in batch}
            parallel = [running[name] - began_wall for name in parallel_created]
            report("parallel", parallel, parallel_wall)
            time.sleep(0.5)  # the last start-up lines reach the log
            report_steps("sequential", sequential_steps)
            report_steps("parallel", step_times(log_path.read_text(errors="replace"), parallel_created,
                                                bound_seen, running))
    finally:
        up.terminate()
        up.wait(timeout=60)
        shutil.rmtree(base, ignore_errors=True)


def containerd_pid(parent: int) -> int:
    """The containerd process `securekube up` (process `parent`) started for its node."""
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = Path(entry, "stat").read_text().rsplit(")", 1)[1].split()
            if int(fields[1]) == parent and Path(entry, "comm").read_text().strip() == "containerd":
                return int(entry.name)
        except (OSError, ValueError):
            continue
    raise SystemExit("the node's containerd process was not found")


# ---- runtime only ------------------------------------------------------------------------------

def runtime_only(pods: int) -> None:
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
            for index in range(pods):
                latency, state = start_and_wait(runtime, restricted_pod(index, "seq"), time.monotonic())
                sequential.append(latency)
                states.append(state)
            sequential_wall = time.monotonic() - began
            kill_all(runtime, states)

            parts = CpuParts(driver=driver_cpu, driver_label="bench process (PodRuntime)",
                             containerd_pid=containerd_pid(os.getpid()), socket_path=containerd.socket_path,
                             pod_cgroup_parent=cgroups.parent)
            with cpu_used(parts, pods):
                began = time.monotonic()
                with ThreadPoolExecutor(max_workers=pods) as pool:
                    results = list(pool.map(
                        lambda index: start_and_wait(runtime, restricted_pod(index, "par"), began),
                        range(pods)))
                parallel_wall = time.monotonic() - began
            kill_all(runtime, [state for _, state in results])

        runc = subprocess.run(["runc", "--version"], capture_output=True, text=True, check=False)
        print(f"machine: {platform.node()} {platform.machine()} {os.cpu_count()} CPUs, "
              f"kernel {platform.release()}, Python {platform.python_version()}, "
              f"load average {os.getloadavg()[0]:.1f}")
        print(f"runtime: {version.runtime_name} {version.runtime_version} ({version.runtime_api_version}), "
              f"{runc.stdout.splitlines()[0] if runc.stdout else 'runc ?'}, "
              f"snapshotter {containerd.snapshotter}")
        report("sequential", sequential, sequential_wall)
        report("parallel", [latency for latency, _ in results], parallel_wall)
    finally:
        containerd.stop(purge=True)
        cgroups.remove_parent()
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
    else:
        runtime_only(args.pods)


if __name__ == "__main__":
    main()
