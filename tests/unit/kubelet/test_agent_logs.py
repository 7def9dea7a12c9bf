"""The kubelet agent's container logs: upstream's refusals first, then the runtime's file, streamed."""
from __future__ import annotations

from datetime import datetime, timezone
from pathlib import Path

import grpc
import pytest

from securekube.api.podlogoptions import PodLogOptions
from securekube.kubelet.agent import AgentConfig, KubeletAgent
from securekube.kubelet.cri.client import CriError
from securekube.kubelet.pod_worker import LogUnavailable
from securekube.kubelet.runtime import ContainerLogFile


class Worker:
    """A pod worker as the agent sees it: a name, a uid, and upstream's refusals."""

    uid = "u-1"
    name = ("default", "web")

    def __init__(self, refusal: LogUnavailable | None = None) -> None:
        self.refusal = refusal

    def container_logs(self, container: str, tail_lines: int | None = None, previous: bool = False) -> str:
        if self.refusal:
            raise self.refusal
        return ""


class Runtime:
    """Knows one container's log file; `running` says whether it still runs."""

    def __init__(self, path: Path | None, failing: bool = False) -> None:
        self.path, self.failing, self.running = path, failing, True
        self.asked: list[tuple[str, str, bool]] = []

    def find_container_log(self, pod_uid: str, container: str, previous: bool = False) -> ContainerLogFile | None:
        self.asked.append((pod_uid, container, previous))
        if self.failing:
            raise CriError("ListContainers", grpc.StatusCode.UNAVAILABLE, "runtime down")
        return None if self.path is None else ContainerLogFile(self.path, "c1")

    def container_running(self, container_id: str) -> bool:
        return self.running


def agent_with(tmp_path: Path, runtime: Runtime, worker: Worker | None = Worker()) -> KubeletAgent:
    agent = KubeletAgent(AgentConfig(node_name="node-a", address="127.0.0.1", kubelet_port=10250,
                                     kubeconfig=tmp_path / "kubeconfig"), runtime, cri=None)  # type: ignore[arg-type]
    if worker is not None:
        agent._workers[worker.uid] = worker  # type: ignore[assignment]  # as the pod watch would
    return agent


def refusal(agent: KubeletAgent, options: PodLogOptions = PodLogOptions()) -> tuple[int, str]:
    with pytest.raises(LogUnavailable) as raised:
        agent.container_logs("default", "web", "main", options)
    return raised.value.code, raised.value.message


def test_a_pod_this_node_does_not_run_has_no_log(tmp_path: Path) -> None:
    agent = agent_with(tmp_path, Runtime(tmp_path / "0.log"), worker=None)
    assert refusal(agent) == (404, 'pod "web" in namespace "default" is not running on this node')


def test_following_a_container_that_has_not_started_is_refused_as_upstream(tmp_path: Path) -> None:
    waiting = LogUnavailable(400, 'container "main" in pod "web" is waiting to start: ContainerCreating')
    runtime = Runtime(tmp_path / "0.log")
    agent = agent_with(tmp_path, runtime, Worker(waiting))
    assert refusal(agent, PodLogOptions(follow=True)) == (400, waiting.message)
    assert runtime.asked == []  # refused before the runtime is asked


def test_a_container_the_runtime_does_not_know_or_cannot_tell_about(tmp_path: Path) -> None:
    assert refusal(agent_with(tmp_path, Runtime(None))) == (400, 'container "main" in pod "web" is not available')
    assert refusal(agent_with(tmp_path, Runtime(tmp_path / "0.log", failing=True))) == (
        503, "the container runtime does not answer; retry")


def test_the_log_streams_with_the_options_applied_until_the_container_stops(tmp_path: Path) -> None:
    path = tmp_path / "0.log"
    recent = datetime.now(timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")
    path.write_text(f"2020-01-01T00:00:00Z stdout F long ago\n{recent} stdout F just now\n")
    runtime = Runtime(path)
    agent = agent_with(tmp_path, runtime)
    with agent.container_logs("default", "web", "main", PodLogOptions(follow=True, since_seconds=60)) as stream:
        runtime.running = False  # it stops; the follow drains the file and ends
        assert b"".join(stream.chunks()) == b"just now\n"
    assert runtime.asked == [("u-1", "main", False)]
    with agent.container_logs("default", "web", "main", PodLogOptions(previous=True, tail_lines=1)) as stream:
        assert b"".join(stream.chunks()) == b"just now\n"
    assert runtime.asked[-1] == ("u-1", "main", True)
