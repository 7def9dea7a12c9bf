"""What the kubelet tells about a pod in Events, in upstream's reasons and words, and how it posts them.

The runtime starts a pod's containers in one call (`PodRuntime.run_pod`) and reports each
container's outcome as a `ContainerRun`: a container ID if it was created, a waiting reason if a
step failed. `container_start_events` reads that outcome back into the events upstream's kubelet
emits step by step (pull, create, start), each about `spec.containers{NAME}`. The remaining
events (Killing, BackOff, a rejected pod, a sandbox that cannot be created) are built here too, so
every kubelet message lives in one place.

Events go to the API server as the node itself (`ApiEventSink`); the Node authorizer lets a node
create and patch events.
"""
from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from securekube.events import NORMAL, WARNING, object_reference
from securekube.kubelet.apiclient import ApiClient, ApiStatusError
from securekube.kubelet.runtime import ContainerRun
from securekube.kubelet.security import pod_display_name

COMPONENT = "kubelet"
# Waiting reasons that mean the image step failed (the container was never created).
_IMAGE_FAILURES = ("InvalidImageName", "ErrImageNeverPull", "ErrImagePull")


@dataclass(frozen=True)
class KubeletEvent:
    """One event the kubelet records: about the pod, or about one of its containers."""

    event_type: str
    reason: str
    message: str
    container: str = ""  # the container the event is about ("" for the pod)

    def reference(self, pod: Mapping[str, Any]) -> dict[str, str]:
        """The involvedObject: the pod, with fieldPath spec.containers{NAME} for a container's event."""
        return object_reference(pod, "Pod", "v1", container_field_path(self.container) if self.container else "")


def container_field_path(container: str) -> str:
    """Upstream's fieldPath of a container in a pod's spec."""
    return f"spec.containers{{{container}}}"


def _image_events(run: ContainerRun, pulled: bool | None) -> list[KubeletEvent]:
    image, name = run.image, run.name
    if run.waiting_reason == "InvalidImageName":
        return [KubeletEvent(WARNING, "InspectFailed", f'Failed to apply default image tag "{image}": {run.message}',
                             name),
                KubeletEvent(WARNING, "Failed", "Error: InvalidImageName", name)]
    if run.waiting_reason == "ErrImageNeverPull":
        return [KubeletEvent(WARNING, "ErrImageNeverPull", run.message, name),
                KubeletEvent(WARNING, "Failed", "Error: ErrImageNeverPull", name)]
    if run.waiting_reason == "ErrImagePull":
        return [KubeletEvent(NORMAL, "Pulling", f'Pulling image "{image}"', name),
                KubeletEvent(WARNING, "Failed", f'Failed to pull image "{image}": {run.message}', name),
                KubeletEvent(WARNING, "Failed", "Error: ErrImagePull", name)]
    if pulled is None:
        return []  # whether the runtime pulled is unknown: better no event than a wrong one
    if pulled:
        return [KubeletEvent(NORMAL, "Pulling", f'Pulling image "{image}"', name),
                KubeletEvent(NORMAL, "Pulled", f'Successfully pulled image "{image}"', name)]
    return [KubeletEvent(NORMAL, "Pulled", f'Container image "{image}" already present on machine', name)]


def container_start_events(run: ContainerRun, pulled: bool | None) -> list[KubeletEvent]:
    """The events of one attempt at starting a container, from its outcome.

    `pulled`: whether the runtime had to pull the image for it (None: not known).
    """
    events = _image_events(run, pulled)
    if run.waiting_reason in _IMAGE_FAILURES:
        return events
    if run.container_id:
        events.append(KubeletEvent(NORMAL, "Created", f"Created container: {run.name}", run.name))
        if not run.waiting_reason:
            events.append(KubeletEvent(NORMAL, "Started", f"Started container {run.name}", run.name))
            return events
    events.append(KubeletEvent(WARNING, "Failed", f"Error: {run.message or run.waiting_reason}", run.name))
    return events


def killing_event(container: str) -> KubeletEvent:
    """A running container being stopped (pod deletion)."""
    return KubeletEvent(NORMAL, "Killing", f"Stopping container {container}", container)


def backoff_event(container: str, pod: Mapping[str, Any]) -> KubeletEvent:
    """A container that exited waits out its restart back-off."""
    return KubeletEvent(WARNING, "BackOff",
                        f"Back-off restarting failed container {container} in pod {pod_display_name(pod)}", container)


def rejected_event(reason: str, message: str) -> KubeletEvent:
    """The node refused the pod before running anything (upstream's rejectPod event)."""
    return KubeletEvent(WARNING, reason, message)


def sandbox_failed_event(error: str) -> KubeletEvent:
    """The runtime could not create the pod's sandbox."""
    return KubeletEvent(WARNING, "FailedCreatePodSandBox", f"Failed to create pod sandbox: {error}")


class ApiEventSink:
    """Posts events through the node's API client (as system:node:<name>)."""

    def __init__(self, client: ApiClient) -> None:
        self._client = client

    def create(self, namespace: str, event: dict[str, Any]) -> None:
        self._client.create(f"/api/v1/namespaces/{namespace}/events", event)

    def patch(self, namespace: str, name: str, changes: dict[str, Any]) -> bool:
        try:
            self._client.merge_patch(f"/api/v1/namespaces/{namespace}/events/{name}", changes)
        except ApiStatusError as exc:
            if exc.code == 404:
                return False
            raise
        return True
