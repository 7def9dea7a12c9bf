"""The kernel enforces each pod's security context: real containerd → runc, through CRI runtime.v1.

Every case runs a busybox pod that tries what its profile forbids and reads the verdict from the
pod's own log, as `kubectl logs` will show it. Busybox has no `keyctl`; the syscalls standing in
for "refused by the default profile whatever the capabilities" are swapon and pivot_root (not in
containerd's allowlist at all), and `unshare -U` shows a refusal only seccomp can produce. Needs root, containerd, runc, busybox-static and
the CNI plugins (Debian packages); skips without them, fails without them when CI=true.
"""
from __future__ import annotations

import json
import os
import secrets
import shutil
import tempfile
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from securekube.kubelet.apparmor import AppArmorHost
from securekube.kubelet.cgroups import PodCgroups
from securekube.kubelet.containerd import CniNetwork, Containerd, ContainerdConfig
from securekube.kubelet.cri.client import CriClient
from securekube.kubelet.errors import PodAdmissionError
from securekube.kubelet.images import BUSYBOX_IMAGE, NONROOT_IMAGE, import_archive, write_test_images
from securekube.kubelet.runtime import PodRunState, PodRuntime, PodStatusView, RuntimeConfig
from securekube.kubelet.security import DEFAULT_MASKED_PATHS, NodeSecurity
from tests.conftest import require

pytestmark = pytest.mark.integration

DONE = "__done__"
EPERM = "Operation not permitted"
NO_MKDIR_PROFILE = {
    "defaultAction": "SCMP_ACT_ALLOW",
    "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO", "errnoRet": 1}],
}


def _require_system_parts() -> None:
    require(os.geteuid() == 0, "running containers needs root")
    for binary, package in (("containerd", "containerd"), ("ctr", "containerd"), ("runc", "runc")):
        require(shutil.which(binary) is not None, f"{binary} not installed (Debian package {package})")
    require(Path("/bin/busybox").is_file(), "/bin/busybox missing (Debian package busybox-static)")
    require(Path("/usr/lib/cni/bridge").is_file(),
            "CNI plugins missing (Debian package containernetworking-plugins)")


@dataclass(frozen=True)
class Finished:
    """A pod that has run to completion (or stopped trying): its status and its log."""

    status: PodStatusView
    log: str


class Node:
    """A private containerd with the test images, and a PodRuntime on it."""

    def __init__(self, base: Path, suffix: str) -> None:
        self.seccomp_root = base / "seccomp"
        self.seccomp_root.mkdir(parents=True)
        (self.seccomp_root / "no-mkdir.json").write_text(json.dumps(NO_MKDIR_PROFILE))
        self.cgroups = PodCgroups(parent=f"securekube-test-{suffix}")
        self.containerd = Containerd(ContainerdConfig(
            base_dir=base / "containerd",
            network=CniNetwork(name=f"sk-test-{suffix}", bridge=f"sk{suffix}",
                               subnet=f"10.199.{int(suffix, 16) % 250}.0/24")))
        self.containerd.start()
        images = write_test_images(base / "images.tar")
        import_archive(images, self.containerd.socket_path, self.containerd.snapshotter)
        self.cri = CriClient(self.containerd.socket_path)
        self.started: list[PodRunState] = []

    def runtime(self, pod_pids_limit: int = 256) -> PodRuntime:
        return PodRuntime(self.cri, RuntimeConfig(
            log_root=self.containerd.paths.base.parent / "pods",
            node_security=NodeSecurity(seccomp_root=self.seccomp_root, apparmor=AppArmorHost()),
            pod_pids_limit=pod_pids_limit, cgroups=self.cgroups))

    def run(self, pod: dict[str, Any], runtime: PodRuntime | None = None,
            timeout_seconds: float = 15.0) -> Finished:
        runtime = runtime or self.runtime()
        state = runtime.run_pod(pod)
        self.started.append(state)
        deadline = time.monotonic() + timeout_seconds
        while True:
            status = runtime.status(state)
            container = status.containers[0]
            settled = status.phase in ("Succeeded", "Failed") or (
                container.state == "waiting" and container.reason not in ("", "ContainerCreating"))
            log = runtime.container_logs(state, container.name)
            # The log file can trail the exit by a moment: wait for the script's last line too.
            if settled and (DONE in log or container.state == "waiting" or status.phase == "Failed"):
                return Finished(status, log)
            if time.monotonic() > deadline:
                raise AssertionError(f"pod {pod['metadata']['name']} did not finish: {status}\n{log}")
            time.sleep(0.02)

    def close(self) -> None:
        runtime = self.runtime()
        try:
            for state in self.started:
                runtime.kill_pod(state, grace_seconds=0)
        finally:
            self.cri.close()
            self.containerd.stop(purge=True)
            self.cgroups.remove_parent()


