"""The kubelet's Events: upstream's reasons and words for each step of a pod's life, without holding up the pod."""
from __future__ import annotations

import threading
from collections.abc import Iterator
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from securekube.api.errors import ApiError
from securekube.events import EventRecorder, EventSource
from securekube.kubelet.apiclient import ApiStatusError
from securekube.kubelet.errors import PodAdmissionError
from securekube.kubelet.events import ApiEventSink, container_start_events
from securekube.kubelet.pod_worker import PodWorker, WorkerContext
from securekube.kubelet.runtime import ContainerRun, ContainerStatusView, PodRunState, PodStatusView, SandboxCreationError
from tests.helpers import wait_for


class ListSink:
    """Events as the server would keep them, in order of creation."""

    def __init__(self) -> None:
        self.events: list[dict] = []
        self.lock = threading.Lock()
        self.fail = False

    def create(self, namespace: str, event: dict[str, Any]) -> None:
        if self.fail:
            raise ApiError(503, "ServiceUnavailable", "down")
        with self.lock:
            self.events.append(event)

    def patch(self, namespace: str, name: str, changes: dict[str, Any]) -> bool:
        with self.lock:
            for index, event in enumerate(self.events):
                if event["metadata"]["name"] == name:
                    self.events[index] = {**event, **changes}
                    return True
        return False

    def story(self) -> list[tuple[str, str, str, str]]:
        """(type, reason, message, fieldPath) of every event, in order."""
        with self.lock:
            return [(e["type"], e["reason"], e["message"], e["involvedObject"].get("fieldPath", "")) for e in self.events]

    def count(self, reason: str) -> int:
        with self.lock:
            return next(e["count"] for e in self.events if e["reason"] == reason)


class StepRuntime:
    """A one-container pod on paper: `outcome` is the first attempt's ContainerRun, `exits` each attempt's exit."""

    def __init__(self, tmp_path: Path, outcome: ContainerRun | None = None, exits: list[int | None] | None = None,
                 failure: Exception | None = None) -> None:
        self.tmp_path = tmp_path
        self.outcome = outcome or ContainerRun("main", "busybox:1.36", 0, "main/0.log", container_id="c0")
        self.exits = list(exits or [None])
        self.failure = failure
        self.killed = False

    def run_pod(self, pod: dict) -> PodRunState:
        if self.failure is not None:
            raise self.failure
        return PodRunState(uid=pod["metadata"]["uid"], namespace="default", name=pod["metadata"]["name"],
                           sandbox_id="s", sandbox_config=b"", log_directory=self.tmp_path,
                           restart_policy=pod["spec"]["restartPolicy"], grace_seconds=30, containers=(self.outcome,))

    def status(self, state: PodRunState) -> PodStatusView:
        run = state.containers[0]
        if not run.container_id or run.waiting_reason:
            view = ContainerStatusView("main", "waiting", run.image, reason=run.waiting_reason, message=run.message)
            return PodStatusView("Pending", True, "10.0.0.2", (view,))
        exit_code = None if self.killed else self.exits[min(run.attempt, len(self.exits) - 1)]
        state_name = "running" if exit_code is None else "terminated"
        view = ContainerStatusView("main", state_name, run.image, container_id=f"containerd://{run.container_id}",
                                   exit_code=exit_code, reason="Error" if exit_code else "", restart_count=run.attempt)
        return PodStatusView("Running", True, "10.0.0.2", (view,))

    def restart_container(self, pod: dict, state: PodRunState, name: str) -> PodRunState:
        previous = state.containers[0]
        run = replace(previous, attempt=previous.attempt + 1, container_id=f"c{previous.attempt + 1}")
        return replace(state, containers=(run,))

    def kill_pod(self, state: PodRunState, grace_seconds: int | None = None, remove: bool = True) -> None:
        self.killed = True


class StatusClient:
    def __init__(self) -> None:
        self.statuses: list[dict] = []

    def update(self, path: str, body: dict) -> dict:
        self.statuses.append(body)
        return body

    def delete(self, path: str, options: dict) -> dict:
        raise ApiStatusError(404, "NotFound", "gone")


def pod(restart_policy: str = "Never", **meta: Any) -> dict:
    return {"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": "web", "namespace": "default", "uid": "uid-web", "resourceVersion": "7", **meta},
            "spec": {"nodeName": "node-a", "restartPolicy": restart_policy,
                     "containers": [{"name": "main", "image": "busybox:1.36"}]},
            "status": {"phase": "Pending"}}


@pytest.fixture
def sink() -> ListSink:
    return ListSink()


