"""The pod worker: runs a pod, reports its status, restarts as the policy says, and removes it on deletion."""
from __future__ import annotations

import threading
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from securekube.kubelet.apiclient import ApiStatusError
from securekube.kubelet.errors import PodAdmissionError
from securekube.kubelet.pod_worker import LogUnavailable, PodWorker, WorkerContext
from securekube.kubelet.runtime import ContainerRun, ContainerStatusView, PodRunState, PodStatusView
from tests.helpers import wait_for


class FakeRuntime:
    """Runs one-container pods on paper: `exits` decides each attempt's exit code (None: keeps running)."""

    def __init__(self, tmp_path: Path, exits: list[int | None] | None = None,
                 refusal: PodAdmissionError | None = None) -> None:
        self.tmp_path = tmp_path
        self.exits = list(exits or [None])
        self.refusal = refusal
        self.calls: list[tuple[str, Any]] = []
        self.sandbox_stopped = False

    def run_pod(self, pod: dict) -> PodRunState:
        self.calls.append(("run_pod", pod["metadata"]["name"]))
        if self.refusal:
            raise self.refusal
        logs = self.tmp_path / "logs"
        (logs / "main").mkdir(parents=True, exist_ok=True)
        run = ContainerRun("main", "busybox", 0, "main/0.log", container_id="c0")
        return PodRunState(uid=pod["metadata"]["uid"], namespace="default", name=pod["metadata"]["name"],
                           sandbox_id="s", sandbox_config=b"", log_directory=logs,
                           restart_policy=pod["spec"].get("restartPolicy", "Always"), grace_seconds=30,
                           containers=(run,))

    def status(self, state: PodRunState) -> PodStatusView:
        run = state.containers[0]
        exit_code = self.exits[min(run.attempt, len(self.exits) - 1)]
        view = ContainerStatusView("main", "running" if exit_code is None else "terminated", "busybox",
                                   container_id="containerd://" + run.container_id, exit_code=exit_code,
                                   reason="" if exit_code is None else ("Completed" if exit_code == 0 else "Error"),
                                   restart_count=run.attempt)
        if exit_code is None:
            phase = "Running"
        elif state.restart_policy == "Always" or (state.restart_policy == "OnFailure" and exit_code):
            phase = "Running"
        else:
            phase = "Succeeded" if exit_code == 0 else "Failed"
        return PodStatusView(phase, not self.sandbox_stopped, "" if self.sandbox_stopped else "10.199.0.7", (view,))

    def restart_container(self, pod: dict, state: PodRunState, name: str) -> PodRunState:
        self.calls.append(("restart", name))
        previous = state.containers[0]
        run = replace(previous, attempt=previous.attempt + 1, container_id=f"c{previous.attempt + 1}",
                      log_path=f"main/{previous.attempt + 1}.log")
        return replace(state, containers=(run,))

    def kill_pod(self, state: PodRunState, grace_seconds: int | None = None, remove: bool = True) -> None:
        self.calls.append(("kill_pod", (grace_seconds, remove)))
        self.sandbox_stopped = True


class FakeClient:
    """Records status updates and deletes; a delete can be made to fail."""

    def __init__(self) -> None:
        self.statuses: list[dict] = []
        self.deletes: list[tuple[str, dict]] = []
        self.lock = threading.Lock()

    def update(self, path: str, body: dict) -> dict:
        assert path.endswith("/status")
        with self.lock:
            self.statuses.append(body)
        return body

    def delete(self, path: str, options: dict) -> dict:
        with self.lock:
            self.deletes.append((path, options))
        raise ApiStatusError(404, "NotFound", "gone already")


def pod(name: str = "web", restart_policy: str = "Never", **meta: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}", **meta},
            "spec": {"nodeName": "node-a", "restartPolicy": restart_policy,
                     "containers": [{"name": "main", "image": "busybox"}]},
            "status": {"phase": "Pending", "qosClass": "BestEffort"}}


@pytest.fixture
def client() -> FakeClient:
    return FakeClient()


def start(obj: dict, runtime: FakeRuntime, client: FakeClient, done: list[str]) -> PodWorker:
    worker = PodWorker(obj, WorkerContext(runtime, client, "127.0.0.1", sync_seconds=0.02), done.append)
    worker.start()
    return worker


def last_status(client: FakeClient) -> dict:
    with client.lock:
        return client.statuses[-1]["status"]


def test_a_running_pod_reports_running_with_its_ip(tmp_path: Path, client: FakeClient) -> None:
    done: list[str] = []
    worker = start(pod(), FakeRuntime(tmp_path), client, done)
    try:
        wait_for(lambda: client.statuses)
        status = last_status(client)
        assert (status["phase"], status["podIP"], status["hostIP"], status["qosClass"]) == (
            "Running", "10.199.0.7", "127.0.0.1", "BestEffort")
        ready = next(c for c in status["conditions"] if c["type"] == "Ready")
        assert ready["status"] == "True"
        assert status["containerStatuses"][0]["state"] == {"running": {"startedAt": None}}
        assert client.statuses[-1]["metadata"]["uid"] == "uid-web"
    finally:
        worker.stop()


