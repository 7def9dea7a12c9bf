"""The kubelet's pod start path: starts go before events, each start is timed in one log line, no repeated image lookup."""
from __future__ import annotations

import logging
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from securekube.events import EventRecorder, EventSource
from securekube.kubelet.agent import EventsAfterStarts
from securekube.kubelet.pod_worker import PodStarts, PodWorker, WorkerContext
from securekube.kubelet.runtime import ContainerRun, ContainerStatusView, PodRunState, PodStatusView
from tests.helpers import wait_for


class GatedRuntime:
    """Starts a one-container pod once `release` is set; the image counts as pulled if `pulled`."""

    def __init__(self, tmp_path: Path, pulled: bool = False) -> None:
        self.tmp_path = tmp_path
        self.release = threading.Event()
        self.pulled = pulled

    def run_pod(self, pod: dict) -> PodRunState:
        assert self.release.wait(10)
        run = ContainerRun("main", "busybox:1.36", 0, "main/0.log", container_id="c0", image_pulled=self.pulled)
        return PodRunState(uid=pod["metadata"]["uid"], namespace="default", name=pod["metadata"]["name"],
                           sandbox_id="s", sandbox_config=b"", log_directory=self.tmp_path, restart_policy="Never",
                           grace_seconds=30, containers=(run,), sandbox_ready_at=time.monotonic())

    def status(self, state: PodRunState) -> PodStatusView:
        view = ContainerStatusView("main", "running", "busybox:1.36", container_id="containerd://c0")
        return PodStatusView("Running", True, "10.0.0.2", (view,))

    def kill_pod(self, state: PodRunState, grace_seconds: int | None = None, remove: bool = True) -> None:
        pass


class StatusClient:
    def __init__(self) -> None:
        self.statuses: list[dict] = []

    def update(self, path: str, body: dict) -> dict:
        self.statuses.append(body)
        return body


class ListSink:
    def __init__(self) -> None:
        self.reasons: list[str] = []
        self.messages: list[str] = []

    def create(self, namespace: str, event: dict[str, Any]) -> None:
        self.reasons.append(event["reason"])
        self.messages.append(event["message"])

    def patch(self, namespace: str, name: str, changes: dict[str, Any]) -> bool:
        return True


def pod(name: str = "web") -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "uid": f"uid-{name}"},
            "spec": {"nodeName": "node-a", "restartPolicy": "Never",
                     "containers": [{"name": "main", "image": "busybox:1.36"}]},
            "status": {"phase": "Pending"}}


def test_a_lull_is_immediate_when_no_pod_is_starting() -> None:
    began = time.monotonic()
    PodStarts().wait_for_lull(5.0)
    assert time.monotonic() - began < 1.0


def test_waiting_for_a_lull_ends_when_the_last_start_ends() -> None:
    starts = PodStarts()
    starts.begin()
    starts.begin()
    waited = threading.Event()
    waiter = threading.Thread(target=lambda: (starts.wait_for_lull(10.0), waited.set()))
    waiter.start()
    starts.end()
    assert not waited.wait(0.2)  # one start is still in progress
    starts.end()
    assert waited.wait(5.0)
    waiter.join()


def test_starts_that_never_pause_delay_waiting_work_but_never_starve_it() -> None:
    starts = PodStarts()
    starts.begin()
    began = time.monotonic()
    starts.wait_for_lull(0.2)
    assert 0.15 <= time.monotonic() - began < 2.0
    starts.end()


def test_events_wait_until_the_starting_pod_reports_its_status(tmp_path: Path) -> None:
    sink, starts, client = ListSink(), PodStarts(), StatusClient()
    recorder = EventRecorder(EventsAfterStarts(sink, starts, hold_seconds=30), EventSource("kubelet", host="node-a"))
    recorder.start()
    runtime = GatedRuntime(tmp_path)
    context = WorkerContext(runtime, client, "127.0.0.1", sync_seconds=0.02, events=recorder, starts=starts)
    worker = PodWorker(pod(), context, lambda uid: None)
    other = PodWorker(pod("other"), context, lambda uid: None)
    try:
        worker.start()
        other.start()
        time.sleep(0.1)
        assert sink.reasons == [] and client.statuses == []  # both pods are still starting
        runtime.release.set()
        wait_for(lambda: len(sink.reasons) == 6)
        assert len(client.statuses) == 2  # the statuses went out before the events could
        assert sink.reasons == ["Pulled", "Created", "Started"] * 2
    finally:
        worker.stop()
        other.stop()
        recorder.close()


def test_the_pulled_event_follows_what_the_runtime_did(tmp_path: Path) -> None:
    sink = ListSink()
    recorder = EventRecorder(sink, EventSource("kubelet", host="node-a"))
    recorder.start()
    runtime = GatedRuntime(tmp_path, pulled=True)
    runtime.release.set()
    worker = PodWorker(pod(), WorkerContext(runtime, StatusClient(), "127.0.0.1", sync_seconds=0.02,
                                            events=recorder), lambda uid: None)
    try:
        worker.start()
        wait_for(lambda: recorder.flush(1) and len(sink.reasons) >= 4)
    finally:
        worker.stop()
        recorder.close()
    assert sink.reasons == ["Pulling", "Pulled", "Created", "Started"]
    assert sink.messages[1] == 'Successfully pulled image "busybox:1.36"'


def test_a_started_pod_logs_its_start_up_steps_once(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    runtime = GatedRuntime(tmp_path)
    runtime.release.set()
    client = StatusClient()
    worker = PodWorker(pod(), WorkerContext(runtime, client, "127.0.0.1", sync_seconds=0.02), lambda uid: None)
    with caplog.at_level(logging.INFO, logger="securekube.kubelet.podstartup"):
        try:
            worker.start()
            wait_for(lambda: client.statuses)
            time.sleep(0.1)  # more sync rounds: still one line
        finally:
            worker.stop()
    lines = [r.getMessage() for r in caplog.records if r.name == "securekube.kubelet.podstartup"]
    assert len(lines) == 1
    assert lines[0].startswith("pod default/web running: sandbox ready ")
    assert " ms, containers started " in lines[0] and " ms, status sent " in lines[0]
    assert lines[0].endswith(" ms after the kubelet saw it")