@pytest.fixture(scope="module")
def node() -> Iterator[Node]:
    _require_system_parts()
    base = Path(tempfile.mkdtemp(prefix="skcri-", dir="/tmp"))
    running = Node(base, secrets.token_hex(3))
    try:
        yield running
    finally:
        running.close()
        shutil.rmtree(base, ignore_errors=True)


def busybox_pod(name: str, script: str, image: str = BUSYBOX_IMAGE,
                container_sc: dict[str, Any] | None = None, pod_sc: dict[str, Any] | None = None,
                **container: Any) -> dict[str, Any]:
    spec_container = {"name": "main", "image": image, "command": ["sh", "-c", f"{script}; echo {DONE}"],
                      "securityContext": container_sc or {}, **container}
    return {
        "metadata": {"name": name, "namespace": "enforcement", "uid": f"{name}-{secrets.token_hex(4)}"},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 2,
                 "securityContext": pod_sc or {}, "containers": [spec_container]},
    }


def test_unset_profile_runs_under_runtime_default_which_refuses_namespaces_and_mounts(node: Node) -> None:
    # `unshare -U` needs no capability: only seccomp can refuse it.
    finished = node.run(busybox_pod("runtime-default", "grep Seccomp: /proc/self/status; "
                                    "unshare -U true; echo unshare=$?; mount -t tmpfs none /mnt; "
                                    "echo mount=$?"))
    assert finished.status.phase == "Succeeded"
    assert "Seccomp:\t2" in finished.log  # 2 = filter mode
    assert f"unshare: unshare(0x10000000): {EPERM}" in finished.log
    assert "unshare=1" in finished.log
    assert "mount: permission denied" in finished.log and "mount=1" in finished.log


@pytest.mark.parametrize(("profile", "swapon", "pivot_root"), [
    ("RuntimeDefault", EPERM, EPERM),
    # Same capabilities without the filter: the kernel itself answers, differently.
    ("Unconfined", "Invalid argument", "Device or resource busy"),
])
def test_runtime_default_refuses_swapon_and_pivot_root_even_with_cap_sys_admin(
        node: Node, profile: str, swapon: str, pivot_root: str) -> None:
    pod = busybox_pod(f"sysadmin-{profile.lower()}", "swapon /dev/null; pivot_root /tmp /tmp",
                      container_sc={"capabilities": {"add": ["SYS_ADMIN"]},
                                    "seccompProfile": {"type": profile}})
    log = node.run(pod).log
    assert f"swapon: /dev/null: {swapon}" in log
    assert f"pivot_root: (null): {pivot_root}" in log


def test_unconfined_allows_unshare(node: Node) -> None:
    pod = busybox_pod("unconfined", "grep Seccomp: /proc/self/status; unshare -U id -u; echo unshare=$?",
                      container_sc={"seccompProfile": {"type": "Unconfined"}})
    log = node.run(pod).log
    assert "Seccomp:\t0" in log
    assert "unshare=0" in log and "65534" in log  # unmapped root inside a fresh user namespace


def test_localhost_profile_that_forbids_mkdir_makes_mkdir_fail(node: Node) -> None:
    pod = busybox_pod("no-mkdir", "mkdir /tmp/made; echo mkdir=$?; touch /tmp/file; echo touch=$?",
                      pod_sc={"seccompProfile": {"type": "Localhost", "localhostProfile": "no-mkdir.json"}})
    log = node.run(pod).log
    assert f"mkdir: can't create directory '/tmp/made': {EPERM}" in log
    assert "mkdir=1" in log and "touch=0" in log


def test_missing_localhost_profile_keeps_the_container_from_starting(node: Node) -> None:
    pod = busybox_pod("missing-profile", "true", container_sc={
        "seccompProfile": {"type": "Localhost", "localhostProfile": "absent.json"}})
    container = node.run(pod).status.containers[0]
    assert (container.state, container.reason) == ("waiting", "CreateContainerConfigError")
    assert "cannot load seccomp profile" in container.message and "does not exist" in container.message


@pytest.mark.parametrize(("capabilities", "verdict"), [({"drop": ["ALL"]}, f"chown: /tmp/f: {EPERM}"),
                                                       (None, "chown=0")])
def test_dropping_all_capabilities_makes_chown_fail(node: Node, capabilities: dict[str, Any] | None,
                                                    verdict: str) -> None:
    container_sc = {"capabilities": capabilities} if capabilities else {}
    pod = busybox_pod("caps-dropped" if capabilities else "caps-default",
                      "touch /tmp/f; chown 65534 /tmp/f; echo chown=$?", container_sc=container_sc)
    assert verdict in node.run(pod).log


