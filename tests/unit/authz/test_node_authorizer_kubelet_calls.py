"""What the kubelet agent needs from the Node authorizer: its pods by field selector, and access reviews."""
from __future__ import annotations

from securekube.apiserver.requestinfo import parse_request_info
from securekube.apiserver.stages.authorization import attributes_for
from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes, Verdict
from securekube.authz.node import NodeAuthorizer

NODE_A = UserInfo("system:node:node-a", groups=("system:nodes", "system:authenticated"))


def decide(method: str, path: str, query: dict[str, str]) -> Verdict:
    info = parse_request_info(method, path, query)
    return NodeAuthorizer().authorize(attributes_for(NODE_A, info, query)).verdict


def test_a_watch_of_its_own_pods_by_field_selector_is_allowed() -> None:
    assert decide("GET", "/api/v1/pods", {"watch": "true", "fieldSelector": "spec.nodeName=node-a"}) is Verdict.ALLOW
    assert decide("GET", "/api/v1/pods", {"fieldSelector": "spec.nodeName=node-a"}) is Verdict.ALLOW


def test_other_selectors_are_denied() -> None:
    for selector in ("spec.nodeName=node-b", "spec.nodeName!=node-a", "", "metadata.name=x", "spec.nodeName=="):
        assert decide("GET", "/api/v1/pods", {"watch": "true", "fieldSelector": selector}) is Verdict.DENY


def test_a_node_may_create_access_reviews_and_nothing_more_with_them() -> None:
    def review(verb: str, group: str, resource: str, name: str = "") -> Verdict:
        return NodeAuthorizer().authorize(Attributes(user=NODE_A, verb=verb, resource_request=True, api_group=group,
                                                     api_version="v1", resource=resource, name=name)).verdict

    assert review("create", "authorization.k8s.io", "subjectaccessreviews") is Verdict.ALLOW
    assert review("create", "authentication.k8s.io", "tokenreviews") is Verdict.ALLOW
    assert review("get", "authorization.k8s.io", "subjectaccessreviews", "x") is Verdict.DENY
    assert review("create", "authorization.k8s.io", "selfsubjectrulesreviews") is Verdict.DENY
