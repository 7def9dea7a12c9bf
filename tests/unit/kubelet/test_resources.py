"""Resource quantities and limits become the CRI resources upstream's kubelet would send."""
from __future__ import annotations

from decimal import Decimal
from typing import Any

import pytest

from securekube.kubelet.errors import ContainerConfigError
from securekube.kubelet.quantity import QuantityError, parse_quantity, to_bytes, to_millicores
from securekube.kubelet.resources import container_resources, oom_score_adj, qos_class

GIB = 2**30


@pytest.mark.parametrize(("text", "value"), [
    ("128Mi", Decimal(128 * 2**20)), ("1Gi", Decimal(GIB)), ("500m", Decimal("0.5")),
    ("2", Decimal(2)), ("1.5", Decimal("1.5")), ("1e3", Decimal(1000)), ("1k", Decimal(1000)),
    ("100M", Decimal(100_000_000)), (3, Decimal(3)), (".5", Decimal("0.5")),
])
def test_quantities_parse_exactly(text: str | int, value: Decimal) -> None:
    assert parse_quantity(text) == value


@pytest.mark.parametrize("text", ["", "Mi", "12XB", "1..2", "abc", "1 Gi"])
def test_malformed_quantities_are_rejected(text: str) -> None:
    with pytest.raises(QuantityError):
        parse_quantity(text)


def test_rounding_is_up_like_upstream() -> None:
    assert to_millicores("0.0001") == 1
    assert to_bytes("1.5") == 2


def pod(*containers: dict[str, Any]) -> dict[str, Any]:
    return {"spec": {"containers": list(containers)}}


def container(requests: dict[str, str] | None = None, limits: dict[str, str] | None = None) -> dict[str, Any]:
    return {"name": "app", "resources": {"requests": requests or {}, "limits": limits or {}}}


@pytest.mark.parametrize(("containers", "qos"), [
    ([container()], "BestEffort"),
    ([container(limits={"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
    ([container(requests={"cpu": "1", "memory": "1Gi"}, limits={"cpu": "1", "memory": "1Gi"})], "Guaranteed"),
    ([container(requests={"cpu": "500m"}, limits={"cpu": "1", "memory": "1Gi"})], "Burstable"),
    ([container(limits={"cpu": "1", "memory": "1Gi"}), container()], "Burstable"),
    ([container(requests={"memory": "1Gi"})], "Burstable"),
])
def test_qos_class(containers: list[dict[str, Any]], qos: str) -> None:
    assert qos_class(pod(*containers)) == qos


def test_limits_become_cfs_quota_shares_and_memory_limit() -> None:
    app = container(requests={"cpu": "250m"}, limits={"cpu": "500m", "memory": "64Mi"})
    result = container_resources(pod(app), app, memory_capacity=8 * GIB)
    assert result.cpu_shares == 256
    assert (result.cpu_quota, result.cpu_period) == (50_000, 100_000)
    assert result.memory_limit_in_bytes == 64 * 2**20


def test_no_resources_means_minimum_shares_and_no_limits() -> None:
    app = container()
    result = container_resources(pod(app), app, memory_capacity=8 * GIB)
    assert (result.cpu_shares, result.cpu_quota, result.memory_limit_in_bytes) == (2, 0, 0)
    assert result.oom_score_adj == 1000


def test_tiny_cpu_limit_gets_the_minimum_quota() -> None:
    app = container(limits={"cpu": "1m"})
    assert container_resources(pod(app), app, memory_capacity=GIB).cpu_quota == 1000


def test_oom_score_follows_qos() -> None:
    guaranteed = container(limits={"cpu": "1", "memory": "1Gi"})
    assert oom_score_adj(pod(guaranteed), guaranteed, 8 * GIB) == -997
    burstable = container(requests={"memory": "2Gi"})
    assert oom_score_adj(pod(burstable), burstable, 8 * GIB) == 750
    greedy = container(requests={"memory": "8Gi"})
    assert oom_score_adj(pod(greedy), greedy, 8 * GIB) == 3
    small = container(requests={"cpu": "100m"})
    assert oom_score_adj(pod(small), small, 8 * GIB) == 999


def test_unreadable_limit_refuses_the_container() -> None:
    app = container(limits={"memory": "lots"})
    with pytest.raises(ContainerConfigError, match="resources"):
        container_resources(pod(app), app, memory_capacity=GIB)