def test_read_only_root_filesystem_refuses_writes(node: Node) -> None:
    pod = busybox_pod("read-only-root", "touch /x; echo touch=$?",
                      container_sc={"readOnlyRootFilesystem": True})
    log = node.run(pod).log
    assert "touch: /x: Read-only file system" in log and "touch=1" in log


def test_proc_kernel_interfaces_are_masked_and_read_only(node: Node) -> None:
    # Only paths this kernel has can be masked; pick the first masked file that exists here.
    masked = next((path for path in DEFAULT_MASKED_PATHS if Path(path).is_file()), None)
    if masked is None:
        pytest.skip("this kernel has none of the masked /proc files")
    assert Path(masked).read_bytes(), f"{masked} is empty on the host: it proves nothing"
    pod = busybox_pod("proc-paths", f"echo masked=$(wc -c < {masked}); "
                      "echo x > /proc/sys/kernel/domainname; echo write=$?")
    log = node.run(pod).log
    assert "masked=0" in log  # bind-mounted /dev/null
    assert "Read-only file system" in log and "write=1" in log


def test_run_as_non_root_with_root_image_never_starts(node: Node) -> None:
    pod = busybox_pod("non-root-root-image", "id", pod_sc={"runAsNonRoot": True})
    finished = node.run(pod)
    container = finished.status.containers[0]
    assert (container.state, container.reason, container.container_id) == (
        "waiting", "CreateContainerConfigError", "")
    assert container.message == ("container has runAsNonRoot and image will run as root "
                                 f'(pod: "non-root-root-image_enforcement({pod["metadata"]["uid"]})", '
                                 "container: main)")
    assert finished.status.phase == "Pending"
    assert node.cri.list_containers(labels={"io.kubernetes.pod.uid": pod["metadata"]["uid"]}) == []


def test_non_root_image_runs_as_nobody(node: Node) -> None:
    pod = busybox_pod("non-root-image", "id", image=NONROOT_IMAGE, pod_sc={"runAsNonRoot": True})
    finished = node.run(pod)
    assert finished.status.phase == "Succeeded"
    assert "uid=65534(nobody) gid=65534(nogroup)" in finished.log


def test_apparmor_pod_is_rejected_with_the_upstream_message(node: Node) -> None:
    if AppArmorHost().enabled():
        pytest.skip("this host has AppArmor; the rejection branch is covered by unit tests")
    pod = busybox_pod("apparmor", "true", container_sc={"appArmorProfile": {"type": "RuntimeDefault"}})
    with pytest.raises(PodAdmissionError) as raised:
        node.runtime().run_pod(pod)
    assert str(raised.value) == "Cannot enforce AppArmor: AppArmor is not enabled on the host"
    assert node.cri.list_pod_sandboxes(labels={"io.kubernetes.pod.uid": pod["metadata"]["uid"]}) == []


def test_pod_pids_limit_stops_a_fork_bomb(node: Node) -> None:
    pod = busybox_pod("fork-bomb", "for i in $(seq 1 40); do sleep 30 & done")
    finished = node.run(pod, runtime=node.runtime(pod_pids_limit=16))
    assert "can't fork" in finished.log
    assert finished.status.phase == "Failed"


def test_memory_limit_reaches_the_container_cgroup(node: Node) -> None:
    pod = busybox_pod("memory-limit", "cat /sys/fs/cgroup/memory/memory.limit_in_bytes "
                      "2>/dev/null || cat /sys/fs/cgroup/memory.max",
                      resources={"limits": {"memory": "64Mi", "cpu": "250m"}})
    assert str(64 * 2**20) in node.run(pod).log


def test_kill_pod_stops_a_running_pod_and_removes_it(node: Node) -> None:
    runtime = node.runtime()
    pod = busybox_pod("long-running", "trap 'exit 0' TERM; while :; do sleep 1 & wait; done")
    state = runtime.run_pod(pod)
    deadline = time.monotonic() + 10
    while runtime.status(state).phase != "Running":
        assert time.monotonic() < deadline, "pod never reached Running"
        time.sleep(0.02)
    started = time.monotonic()
    runtime.kill_pod(state, grace_seconds=5)
    assert time.monotonic() - started < 5  # SIGTERM was honoured, no SIGKILL wait
    assert node.cri.list_pod_sandboxes(labels={"io.kubernetes.pod.uid": state.uid}) == []
    assert node.cri.list_containers(labels={"io.kubernetes.pod.uid": state.uid}) == []