@pytest.fixture
def recorder(sink: ListSink) -> Iterator[EventRecorder]:
    running = EventRecorder(sink, EventSource("kubelet", host="node-a"))
    running.start()
    yield running
    running.close()


def run_worker(obj: dict, runtime: StepRuntime, recorder: EventRecorder, present: bool = True,
               client: StatusClient | None = None) -> PodWorker:
    context = WorkerContext(runtime, client or StatusClient(), "127.0.0.1", sync_seconds=0.02, events=recorder,
                            image_present=lambda image: present)
    worker = PodWorker(obj, context, lambda uid: None)
    worker.start()
    return worker


MAIN = "spec.containers{main}"


def test_a_started_pod_tells_pulled_created_started(tmp_path: Path, sink: ListSink, recorder: EventRecorder) -> None:
    worker = run_worker(pod(), StepRuntime(tmp_path), recorder)
    try:
        wait_for(lambda: recorder.flush(1) and len(sink.story()) >= 3)
    finally:
        worker.stop()
    assert sink.story() == [
        ("Normal", "Pulled", 'Container image "busybox:1.36" already present on machine', MAIN),
        ("Normal", "Created", "Created container: main", MAIN),
        ("Normal", "Started", "Started container main", MAIN),
    ]
    assert {e["involvedObject"]["uid"] for e in sink.events} == {"uid-web"}


def test_an_image_the_node_lacks_is_told_as_pulled(tmp_path: Path, sink: ListSink, recorder: EventRecorder) -> None:
    worker = run_worker(pod(), StepRuntime(tmp_path), recorder, present=False)
    try:
        wait_for(lambda: recorder.flush(1) and len(sink.story()) >= 4)
    finally:
        worker.stop()
    assert [reason for _, reason, _, _ in sink.story()] == ["Pulling", "Pulled", "Created", "Started"]
    assert sink.story()[1][2] == 'Successfully pulled image "busybox:1.36"'


def test_a_container_that_cannot_start_is_a_warning_with_the_runtimes_error(
        tmp_path: Path, sink: ListSink, recorder: EventRecorder) -> None:
    outcome = ContainerRun("main", "busybox:1.36", 0, "main/0.log", container_id="c0",
                           waiting_reason="RunContainerError", message="exec: \"nope\": not found")
    worker = run_worker(pod(), StepRuntime(tmp_path, outcome), recorder)
    try:
        wait_for(lambda: recorder.flush(1) and len(sink.story()) >= 3)
    finally:
        worker.stop()
    assert sink.story()[1:] == [("Normal", "Created", "Created container: main", MAIN),
                                ("Warning", "Failed", 'Error: exec: "nope": not found', MAIN)]


def test_a_rejected_pod_tells_why(tmp_path: Path, sink: ListSink, recorder: EventRecorder) -> None:
    refusal = PodAdmissionError("AppArmor", "Cannot enforce AppArmor: AppArmor is not enabled on the host")
    worker = run_worker(pod(), StepRuntime(tmp_path, failure=refusal), recorder)
    try:
        wait_for(lambda: recorder.flush(1) and sink.story())
    finally:
        worker.stop()
    assert sink.story() == [("Warning", "AppArmor", "Cannot enforce AppArmor: AppArmor is not enabled on the host", "")]


def test_a_sandbox_that_cannot_be_created_is_a_warning(tmp_path: Path, sink: ListSink,
                                                        recorder: EventRecorder) -> None:
    failure = SandboxCreationError("pod web_default(uid-web): cannot create its sandbox: no network")
    worker = run_worker(pod(), StepRuntime(tmp_path, failure=failure), recorder)
    try:
        wait_for(lambda: recorder.flush(1) and sink.story())
    finally:
        worker.stop()
    assert sink.story()[0] == ("Warning", "FailedCreatePodSandBox", "Failed to create pod sandbox: pod "
                               "web_default(uid-web): cannot create its sandbox: no network", "")


