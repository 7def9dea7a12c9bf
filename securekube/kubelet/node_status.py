"""What a node reports about itself: its Node object (labels, capacity, conditions, addresses, images,
versions) and its heartbeat Lease in kube-node-lease, in upstream's shapes.

Images are listed as upstream's kubelet lists them: every image with its repo digests then repo
tags as `names`, largest first, at most 50 (nodeStatusMaxImages).
"""
from __future__ import annotations

import datetime as dt
import os
import platform
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securekube import __version__
from securekube.kubelet.cri import runtime_v1_pb2 as pb
from securekube.kubelet.images import oci_architecture
from securekube.kubelet.resources import node_memory_bytes

# The API level we follow (as the API server's /version), with our own build after the "+".
KUBELET_VERSION = f"v1.37.0+securekube.{__version__}"
NODE_LEASE_NAMESPACE = "kube-node-lease"
LEASE_DURATION_SECONDS = 40
MAX_IMAGES = 50
MAX_PODS = 110

_CONDITIONS = (
    ("MemoryPressure", "False", "KubeletHasSufficientMemory", "kubelet has sufficient memory available"),
    ("DiskPressure", "False", "KubeletHasNoDiskPressure", "kubelet has no disk pressure"),
    ("PIDPressure", "False", "KubeletHasSufficientPID", "kubelet has sufficient PID available"),
    ("Ready", "True", "KubeletReady", "kubelet is posting ready status"),
)


@dataclass(frozen=True)
class NodeIdentity:
    """Who the node is and where its kubelet API listens."""

    name: str
    address: str  # the InternalIP the API server reaches the kubelet on
    kubelet_port: int
    labels: Mapping[str, str] = field(default_factory=dict)


def _read(path: str) -> str:
    try:
        return Path(path).read_text(encoding="utf-8", errors="replace").strip()
    except OSError:
        return ""


def os_image(os_release: str = "/etc/os-release") -> str:
    """PRETTY_NAME from os-release, as upstream shows it in `kubectl get nodes -o wide`."""
    for line in _read(os_release).splitlines():
        if line.startswith("PRETTY_NAME="):
            return line.split("=", 1)[1].strip().strip('"')
    return "Linux"


def capacity(storage_path: Path = Path("/")) -> dict[str, str]:
    """The node's capacity in Kubernetes quantities: CPUs, memory (Ki), pods, ephemeral storage (Ki)."""
    stats = os.statvfs(storage_path)
    return {
        "cpu": str(os.cpu_count() or 1),
        "memory": f"{node_memory_bytes() // 1024}Ki",
        "pods": str(MAX_PODS),
        "ephemeral-storage": f"{stats.f_blocks * stats.f_frsize // 1024}Ki",
    }


def node_info(runtime: pb.VersionResponse) -> dict[str, str]:
    """status.nodeInfo: machine identifiers, kernel, OS, the container runtime and our versions."""
    return {
        "machineID": _read("/etc/machine-id"),
        "systemUUID": _read("/sys/class/dmi/id/product_uuid"),
        "bootID": _read("/proc/sys/kernel/random/boot_id"),
        "kernelVersion": platform.release(),
        "osImage": os_image(),
        "containerRuntimeVersion": f"{runtime.runtime_name}://{runtime.runtime_version}",
        "kubeletVersion": KUBELET_VERSION,
        "kubeProxyVersion": "",
        "operatingSystem": "linux",
        "architecture": oci_architecture(),
    }


def images(listed: Iterable[pb.Image], limit: int = MAX_IMAGES) -> list[dict[str, Any]]:
    """status.images: names (digests, then tags) and size, largest first, at most `limit`."""
    entries = [{"names": [*image.repo_digests, *image.repo_tags], "sizeBytes": int(image.size)}
               for image in listed if image.repo_digests or image.repo_tags]
    entries.sort(key=lambda entry: entry["sizeBytes"], reverse=True)
    return entries[:limit]


def _now() -> str:
    return dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def conditions(previous: Iterable[Mapping[str, Any]] = (), now: str | None = None) -> list[dict[str, str]]:
    """The node's conditions, healthy; lastTransitionTime is kept from `previous` while a status holds."""
    now = now or _now()
    before = {c.get("type"): c for c in previous}
    result = []
    for kind, status, reason, message in _CONDITIONS:
        old = before.get(kind) or {}
        transition = old.get("lastTransitionTime") if old.get("status") == status else None
        result.append({"type": kind, "status": status, "reason": reason, "message": message,
                       "lastHeartbeatTime": now, "lastTransitionTime": transition or now})
    return result


def node_labels(identity: NodeIdentity) -> dict[str, str]:
    """The well-known labels every kubelet sets, plus the configured ones."""
    return {"kubernetes.io/hostname": identity.name, "kubernetes.io/os": "linux",
            "kubernetes.io/arch": oci_architecture(), **identity.labels}


def node_object(identity: NodeIdentity) -> dict[str, Any]:
    """The Node a kubelet registers (status follows through nodes/status)."""
    return {"apiVersion": "v1", "kind": "Node",
            "metadata": {"name": identity.name, "labels": node_labels(identity)}, "spec": {}}


def node_status(identity: NodeIdentity, runtime: pb.VersionResponse, listed_images: Iterable[pb.Image],
                previous_conditions: Iterable[Mapping[str, Any]] = ()) -> dict[str, Any]:
    """status of the node's Node object."""
    total = capacity()
    return {
        "capacity": total,
        "allocatable": dict(total),
        "conditions": conditions(previous_conditions),
        "addresses": [{"type": "InternalIP", "address": identity.address},
                      {"type": "Hostname", "address": identity.name}],
        "daemonEndpoints": {"kubeletEndpoint": {"Port": identity.kubelet_port}},
        "nodeInfo": node_info(runtime),
        "images": images(listed_images),
    }


def micro_time(moment: dt.datetime) -> str:
    """metav1.MicroTime as JSON: RFC 3339 with microseconds."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def lease_object(node_name: str, node_uid: str, now: dt.datetime) -> dict[str, Any]:
    """The node's heartbeat Lease, owned by its Node (so it goes when the Node goes)."""
    return {
        "apiVersion": "coordination.k8s.io/v1", "kind": "Lease",
        "metadata": {"name": node_name, "namespace": NODE_LEASE_NAMESPACE,
                     "ownerReferences": [{"apiVersion": "v1", "kind": "Node", "name": node_name, "uid": node_uid}]},
        "spec": {"holderIdentity": node_name, "leaseDurationSeconds": LEASE_DURATION_SECONDS,
                 "renewTime": micro_time(now)},
    }
