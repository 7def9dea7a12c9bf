"""PodRuntime drives CRI in the right order and refuses before the runtime is asked (fake CRI)."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import grpc
import pytest

from securekube.kubelet.apparmor import AppArmorHost
from securekube.kubelet.cgroups import PodCgroups
from securekube.kubelet.cri import runtime_v1_pb2 as pb
from securekube.kubelet.cri.client import CriError, CriNotFound
from securekube.kubelet.errors import PodAdmissionError
from securekube.kubelet.runtime import (
    ContainerStatusView,
    PodRuntime,
    RuntimeConfig,
    SandboxCreationError,
    expand_references,
    image_pull_policy,
    pod_phase,
)
from securekube.kubelet.security import NodeSecurity

ROOT_IMAGE = "localhost/securekube/busybox:test"
NONROOT_IMAGE = "localhost/securekube/busybox:nonroot"


class FakeCri:
    """Records calls; knows two images and answers status for what it created."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, Any]] = []
        self.images = {ROOT_IMAGE: pb.Image(id="sha256:root"),
                       NONROOT_IMAGE: pb.Image(id="sha256:nobody", uid=pb.Int64Value(value=65534))}
        self.sandbox_error: CriError | None = None
        self.statuses: dict[str, pb.ContainerStatus] = {}

    def run_pod_sandbox(self, config: pb.PodSandboxConfig, handler: str) -> str:
        self.calls.append(("RunPodSandbox", config))
        if self.sandbox_error:
            raise self.sandbox_error
        return "sandbox-1"

    def image_status(self, image: str) -> pb.Image | None:
        return self.images.get(image)

    def pull_image(self, image: str) -> str:
        self.calls.append(("PullImage", image))
        raise CriError("PullImage", grpc.StatusCode.UNKNOWN, "no registry reachable")

    def create_container(self, sandbox_id: str, config: pb.ContainerConfig,
                         sandbox_config: pb.PodSandboxConfig) -> str:
        self.calls.append(("CreateContainer", config))
        container_id = f"c-{config.metadata.name}"
        self.statuses[container_id] = pb.ContainerStatus(id=container_id, state=pb.CONTAINER_RUNNING,
                                                         started_at=1_700_000_000_000_000_000)
        return container_id

    def start_container(self, container_id: str) -> None:
        self.calls.append(("StartContainer", container_id))

    def container_status(self, container_id: str) -> pb.ContainerStatus:
        if container_id not in self.statuses:
            raise CriNotFound("ContainerStatus", grpc.StatusCode.NOT_FOUND, "not found")
        return self.statuses[container_id]

    def pod_sandbox_status(self, sandbox_id: str) -> pb.PodSandboxStatusResponse:
        return pb.PodSandboxStatusResponse(status=pb.PodSandboxStatus(
            id=sandbox_id, state=pb.SANDBOX_READY, network=pb.PodSandboxNetworkStatus(ip="10.199.0.9")))

    def stop_container(self, container_id: str, grace: int) -> None:
        self.calls.append(("StopContainer", (container_id, grace)))

    def remove_container(self, container_id: str) -> None:
        self.calls.append(("RemoveContainer", container_id))
        raise CriNotFound("RemoveContainer", grpc.StatusCode.NOT_FOUND, "already gone")

    def stop_pod_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(("StopPodSandbox", sandbox_id))

    def remove_pod_sandbox(self, sandbox_id: str) -> None:
        self.calls.append(("RemovePodSandbox", sandbox_id))

    def names(self) -> list[str]:
        return [name for name, _ in self.calls]


class FakeCgroupfs(PodCgroups):
    """PodCgroups on a plain directory: unlike cgroupfs, its control files must go before rmdir."""

    @staticmethod
    def _remove_tree(directory: Path, deadline: float) -> None:
        for control_file in directory.glob("*"):
            if control_file.is_file():
                control_file.unlink()
        PodCgroups._remove_tree(directory, deadline)


@pytest.fixture
def cri() -> FakeCri:
    return FakeCri()


@pytest.fixture
def cgroup_root(tmp_path: Path) -> Path:
    root = tmp_path / "cgroup"
    (root / "pids").mkdir(parents=True)
    return root


@pytest.fixture
def runtime(cri: FakeCri, tmp_path: Path, cgroup_root: Path) -> PodRuntime:
    config = RuntimeConfig(
        log_root=tmp_path / "pods",
        node_security=NodeSecurity(seccomp_root=tmp_path / "seccomp",
                                   apparmor=AppArmorHost(tmp_path / "no-sysfs")),
        pod_pids_limit=64, cgroups=FakeCgroupfs(root=cgroup_root, parent="sk"), memory_capacity=2**33)
    return PodRuntime(cri, config)  # type: ignore[arg-type]


