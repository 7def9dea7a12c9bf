"""Which nodes a pod fits, and upstream's words for why not."""
from __future__ import annotations

from collections import Counter

import pytest

from securekube.scheduler.fit import tolerates, unschedulable_message, why_not


def node(name: str = "node-a", ready: str = "True", labels: dict | None = None, taints: list | None = None,
         unschedulable: bool = False) -> dict:
    return {"metadata": {"name": name, "labels": labels or {}},
            "spec": {"taints": taints or [], "unschedulable": unschedulable},
            "status": {"conditions": [{"type": "Ready", "status": ready}]}}


def pod(**spec: object) -> dict:
    return {"metadata": {"name": "p", "namespace": "default"}, "spec": {"containers": [{"name": "c"}], **spec}}


def test_a_plain_pod_fits_a_ready_node() -> None:
    assert why_not(pod(), node()) is None


@pytest.mark.parametrize(("ready", "taint"), [("False", "node.kubernetes.io/not-ready"),
                                              ("Unknown", "node.kubernetes.io/unreachable")])
def test_a_node_that_is_not_ready_is_tainted(ready: str, taint: str) -> None:
    assert why_not(pod(), node(ready=ready)) == f"node(s) had untolerated taint {{{taint}: }}"


def test_node_selector_must_match_every_label() -> None:
    selector = {"disk": "ssd", "zone": "a"}
    assert why_not(pod(nodeSelector=selector), node(labels={"disk": "ssd", "zone": "a", "x": "y"})) is None
    assert why_not(pod(nodeSelector=selector), node(labels={"disk": "ssd"})) == \
        "node(s) didn't match Pod's node affinity/selector"


def test_required_node_affinity_terms_are_ored_and_expressions_anded() -> None:
    affinity = {"nodeAffinity": {"requiredDuringSchedulingIgnoredDuringExecution": {"nodeSelectorTerms": [
        {"matchExpressions": [{"key": "zone", "operator": "In", "values": ["a", "b"]},
                              {"key": "gpu", "operator": "DoesNotExist"}]},
        {"matchFields": [{"key": "metadata.name", "operator": "In", "values": ["special"]}]},
    ]}}}
    assert why_not(pod(affinity=affinity), node(labels={"zone": "b"})) is None
    assert why_not(pod(affinity=affinity), node(labels={"zone": "b", "gpu": "1"})) is not None
    assert why_not(pod(affinity=affinity), node("special")) is None
    assert why_not(pod(affinity=affinity), node("other", labels={"zone": "c"})) is not None


def test_no_schedule_taints_need_a_toleration() -> None:
    tainted = node(taints=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}])
    assert why_not(pod(), tainted) == "node(s) had untolerated taint {dedicated: gpu}"
    assert why_not(pod(tolerations=[{"key": "dedicated", "value": "gpu", "effect": "NoSchedule"}]), tainted) is None
    assert why_not(pod(tolerations=[{"key": "dedicated", "operator": "Exists"}]), tainted) is None
    assert why_not(pod(tolerations=[{"key": "dedicated", "value": "cpu"}]), tainted) is not None
    soft = node(taints=[{"key": "dedicated", "value": "gpu", "effect": "PreferNoSchedule"}])
    assert why_not(pod(), soft) is None


def test_an_empty_key_with_exists_tolerates_everything() -> None:
    assert tolerates({"operator": "Exists"}, {"key": "anything", "value": "x", "effect": "NoExecute"})
    assert not tolerates({"operator": "Exists", "effect": "NoSchedule"}, {"key": "k", "effect": "NoExecute"})


def test_a_cordoned_node_takes_no_pods() -> None:
    assert why_not(pod(), node(unschedulable=True)) == "node(s) were unschedulable"


def test_the_summary_reads_like_upstreams() -> None:
    reasons = Counter({"node(s) didn't match Pod's node affinity/selector": 1,
                       "node(s) had untolerated taint {dedicated: gpu}": 2})
    assert unschedulable_message(reasons, 3) == (
        "0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, "
        "2 node(s) had untolerated taint {dedicated: gpu}.")
    assert unschedulable_message(Counter(), 0) == "no nodes available to schedule pods"
