"""Audit policy files: upstream's matching semantics, loading errors, and the shipped default."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

from securekube.audit.default_policy import DEFAULT_POLICY_PATH, default_policy
from securekube.audit.errors import AuditPolicyError
from securekube.audit.policy import AuditPolicy
from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes

# The example policy from the Kubernetes "Auditing" documentation (content/en/examples/audit/audit-policy.yaml).
UPSTREAM_EXAMPLE = """
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages:
  - "RequestReceived"
rules:
  - level: RequestResponse
    resources:
    - group: ""
      resources: ["pods"]
  - level: Metadata
    resources:
    - group: ""
      resources: ["pods/log", "pods/status"]
  - level: None
    resources:
    - group: ""
      resources: ["configmaps"]
      resourceNames: ["controller-leader"]
  - level: None
    users: ["system:kube-proxy"]
    verbs: ["watch"]
    resources:
    - group: ""
      resources: ["endpoints", "services"]
  - level: None
    userGroups: ["system:authenticated"]
    nonResourceURLs:
    - "/api*"
    - "/version"
  - level: Request
    resources:
    - group: ""
      resources: ["configmaps"]
    namespaces: ["kube-system"]
  - level: Metadata
    resources:
    - group: ""
      resources: ["secrets", "configmaps"]
  - level: Request
    resources:
    - group: ""
    - group: "extensions"
  - level: Metadata
    omitStages:
      - "RequestReceived"
"""

ALICE = UserInfo("alice", groups=("dev", "system:authenticated"))
KUBE_PROXY = UserInfo("system:kube-proxy", groups=("system:authenticated",))
ANONYMOUS = UserInfo("system:anonymous", groups=("system:unauthenticated",))


def res(verb: str, resource: str, *, ns: str = "default", name: str = "", sub: str = "", group: str = "",
        user: UserInfo = ALICE) -> Attributes:
    return Attributes(user, verb, True, namespace=ns, api_group=group, api_version="v1",
                      resource=resource, subresource=sub, name=name)


def nonres(verb: str, path: str, user: UserInfo = ALICE) -> Attributes:
    return Attributes(user, verb, False, path=path)


def policy_of(text: str) -> AuditPolicy:
    return AuditPolicy.parse(yaml.safe_load(text), "test")


@pytest.mark.parametrize(("attrs", "level"), [
    (res("create", "pods"), "RequestResponse"),
    (res("get", "pods", sub="log"), "Metadata"),
    (res("update", "pods", sub="status"), "Metadata"),
    (res("create", "pods", sub="exec"), "Request"),  # "pods" does not cover subresources
    (res("update", "configmaps", ns="kube-system", name="controller-leader"), "None"),
    (res("update", "configmaps", ns="kube-system", name="other"), "Request"),
    (res("get", "configmaps", ns="default", name="other"), "Metadata"),
    (res("watch", "endpoints", user=KUBE_PROXY), "None"),
    (res("list", "endpoints", user=KUBE_PROXY), "Request"),
    (res("watch", "endpoints"), "Request"),
    (nonres("get", "/apis/apps/v1"), "None"),
    (nonres("get", "/api"), "None"),
    (nonres("get", "/version"), "None"),
    (nonres("get", "/version", user=ANONYMOUS), "Metadata"),  # not in system:authenticated
    (nonres("get", "/healthz"), "Metadata"),
    (res("get", "secrets", name="db"), "Metadata"),
    (res("create", "ingresses", group="extensions"), "Request"),
    (res("create", "deployments", group="apps"), "Metadata"),
])
def test_upstream_example_policy(attrs: Attributes, level: str) -> None:
    decision = policy_of(UPSTREAM_EXAMPLE).evaluate(attrs)
    assert decision.level == level
    assert "RequestReceived" in decision.omit_stages  # policy-level omitStages applies to every rule


def test_no_matching_rule_means_not_recorded_with_the_policys_stages() -> None:
    policy = policy_of("""
apiVersion: audit.k8s.io/v1
kind: Policy
omitStages: [ResponseStarted]
rules:
  - level: Metadata
    verbs: [delete]
""")
    decision = policy.evaluate(res("get", "pods"))
    assert decision.level == "None"
    assert decision.omit_stages == {"ResponseStarted"}
    assert not decision.records("ResponseComplete")
    assert policy.evaluate(res("delete", "pods")).records("ResponseComplete")


def test_first_matching_rule_wins() -> None:
    policy = policy_of("""
apiVersion: audit.k8s.io/v1
kind: Policy
rules:
  - level: None
    users: [alice]
  - level: RequestResponse