def test_a_crashing_container_tells_its_back_off_and_counts_restarts(
        tmp_path: Path, sink: ListSink, recorder: EventRecorder, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("securekube.kubelet.pod_worker.INITIAL_BACKOFF_SECONDS", 0.05)
    worker = run_worker(pod("Always"), StepRuntime(tmp_path, exits=[1]), recorder)
    try:
        wait_for(lambda: recorder.flush(1) and any(r == "BackOff" for _, r, _, _ in sink.story())
                 and sink.count("Started") >= 3)
    finally:
        worker.stop()
    backoff = next(s for s in sink.story() if s[1] == "BackOff")
    assert backoff == ("Warning", "BackOff",
                       "Back-off restarting failed container main in pod web_default(uid-web)", MAIN)
    # Every attempt is the same story: one Event per reason, counted.
    assert [reason for _, reason, _, _ in sink.story()][:3] == ["Pulled", "Created", "Started"]
    assert len([s for s in sink.story() if s[1] == "Started"]) == 1


def test_deleting_a_pod_tells_killing_for_its_running_containers(tmp_path: Path, sink: ListSink,
                                                                 recorder: EventRecorder) -> None:
    client = StatusClient()
    worker = run_worker(pod(), StepRuntime(tmp_path), recorder, client=client)
    try:
        wait_for(lambda: client.statuses)
        worker.update(pod(deletionTimestamp="2025-03-01T12:00:00Z", deletionGracePeriodSeconds=30))
        wait_for(lambda: recorder.flush(1) and any(r == "Killing" for _, r, _, _ in sink.story()))
    finally:
        worker.stop()
    assert ("Normal", "Killing", "Stopping container main", MAIN) in sink.story()


def test_a_pod_runs_and_reports_while_events_cannot_be_posted(tmp_path: Path, sink: ListSink,
                                                             recorder: EventRecorder) -> None:
    sink.fail = True
    client = StatusClient()
    worker = run_worker(pod(), StepRuntime(tmp_path), recorder, client=client)
    try:
        wait_for(lambda: client.statuses and client.statuses[-1]["status"]["phase"] == "Running")
    finally:
        worker.stop()
    assert recorder.flush(5) and recorder.stats().dropped == 3 and sink.events == []


@pytest.mark.parametrize(("reason", "message", "expected"), [
    ("ErrImageNeverPull", 'Container image "x:1" is not present with pull policy of Never',
     [("Warning", "ErrImageNeverPull", 'Container image "x:1" is not present with pull policy of Never'),
      ("Warning", "Failed", "Error: ErrImageNeverPull")]),
    ("ErrImagePull", "registry unreachable",
     [("Normal", "Pulling", 'Pulling image "x:1"'), ("Warning", "Failed", 'Failed to pull image "x:1": registry unreachable'),
      ("Warning", "Failed", "Error: ErrImagePull")]),
    ("CreateContainerConfigError", "containers[main]: volumes are not supported by this node yet",
     [("Normal", "Pulled", 'Container image "x:1" already present on machine'),
      ("Warning", "Failed", "Error: containers[main]: volumes are not supported by this node yet")]),
])
def test_a_container_that_never_ran_tells_upstreams_failure(reason: str, message: str,
                                                            expected: list[tuple[str, str, str]]) -> None:
    run = ContainerRun("main", "x:1", 0, "main/0.log", waiting_reason=reason, message=message)
    assert [(e.event_type, e.reason, e.message) for e in container_start_events(run, pulled=False)] == expected


def test_without_knowing_whether_an_image_was_pulled_no_pull_event_is_told() -> None:
    run = ContainerRun("main", "x:1", 0, "main/0.log", container_id="c0")
    assert [e.reason for e in container_start_events(run, pulled=None)] == ["Created", "Started"]


class RecordingClient:
    def __init__(self, patch_error: ApiStatusError | None = None) -> None:
        self.calls: list[tuple[str, str, dict]] = []
        self.patch_error = patch_error

    def create(self, path: str, body: dict) -> dict:
        self.calls.append(("POST", path, body))
        return body

    def merge_patch(self, path: str, patch: dict) -> dict:
        self.calls.append(("PATCH", path, patch))
        if self.patch_error:
            raise self.patch_error
        return patch


def test_the_api_sink_posts_and_patches_namespaced_events() -> None:
    client = RecordingClient()
    sink = ApiEventSink(client)  # type: ignore[arg-type]
    sink.create("shop", {"metadata": {"name": "web.1"}})
    assert sink.patch("shop", "web.1", {"count": 2}) is True
    assert [(method, path) for method, path, _ in client.calls] == [
        ("POST", "/api/v1/namespaces/shop/events"), ("PATCH", "/api/v1/namespaces/shop/events/web.1")]


def test_the_api_sink_reports_a_missing_event_as_gone_and_raises_other_refusals() -> None:
    assert ApiEventSink(RecordingClient(ApiStatusError(404, "NotFound", "x"))).patch(  # type: ignore[arg-type]
        "shop", "web.1", {"count": 2}) is False
    with pytest.raises(ApiStatusError):
        ApiEventSink(RecordingClient(ApiStatusError(403, "Forbidden", "x"))).patch(  # type: ignore[arg-type]
            "shop", "web.1", {"count": 2})
