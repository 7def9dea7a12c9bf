"""Container resources (requests/limits) to CRI LinuxContainerResources, with upstream arithmetic.

CPU requests become CFS shares, CPU limits a CFS quota over a 100 ms period, memory limits a hard
limit (containerd also sets swap equal to it, so no swap), and the OOM score follows the pod's QoS
class (k8s.io/kubernetes pkg/kubelet/qos). Process-count limits are per pod: see cgroups.py.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from decimal import Decimal
from typing import Any

from securekube.kubelet.cri import runtime_v1_pb2 as pb
from securekube.kubelet.errors import ContainerConfigError
from securekube.kubelet.quantity import QuantityError, parse_quantity, to_bytes, to_millicores

CPU_PERIOD_MICROSECONDS = 100_000
_MIN_SHARES, _MAX_SHARES, _SHARES_PER_CPU = 2, 262_144, 1024
_MIN_QUOTA_MICROSECONDS = 1000
GUARANTEED_OOM_SCORE_ADJ = -997
BEST_EFFORT_OOM_SCORE_ADJ = 1000
_QOS_RESOURCES = ("cpu", "memory")


def _requests_and_limits(container: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    resources = container.get("resources") or {}
    limits = dict(resources.get("limits") or {})
    # API defaulting: a resource with a limit and no request requests its limit.
    requests = {**limits, **(resources.get("requests") or {})}
    return requests, limits


def _quantity(value: Any, where: str) -> Decimal:
    try:
        return parse_quantity(value)
    except QuantityError as error:
        raise ContainerConfigError(f"{where}: {error}") from None


def _all_containers(pod: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    spec = pod.get("spec") or {}
    yield from spec.get("initContainers") or ()
    yield from spec.get("containers") or ()


def qos_class(pod: Mapping[str, Any]) -> str:
    """The pod's QoS class: Guaranteed, Burstable or BestEffort (upstream GetPodQOS)."""
    requests: dict[str, Decimal] = {}
    limits: dict[str, Decimal] = {}
    guaranteed = True
    for container in _all_containers(pod):
        container_requests, container_limits = _requests_and_limits(container)
        for name in _QOS_RESOURCES:
            if name in container_requests:
                value = _quantity(container_requests[name], f"resources.requests.{name}")
                if value > 0:
                    requests[name] = requests.get(name, Decimal(0)) + value
        found = set()
        for name in _QOS_RESOURCES:
            if name in container_limits:
                value = _quantity(container_limits[name], f"resources.limits.{name}")
                if value > 0:
                    found.add(name)
                    limits[name] = limits.get(name, Decimal(0)) + value
        if found != set(_QOS_RESOURCES):
            guaranteed = False
    if not requests and not limits:
        return "BestEffort"
    if guaranteed and requests.keys() == limits.keys() and all(
            limits[name] == value for name, value in requests.items()):
        return "Guaranteed"
    return "Burstable"


def oom_score_adj(pod: Mapping[str, Any], container: Mapping[str, Any], memory_capacity: int) -> int:
    """The container's oom_score_adj by QoS (upstream GetContainerOOMScoreAdjust)."""
    qos = qos_class(pod)
    if qos == "Guaranteed":
        return GUARANTEED_OOM_SCORE_ADJ
    if qos == "BestEffort":
        return BEST_EFFORT_OOM_SCORE_ADJ
    requests, _ = _requests_and_limits(container)
    memory_request = to_bytes(requests["memory"]) if "memory" in requests else 0
    score = 1000 - (1000 * memory_request) // max(memory_capacity, 1)
    # Burstable stays strictly between Guaranteed and BestEffort.
    if score < 1000 + GUARANTEED_OOM_SCORE_ADJ:
        return 1000 + GUARANTEED_OOM_SCORE_ADJ
    if score == BEST_EFFORT_OOM_SCORE_ADJ:
        return score - 1
    return int(score)


def _shares(millicores: int) -> int:
    if millicores == 0:
        return _MIN_SHARES
    return min(max(millicores * _SHARES_PER_CPU // 1000, _MIN_SHARES), _MAX_SHARES)


def _quota(millicores: int) -> int:
    if millicores == 0:
        return 0
    return max(millicores * CPU_PERIOD_MICROSECONDS // 1000, _MIN_QUOTA_MICROSECONDS)


def container_resources(pod: Mapping[str, Any], container: Mapping[str, Any],
                        memory_capacity: int) -> pb.LinuxContainerResources:
    """The CRI resources for one container."""
    requests, limits = _requests_and_limits(container)
    name = container.get("name", "")
    try:
        cpu_request = to_millicores(requests["cpu"]) if "cpu" in requests else 0
        cpu_limit = to_millicores(limits["cpu"]) if "cpu" in limits else 0
        memory_limit = to_bytes(limits["memory"]) if "memory" in limits else 0
    except QuantityError as error:
        raise ContainerConfigError(f"containers[{name}].resources: {error}") from None
    if min(cpu_request, cpu_limit, memory_limit) < 0:
        raise ContainerConfigError(f"containers[{name}].resources: quantities must not be negative")
    return pb.LinuxContainerResources(
        cpu_shares=_shares(cpu_request or cpu_limit),
        cpu_quota=_quota(cpu_limit),
        cpu_period=CPU_PERIOD_MICROSECONDS,
        memory_limit_in_bytes=memory_limit,
        oom_score_adj=oom_score_adj(pod, container, memory_capacity),
    )


def node_memory_bytes(meminfo: str = "/proc/meminfo") -> int:
    """The node's memory capacity (MemTotal), which scales Burstable OOM scores."""
    with open(meminfo, encoding="ascii") as source:
        for line in source:
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"MemTotal missing from {meminfo}")