""")
    assert policy.evaluate(res("delete", "secrets")).level == "None"
    assert policy.evaluate(res("delete", "secrets", user=KUBE_PROXY)).level == "RequestResponse"


@pytest.mark.parametrize(("pattern", "resource", "sub", "matches"), [
    ("pods", "pods", "", True),
    ("pods", "pods", "log", False),
    ("pods/log", "pods", "log", True),
    ("pods/log", "pods", "", False),
    ("pods/*", "pods", "", True),
    ("pods/*", "pods", "exec", True),
    ("pods/*", "podtemplates", "", False),
    ("*/scale", "deployments", "scale", True),
    ("*/scale", "deployments", "", False),
    ("*/scale", "deployments", "status", False),
    ("*", "pods", "", True),
    ("*", "pods", "log", True),
])
def test_resource_patterns(pattern: str, resource: str, sub: str, matches: bool) -> None:
    policy = AuditPolicy.parse({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [
        {"level": "Metadata", "resources": [{"group": "", "resources": [pattern]}]}]})
    assert (policy.evaluate(res("get", resource, sub=sub)).level == "Metadata") is matches


def test_group_must_match_exactly_and_empty_resources_mean_the_whole_group() -> None:
    policy = AuditPolicy.parse({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [
        {"level": "Request", "resources": [{"group": "apps"}]}]})
    assert policy.evaluate(res("create", "deployments", group="apps", sub="scale")).level == "Request"
    assert policy.evaluate(res("create", "pods")).level == "None"
    assert policy.evaluate(res("create", "jobs", group="batch")).level == "None"


def test_resource_names_and_namespaces() -> None:
    policy = AuditPolicy.parse({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [
        {"level": "Request", "namespaces": ["kube-system", ""],
         "resources": [{"group": "", "resources": ["configmaps", "nodes"], "resourceNames": ["a"]}]}]})
    assert policy.evaluate(res("get", "configmaps", ns="kube-system", name="a")).level == "Request"
    assert policy.evaluate(res("get", "configmaps", ns="kube-system", name="b")).level == "None"
    assert policy.evaluate(res("get", "configmaps", ns="default", name="a")).level == "None"
    assert policy.evaluate(res("get", "nodes", ns="", name="a")).level == "Request"  # "" = cluster-scoped


def test_namespaces_alone_never_match_non_resource_requests() -> None:
    policy = AuditPolicy.parse({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [
        {"level": "Metadata", "namespaces": [""]}]})
    assert policy.evaluate(res("list", "namespaces", ns="")).level == "Metadata"
    assert policy.evaluate(nonres("get", "/metrics")).level == "None"


@pytest.mark.parametrize(("pattern", "path", "matches"), [
    ("*", "/anything", True),
    ("/metrics", "/metrics", True),
    ("/metrics", "/metrics/extra", False),
    ("/healthz*", "/healthz", True),
    ("/healthz*", "/healthz/etcd", True),
    ("/healthz/*", "/healthz", False),
    ("/api*", "/apis/apps", True),
])
def test_non_resource_urls(pattern: str, path: str, matches: bool) -> None:
    policy = AuditPolicy.parse({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [
        {"level": "Metadata", "nonResourceURLs": [pattern]}]})
    assert (policy.evaluate(nonres("get", path)).level == "Metadata") is matches
    assert policy.evaluate(res("get", "pods")).level == "None"  # never a resource request


def test_users_and_groups_must_both_match_when_given() -> None:
    policy = AuditPolicy.parse({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [
        {"level": "Metadata", "users": ["alice", "bob"], "userGroups": ["ops", "dev"]}]})
    assert policy.evaluate(res("get", "pods")).level == "Metadata"
    assert policy.evaluate(res("get", "pods", user=UserInfo("alice", groups=("qa",)))).level == "None"
    assert policy.evaluate(res("get", "pods", user=UserInfo("carol", groups=("dev",)))).level == "None"


def test_omit_stages_union_and_omit_managed_fields_override() -> None:
    policy = AuditPolicy.parse({
        "apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitStages": ["RequestReceived"],
        "omitManagedFields": True,
        "rules": [
            {"level": "Request", "verbs": ["create"], "omitStages": ["ResponseStarted"], "omitManagedFields": False},
            {"level": "Metadata"},
        ]})
    create = policy.evaluate(res("create", "pods"))
    assert create.omit_stages == {"RequestReceived", "ResponseStarted"}
    assert create.omit_managed_fields is False
    get = policy.evaluate(res("get", "pods"))
    assert get.omit_stages == {"RequestReceived"}
    assert get.omit_managed_fields is True
    assert get.records("ResponseComplete") and not get.records("RequestReceived")


@pytest.mark.parametrize(("doc", "expected"), [
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"verbs": ["get"]}]}, "rules[0].level: required"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "Everything"}]},
     "rules[0].level: unsupported value 'Everything'"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None", "resource": []}]},
     "rules[0].resource: unknown field (did you mean resources?)"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None", "nonResourceURLs": ["metrics"]}]},
     "rules[0].nonResourceURLs[0]: 'metrics' must begin with '/'"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None", "nonResourceURLs": ["/a*/b"]}]},
     "rules[0].nonResourceURLs[0]: '/a*/b' may use '*' only as its final character"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
      "rules": [{"level": "None", "nonResourceURLs": ["/a"], "namespaces": ["x"]}]},
     "rules cannot apply to both regular resources and non-resource URLs"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
      "rules": [{"level": "None", "resources": [{"group": "rbac.authorization.k8s.io/v1"}]}]},
     "rules[0].resources[0].group: 'rbac.authorization.k8s.io/v1' is not a lower-case DNS subdomain"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
      "rules": [{"level": "None", "resources": [{"group": "", "resourceNames": ["x"]}]}]},
     "rules[0].resources[0].resourceNames: using resourceNames requires at least one resource"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None", "omitStages": ["Done"]}]},
     "rules[0].omitStages[0]: unknown stage 'Done'"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": [{"level": "None", "users": "alice"}]},
     "rules[0].users: must be a list of strings"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "rules": []}, "rules: a policy needs at least one rule"),
    ({"apiVersion": "audit.k8s.io/v1beta1", "kind": "Policy", "rules": [{"level": "None"}]},
     "apiVersion: audit.k8s.io/v1beta1 is no longer served; use audit.k8s.io/v1"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "AuditPolicy", "rules": [{"level": "None"}]},
     "kind: must be Policy"),
    ({"apiVersion": "audit.k8s.io/v1", "kind": "Policy", "omitManagedFields": "yes", "rules": [{"level": "None"}]},
     "omitManagedFields: must be true or false"),
])
def test_invalid_policies_name_the_field(doc: dict, expected: str) -> None:
    with pytest.raises(AuditPolicyError) as info:
        AuditPolicy.parse(doc, "policy.yaml")
    assert str(info.value).startswith("policy.yaml: invalid audit policy: ")
    assert expected in str(info.value)


def test_every_error_is_reported_at_once() -> None:
    with pytest.raises(AuditPolicyError) as info:
        AuditPolicy.parse({"apiVersion": "audit.k8s.io/v1", "kind": "Policy",
                           "rules": [{"level": "Bad"}, {"level": "None", "verbs": "get"}]})
    assert "rules[0].level" in str(info.value) and "rules[1].verbs" in str(info.value)


def test_load_reads_yaml_files_and_reports_unreadable_ones(tmp_path: Path) -> None:
    path = tmp_path / "policy.yaml"
    path.write_text(UPSTREAM_EXAMPLE)
    assert AuditPolicy.load(path).evaluate(res("create", "pods")).level == "RequestResponse"
    path.write_text("rules: [\n")
    with pytest.raises(AuditPolicyError, match=r"is not valid YAML at line \d"):
        AuditPolicy.load(path)
    with pytest.raises(AuditPolicyError, match="cannot read audit policy"):
        AuditPolicy.load(tmp_path / "missing.yaml")
    path.write_text("- level: None\n")
    with pytest.raises(AuditPolicyError, match="must be a mapping"):
        AuditPolicy.load(path)


# --- the shipped default policy --------------------------------------------------------------------

RBAC = "rbac.authorization.k8s.io"


@pytest.mark.parametrize(("attrs", "level", "records_request_received"), [
    (nonres("get", "/healthz"), "None", False),
    (nonres("get", "/livez/ping", user=ANONYMOUS), "None", False),
    (nonres("get", "/readyz"), "None", False),
    (nonres("get", "/version"), "None", False),
    (res("get", "secrets", name="db"), "Metadata", False),
    (res("list", "secrets"), "Metadata", False),
    (res("create", "secrets"), "Metadata", True),
    (res("patch", "configmaps", name="app"), "Metadata", True),
    (res("create", "serviceaccounts", name="default", sub="token"), "Metadata", True),
    (res("create", "tokenreviews", ns="", group="authentication.k8s.io"), "Metadata", True),
    (res("create", "pods", name="web", sub="exec"), "RequestResponse", True),
    (res("get", "pods", name="web", sub="attach"), "RequestResponse", True),
    (res("create", "pods", name="web", sub="portforward"), "RequestResponse", True),
    (res("patch", "pods", name="web", sub="ephemeralcontainers"), "RequestResponse", True),
    (res("create", "clusterrolebindings", ns="", group=RBAC), "RequestResponse", True),
    (res("delete", "roles", name="r", group=RBAC), "RequestResponse", True),
    (res("list", "clusterroles", ns="", group=RBAC), "Metadata", False),
    (res("update", "policies", name="p", group="policy.securekube.io"), "RequestResponse", True),
    (res("get", "pods", name="web"), "Metadata", False),
    (res("get", "pods", name="web", sub="log"), "Metadata", False),
    (res("watch", "deployments", group="apps"), "Metadata", False),
    (res("create", "deployments", group="apps"), "Request", True),
    (res("delete", "pods", name="web"), "Request", True),
    (res("deletecollection", "jobs", group="batch"), "Request", True),
    (nonres("get", "/metrics"), "Metadata", False),
    (nonres("post", "/some/endpoint"), "Metadata", True),
])
def test_default_policy(attrs: Attributes, level: str, records_request_received: bool) -> None:
    decision = default_policy().evaluate(attrs)
    assert decision.level == level
    if level != "None":
        assert decision.records("ResponseComplete")
        assert decision.records("RequestReceived") is records_request_received
        assert decision.omit_managed_fields is True


def test_default_policy_is_a_real_file_users_can_copy() -> None:
    assert DEFAULT_POLICY_PATH == Path(__file__).resolve().parents[3] / "docs" / "audit-policy.yaml"
    assert AuditPolicy.load(DEFAULT_POLICY_PATH) == default_policy()