def test_a_refused_pod_fails_with_upstreams_reason_and_never_runs(tmp_path: Path, client: FakeClient) -> None:
    refusal = PodAdmissionError("AppArmor", "Cannot enforce AppArmor: AppArmor is not enabled on the host")
    runtime = FakeRuntime(tmp_path, refusal=refusal)
    worker = start(pod(), runtime, client, [])
    try:
        wait_for(lambda: client.statuses)
        status = last_status(client)
        assert (status["phase"], status["reason"], status["message"]) == (
            "Failed", "AppArmor", "Pod was rejected: Cannot enforce AppArmor: AppArmor is not enabled on the host")
        time.sleep(0.1)
        assert runtime.calls == [("run_pod", "web")]  # tried once, never again
    finally:
        worker.stop()


def test_a_finished_pod_stops_its_sandbox_and_keeps_its_containers(tmp_path: Path, client: FakeClient) -> None:
    runtime = FakeRuntime(tmp_path, exits=[0])
    worker = start(pod(restart_policy="Never"), runtime, client, [])
    try:
        wait_for(lambda: client.statuses and last_status(client)["phase"] == "Succeeded")
        assert ("kill_pod", (0, False)) in runtime.calls
        terminated = last_status(client)["containerStatuses"][0]["state"]["terminated"]
        assert (terminated["exitCode"], terminated["reason"]) == (0, "Completed")
        assert last_status(client)["podIP"] == "10.199.0.7"  # kept after the sandbox stopped
    finally:
        worker.stop()


def test_a_failing_container_restarts_at_once_then_backs_off(tmp_path: Path, client: FakeClient) -> None:
    runtime = FakeRuntime(tmp_path, exits=[1, 1, 1])
    worker = start(pod(restart_policy="OnFailure"), runtime, client, [])
    try:
        wait_for(lambda: any((s["status"]["containerStatuses"][0]["state"].get("waiting") or {}).get("reason")
                             == "CrashLoopBackOff" for s in client.statuses))
        assert runtime.calls.count(("restart", "main")) == 1
        status = last_status(client)["containerStatuses"][0]
        assert status["state"]["waiting"]["message"] == (
            "back-off 10s restarting failed container=main pod=web_default(uid-web)")
        assert status["lastState"]["terminated"]["exitCode"] == 1
        assert status["restartCount"] == 1
    finally:
        worker.stop()


def test_never_means_never_restart(tmp_path: Path, client: FakeClient) -> None:
    runtime = FakeRuntime(tmp_path, exits=[1])
    worker = start(pod(restart_policy="Never"), runtime, client, [])
    try:
        wait_for(lambda: client.statuses and last_status(client)["phase"] == "Failed")
        assert ("restart", "main") not in runtime.calls
    finally:
        worker.stop()


def test_deletion_stops_with_the_grace_period_then_deletes_the_object(tmp_path: Path, client: FakeClient) -> None:
    runtime = FakeRuntime(tmp_path)
    done: list[str] = []
    worker = start(pod(), runtime, client, done)
    wait_for(lambda: client.statuses)
    (tmp_path / "logs" / "main" / "0.log").write_text("x\n")
    worker.update(pod(deletionTimestamp="2024-05-01T12:00:00Z", deletionGracePeriodSeconds=7))
    wait_for(lambda: done == ["uid-web"])
    assert ("kill_pod", (7, False)) in runtime.calls and ("kill_pod", (0, True)) in runtime.calls
    assert not (tmp_path / "logs").exists()  # the pod's logs go with it
    path, options = client.deletes[0]
    assert path == "/api/v1/namespaces/default/pods/web"
    assert (options["gracePeriodSeconds"], options["preconditions"]) == (0, {"uid": "uid-web"})


def test_a_pod_that_vanished_is_killed_at_once(tmp_path: Path, client: FakeClient) -> None:
    runtime = FakeRuntime(tmp_path)
    done: list[str] = []
    worker = start(pod(), runtime, client, done)
    wait_for(lambda: client.statuses)
    worker.gone()
    wait_for(lambda: done == ["uid-web"])
    assert ("kill_pod", (0, False)) in runtime.calls
    assert client.deletes == []


def test_a_pod_finished_before_this_kubelet_started_is_not_run_again(tmp_path: Path, client: FakeClient) -> None:
    finished = pod()
    finished["status"]["phase"] = "Succeeded"
    runtime = FakeRuntime(tmp_path)
    worker = start(finished, runtime, client, [])
    time.sleep(0.1)
    worker.stop()
    assert runtime.calls == [] and client.statuses == []


def test_logs_name_what_is_missing(tmp_path: Path, client: FakeClient) -> None:
    runtime = FakeRuntime(tmp_path)
    worker = start(pod(), runtime, client, [])
    try:
        wait_for(lambda: client.statuses)
        log_file = tmp_path / "logs" / "main" / "0.log"
        log_file.write_text("2024-05-01T12:00:00.000000000Z stdout F hello\n")
        assert worker.container_logs("main") == "hello\n"
        with pytest.raises(LogUnavailable) as raised:
            worker.container_logs("sidecar")
        assert (raised.value.code, raised.value.message) == (400, "container sidecar is not valid for pod web")
        with pytest.raises(LogUnavailable) as raised:
            worker.container_logs("main", previous=True)
        assert raised.value.message == 'previous terminated container "main" in pod "web" not found'
    finally:
        worker.stop()