def make_pod(image: str = ROOT_IMAGE, pod_sc: dict[str, Any] | None = None,
             **container: Any) -> dict[str, Any]:
    return {
        "metadata": {"name": "web", "namespace": "team-a", "uid": "u-1", "labels": {"app": "web"}},
        "spec": {"restartPolicy": "Never", "terminationGracePeriodSeconds": 7,
                 "securityContext": pod_sc or {},
                 "containers": [{"name": "app", "image": image, **container}]},
    }


def test_pod_runs_with_sandbox_then_container(runtime: PodRuntime, cri: FakeCri, tmp_path: Path,
                                              cgroup_root: Path) -> None:
    pod = make_pod(command=["sh", "-c", "echo $(GREETING) $$(HOME)"],
                   env=[{"name": "GREETING", "value": "hi"}])
    state = runtime.run_pod(pod)
    assert cri.names() == ["RunPodSandbox", "CreateContainer", "StartContainer"]
    sandbox: pb.PodSandboxConfig = cri.calls[0][1]
    assert sandbox.hostname == "web"
    assert sandbox.labels["io.kubernetes.pod.uid"] == "u-1" and sandbox.labels["app"] == "web"
    assert sandbox.linux.cgroup_parent == "/sk/podu_1"
    assert (cgroup_root / "pids" / "sk" / "podu_1" / "pids.max").read_text() == "64"
    assert sandbox.log_directory == str(tmp_path / "pods" / "team-a_web_u-1")
    config: pb.ContainerConfig = cri.calls[1][1]
    assert list(config.command) == ["sh", "-c", "echo hi $(HOME)"]
    assert config.image.image == "sha256:root" and config.log_path == "app/0.log"
    assert config.linux.security_context.seccomp.profile_type == pb.SecurityProfile.RuntimeDefault
    assert state.container("app").container_id == "c-app"
    status = runtime.status(state)
    assert (status.phase, status.pod_ip, status.container("app").state) == ("Running", "10.199.0.9", "running")


def test_apparmor_pod_is_rejected_before_anything_is_created(runtime: PodRuntime, cri: FakeCri,
                                                              cgroup_root: Path) -> None:
    pod = make_pod(securityContext={"appArmorProfile": {"type": "RuntimeDefault"}})
    with pytest.raises(PodAdmissionError, match="^Cannot enforce AppArmor: AppArmor is not enabled on the host$"):
        runtime.run_pod(pod)
    assert cri.calls == []
    assert not (cgroup_root / "pids" / "sk").exists()


def test_run_as_non_root_with_root_image_never_creates_the_container(runtime: PodRuntime,
                                                                     cri: FakeCri) -> None:
    state = runtime.run_pod(make_pod(pod_sc={"runAsNonRoot": True}))
    assert "CreateContainer" not in cri.names()
    view = runtime.status(state).container("app")
    assert (view.state, view.reason) == ("waiting", "CreateContainerConfigError")
    assert view.message.startswith("container has runAsNonRoot and image will run as root")
    assert runtime.status(state).phase == "Pending"
    assert view.to_k8s()["state"] == {"waiting": {"reason": "CreateContainerConfigError",
                                                  "message": view.message}}


def test_non_root_image_passes_run_as_non_root(runtime: PodRuntime, cri: FakeCri) -> None:
    runtime.run_pod(make_pod(NONROOT_IMAGE, pod_sc={"runAsNonRoot": True}))
    config: pb.ContainerConfig = cri.calls[1][1]
    assert config.linux.security_context.run_as_user.value == 65534


@pytest.mark.parametrize(("image", "policy", "reason", "message"), [
    ("registry.example/app:1", "IfNotPresent", "ErrImagePull", "no registry reachable"),
    ("registry.example/app:1", "Never", "ErrImageNeverPull",
     'Container image "registry.example/app:1" is not present with pull policy of Never'),
])
def test_missing_images(runtime: PodRuntime, cri: FakeCri, image: str, policy: str, reason: str,
                        message: str) -> None:
    state = runtime.run_pod(make_pod(image, imagePullPolicy=policy))
    run = state.container("app")
    assert (run.waiting_reason, run.container_id) == (reason, "")
    assert message in run.message


def test_unsupported_volume_mounts_do_not_run_silently_without_volumes(runtime: PodRuntime) -> None:
    state = runtime.run_pod(make_pod(volumeMounts=[{"name": "data", "mountPath": "/data"}]))
    assert state.container("app").waiting_reason == "CreateContainerConfigError"


def test_host_ports_are_refused(runtime: PodRuntime, cri: FakeCri) -> None:
    with pytest.raises(PodAdmissionError, match="hostPort"):
        runtime.run_pod(make_pod(ports=[{"containerPort": 80, "hostPort": 8080}]))
    assert cri.calls == []


def test_host_network_pod_gets_no_hostname(runtime: PodRuntime, cri: FakeCri) -> None:
    pod = make_pod()
    pod["spec"]["hostNetwork"] = True
    runtime.run_pod(pod)
    assert cri.calls[0][1].hostname == ""


