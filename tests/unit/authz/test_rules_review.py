"""SelfSubjectRulesReview status, as `kubectl auth can-i --list` receives it."""
from __future__ import annotations

import pytest

from securekube.api.errors import ApiError
from securekube.authn.interfaces import UserInfo
from securekube.authz.rbac import RBACAuthorizer
from securekube.authz.rules_review import self_subject_rules

RBAC = "rbac.authorization.k8s.io"
DEV = UserInfo("dev", groups=("devs", "system:authenticated"))


@pytest.fixture
def authorizer() -> RBACAuthorizer:
    authorizer = RBACAuthorizer()
    authorizer.apply("ClusterRole", {"metadata": {"name": "discovery"}, "rules": [
        {"nonResourceURLs": ["/healthz", "/api/*"], "verbs": ["get"]},
    ]})
    authorizer.apply("ClusterRoleBinding", {
        "metadata": {"name": "discovery"},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": "discovery"},
        "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": "system:authenticated"}],
    })
    authorizer.apply("Role", {"metadata": {"name": "config", "namespace": "team-a"}, "rules": [
        {"apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["app"], "verbs": ["get", "update"]},
        {"apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"], "verbs": ["*"]},
    ]})
    authorizer.apply("RoleBinding", {
        "metadata": {"name": "devs-config", "namespace": "team-a"},
        "roleRef": {"apiGroup": RBAC, "kind": "Role", "name": "config"},
        "subjects": [{"kind": "Group", "apiGroup": RBAC, "name": "devs"}],
    })
    return authorizer


def test_rules_in_a_namespace_include_cluster_wide_and_namespace_rules(authorizer):
    assert self_subject_rules(authorizer, DEV, "team-a") == {
        "resourceRules": [
            {"verbs": ["get", "update"], "apiGroups": [""], "resources": ["configmaps"], "resourceNames": ["app"]},
            {"verbs": ["*"], "apiGroups": ["apps"], "resources": ["deployments", "deployments/scale"]},
        ],
        "nonResourceRules": [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/api/*"]}],
        "incomplete": False,
    }


def test_rules_of_another_namespace_are_not_listed(authorizer):
    status = self_subject_rules(authorizer, DEV, "team-b")
    assert status["resourceRules"] == []
    assert status["nonResourceRules"] == [{"verbs": ["get"], "nonResourceURLs": ["/healthz", "/api/*"]}]


def test_a_user_with_no_bindings_gets_empty_lists_not_missing_fields(authorizer):
    nobody = UserInfo("nobody", groups=())
    assert self_subject_rules(authorizer, nobody, "team-a") == {
        "resourceRules": [], "nonResourceRules": [], "incomplete": False}


def test_authorizers_that_cannot_list_rules_make_the_review_incomplete(authorizer):
    one = self_subject_rules(authorizer, DEV, "team-a",
                             incomplete_reasons=["node authorizer does not support user rule resolution"])
    assert one["incomplete"] is True
    assert one["evaluationError"] == "node authorizer does not support user rule resolution"
    two = self_subject_rules(authorizer, DEV, "team-a", incomplete_reasons=["a", "b"])
    assert two["evaluationError"] == "[a, b]"
    assert two["resourceRules"]  # what RBAC grants is still listed


def test_namespace_is_required_as_upstream(authorizer):
    with pytest.raises(ApiError) as refused:
        self_subject_rules(authorizer, DEV, "")
    assert (refused.value.code, refused.value.reason, str(refused.value)) == (
        400, "BadRequest", "no namespace on request")
