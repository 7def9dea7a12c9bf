"""A pod's v1 status as the kubelet reports it: phase, conditions, container statuses, IPs.

Built from what the runtime says (`PodStatusView`) plus what only the kubelet knows: when the pod
started, each container's previous termination (`lastState`), a restart back-off in progress
(waiting reason CrashLoopBackOff), or a rejection before anything ran (phase Failed with upstream's
reason and "Pod was rejected: <message>").
"""
from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from securekube.kubelet.runtime import ContainerStatusView, PodStatusView
from securekube.kubelet.security import pod_display_name

TERMINAL_PHASES = ("Succeeded", "Failed")


def _condition(kind: str, status: bool, reason: str = "", message: str = "",
               previous: Mapping[str, Mapping[str, Any]] | None = None, now: str = "") -> dict[str, Any]:
    value = "True" if status else "False"
    before = (previous or {}).get(kind) or {}
    transition = before.get("lastTransitionTime") if before.get("status") == value else None
    condition: dict[str, Any] = {"type": kind, "status": value, "lastProbeTime": None,
                                 "lastTransitionTime": transition or now}
    if reason:
        condition["reason"] = reason
    if message:
        condition["message"] = message
    return condition


def backoff_message(seconds: int, container: str, pod: Mapping[str, Any]) -> str:
    """Upstream's CrashLoopBackOff message."""
    return f"back-off {seconds}s restarting failed container={container} pod={pod_display_name(pod)}"


def container_statuses(view: PodStatusView, last_states: Mapping[str, dict], backoffs: Mapping[str, int],
                       pod: Mapping[str, Any]) -> list[dict[str, Any]]:
    """containerStatuses[]: the runtime's view, with lastState and a CrashLoopBackOff while waiting to restart."""
    statuses = []
    for container in view.containers:
        entry = container.to_k8s()
        if container.name in last_states:
            entry["lastState"] = {"terminated": last_states[container.name]}
        else:
            entry["lastState"] = {}
        if container.name in backoffs and container.state == "terminated":
            entry["lastState"] = {"terminated": entry["state"]["terminated"]}
            entry["state"] = {"waiting": {"reason": "CrashLoopBackOff",
                                          "message": backoff_message(backoffs[container.name], container.name, pod)}}
            entry["ready"] = entry["started"] = False
        statuses.append(entry)
    return statuses


def _unready(statuses: list[dict[str, Any]]) -> list[str]:
    return [s["name"] for s in statuses if not s.get("ready")]


def running_status(pod: Mapping[str, Any], view: PodStatusView, *, host_ip: str, start_time: str, now: str,
                   last_states: Mapping[str, dict] | None = None,
                   backoffs: Mapping[str, int] | None = None) -> dict[str, Any]:
    """The status of a pod the runtime runs (or ran)."""
    previous = {c.get("type"): c for c in ((pod.get("status") or {}).get("conditions") or ())}
    statuses = container_statuses(view, last_states or {}, backoffs or {}, pod)
    phase = view.phase
    unready = _unready(statuses)
    if phase in TERMINAL_PHASES:
        ready_reason, ready_message = "PodCompleted", ""
    elif unready:
        ready_reason, ready_message = "ContainersNotReady", f"containers with unready status: [{' '.join(unready)}]"
    else:
        ready_reason, ready_message = "", ""
    ready = not unready and phase not in TERMINAL_PHASES
    status: dict[str, Any] = {
        "phase": phase,
        "conditions": [
            _condition("PodReadyToStartContainers", view.sandbox_ready, previous=previous, now=now),
            _condition("Initialized", True, previous=previous, now=now),
            _condition("Ready", ready, ready_reason, ready_message, previous, now),
            _condition("ContainersReady", ready, ready_reason, ready_message, previous, now),
            _condition("PodScheduled", True, previous=previous, now=now),
        ],
        "hostIP": host_ip,
        "hostIPs": [{"ip": host_ip}],
        "startTime": start_time,
        "containerStatuses": statuses,
    }
    if view.pod_ip:
        status["podIP"] = view.pod_ip
        status["podIPs"] = [{"ip": view.pod_ip}]
    qos = (pod.get("status") or {}).get("qosClass")
    if qos:
        status["qosClass"] = qos
    return status


def rejected_status(pod: Mapping[str, Any], reason: str, message: str, *, host_ip: str, now: str) -> dict[str, Any]:
    """The status of a pod the node refused to run (upstream's rejectPod)."""
    status: dict[str, Any] = {"phase": "Failed", "reason": reason, "message": f"Pod was rejected: {message}",
                              "hostIP": host_ip, "hostIPs": [{"ip": host_ip}], "startTime": now,
                              "conditions": [_condition("PodScheduled", True, now=now)]}
    qos = (pod.get("status") or {}).get("qosClass")
    if qos:
        status["qosClass"] = qos
    return status


def terminated_view(view: ContainerStatusView) -> dict[str, Any]:
    """The `terminated` state of a container that exited, for the next attempt's lastState."""
    return view.to_k8s()["state"].get("terminated") or {}