def test_sandbox_failure_leaves_nothing_behind(runtime: PodRuntime, cri: FakeCri,
                                               cgroup_root: Path) -> None:
    cri.sandbox_error = CriError("RunPodSandbox", grpc.StatusCode.UNKNOWN, "cni failed")
    with pytest.raises(SandboxCreationError, match="cni failed"):
        runtime.run_pod(make_pod())
    assert not (cgroup_root / "pids" / "sk" / "podu_1").exists()


def test_kill_stops_with_grace_then_removes_everything(runtime: PodRuntime, cri: FakeCri,
                                                       cgroup_root: Path) -> None:
    state = runtime.run_pod(make_pod())
    cri.calls.clear()
    runtime.kill_pod(state)
    assert cri.calls == [("StopContainer", ("c-app", 7)), ("StopPodSandbox", "sandbox-1"),
                         ("RemoveContainer", "c-app"), ("RemovePodSandbox", "sandbox-1")]
    assert not (cgroup_root / "pids" / "sk" / "podu_1").exists()


def test_exited_container_status(runtime: PodRuntime, cri: FakeCri) -> None:
    state = runtime.run_pod(make_pod())
    cri.statuses["c-app"] = pb.ContainerStatus(
        id="c-app", state=pb.CONTAINER_EXITED, exit_code=1, reason="Error",
        started_at=1_700_000_000_000_000_000, finished_at=1_700_000_001_000_000_000)
    status = runtime.status(state)
    assert status.phase == "Failed"
    terminated = status.container("app").to_k8s()["state"]["terminated"]
    assert terminated == {"exitCode": 1, "reason": "Error", "startedAt": "2023-11-14T22:13:20Z",
                          "finishedAt": "2023-11-14T22:13:21Z", "containerID": "containerd://c-app"}


def view(state: str, exit_code: int | None = None) -> ContainerStatusView:
    return ContainerStatusView(name="c", state=state, image="i", exit_code=exit_code)


@pytest.mark.parametrize(("policy", "states", "phase"), [
    ("Always", [view("waiting")], "Pending"),
    ("Always", [view("running"), view("terminated", 1)], "Running"),
    ("Never", [view("terminated", 0), view("terminated", 0)], "Succeeded"),
    ("Never", [view("terminated", 0), view("terminated", 2)], "Failed"),
    ("OnFailure", [view("terminated", 2)], "Running"),
    ("Always", [view("terminated", 0)], "Running"),
])
def test_pod_phase(policy: str, states: list[ContainerStatusView], phase: str) -> None:
    assert pod_phase(policy, tuple(states)) == phase


@pytest.mark.parametrize(("image", "policy"), [
    ("busybox", "Always"), ("busybox:latest", "Always"), ("localhost:5000/busybox", "Always"),
    ("busybox:1.36", "IfNotPresent"), ("busybox@sha256:abc", "IfNotPresent"),
])
def test_default_pull_policy(image: str, policy: str) -> None:
    assert image_pull_policy({"image": image}) == policy


def test_reference_expansion_leaves_unknown_variables() -> None:
    assert expand_references("$(A)-$(B)-$$(A)", {"A": "x"}) == "x-$(B)-$(A)"


@pytest.mark.parametrize(("field", "value"), [
    ("uid", "../../etc"), ("name", "Web/../x"), ("namespace", "a/b"),
])
def test_names_that_would_escape_host_paths_are_refused(runtime: PodRuntime, cri: FakeCri,
                                                        field: str, value: str) -> None:
    pod = make_pod()
    pod["metadata"][field] = value
    with pytest.raises(PodAdmissionError, match=f"metadata.{field}: Invalid value"):
        runtime.run_pod(pod)
    assert cri.calls == []


def test_restart_starts_the_next_attempt_with_its_own_log(runtime: PodRuntime, cri: FakeCri) -> None:
    pod = make_pod()
    state = runtime.restart_container(pod, runtime.run_pod(pod), "app")
    run = state.container("app")
    assert (run.attempt, run.log_path) == (1, "app/1.log")
    assert cri.calls[-2][1].metadata.attempt == 1
    assert runtime.status(state).container("app").restart_count == 1


def test_invalid_pod_user_is_refused_before_the_cgroup_exists(runtime: PodRuntime, cri: FakeCri,
                                                              cgroup_root: Path) -> None:
    with pytest.raises(PodAdmissionError, match="runAsUser: must be a non-negative integer"):
        runtime.run_pod(make_pod(pod_sc={"runAsUser": -1}))
    assert cri.calls == [] and not (cgroup_root / "pids" / "sk").exists()


def test_the_runtime_tells_whether_it_pulled_after_one_image_lookup(runtime: PodRuntime, cri: FakeCri,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    lookups: list[str] = []
    known = cri.image_status
    monkeypatch.setattr(cri, "image_status", lambda image: lookups.append(image) or known(image))
    state = runtime.run_pod(make_pod(NONROOT_IMAGE))
    assert state.container("app").image_pulled is False
    assert lookups == [NONROOT_IMAGE]
    assert state.sandbox_ready_at is not None and state.sandbox_ready_at <= time.monotonic()
