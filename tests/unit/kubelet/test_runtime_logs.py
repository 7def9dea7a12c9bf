"""Where a container's log is and whether it still runs, asked of the runtime as upstream's kubelet asks."""
from __future__ import annotations

from pathlib import Path

import grpc
import pytest

from securekube.kubelet.apparmor import AppArmorHost
from securekube.kubelet.cri import runtime_v1_pb2 as pb
from securekube.kubelet.cri.client import CriError, CriNotFound
from securekube.kubelet.runtime import (LABEL_CONTAINER_NAME, LABEL_POD_UID, ContainerLogFile, PodRuntime,
                                        RuntimeConfig)
from securekube.kubelet.security import NodeSecurity

LOGS = "/var/log/pods/team-a_web_u-1"


class ListingCri:
    """Lists containers by label and reports their status, as containerd does."""

    def __init__(self, *containers: tuple[str, str, int, int]) -> None:
        self.containers = [pb.Container(id=cid, metadata=pb.ContainerMetadata(name=name, attempt=attempt),
                                        labels={LABEL_POD_UID: "u-1", LABEL_CONTAINER_NAME: name})
                           for cid, name, attempt, _ in containers]
        self.statuses = {cid: pb.ContainerStatus(id=cid, state=state, log_path=f"{LOGS}/{name}/{attempt}.log")
                         for cid, name, attempt, state in containers}
        self.failing = False

    def list_containers(self, sandbox_id: str = "", labels: dict[str, str] | None = None) -> list[pb.Container]:
        wanted = (labels or {}).items()
        return [c for c in self.containers if wanted <= c.labels.items()]

    def container_status(self, container_id: str) -> pb.ContainerStatus:
        if self.failing:
            raise CriError("ContainerStatus", grpc.StatusCode.UNAVAILABLE, "runtime down")
        if container_id not in self.statuses:
            raise CriNotFound("ContainerStatus", grpc.StatusCode.NOT_FOUND, "not found")
        return self.statuses[container_id]


def runtime_with(cri: ListingCri, tmp_path: Path) -> PodRuntime:
    config = RuntimeConfig(log_root=tmp_path, cgroups=None, pod_pids_limit=None, memory_capacity=2**30,
                           node_security=NodeSecurity(seccomp_root=tmp_path, apparmor=AppArmorHost(tmp_path / "no")))
    return PodRuntime(cri, config)  # type: ignore[arg-type]


def test_the_newest_attempt_is_the_current_log_and_the_one_before_is_previous(tmp_path: Path) -> None:
    cri = ListingCri(("c1", "app", 1, pb.CONTAINER_RUNNING), ("s0", "side", 0, pb.CONTAINER_RUNNING))
    runtime = runtime_with(cri, tmp_path)
    assert runtime.find_container_log("u-1", "app") == ContainerLogFile(Path(f"{LOGS}/app/1.log"), "c1")
    assert runtime.find_container_log("u-1", "app", previous=True) == ContainerLogFile(Path(f"{LOGS}/app/0.log"), "")
    assert runtime.find_container_log("u-1", "side", previous=True) is None  # never restarted
    assert runtime.find_container_log("u-1", "other") is None
    assert runtime.find_container_log("u-2", "app") is None


def test_only_a_running_container_is_followed(tmp_path: Path) -> None:
    cri = ListingCri(("run", "a", 0, pb.CONTAINER_RUNNING), ("made", "b", 0, pb.CONTAINER_CREATED),
                     ("done", "c", 0, pb.CONTAINER_EXITED))
    runtime = runtime_with(cri, tmp_path)
    assert [runtime.container_running(cid) for cid in ("run", "made", "done", "gone", "")] == [
        True, False, False, False, False]
    cri.failing = True
    with pytest.raises(CriError):
        runtime.container_running("run")  # the caller decides what a runtime that cannot tell means
