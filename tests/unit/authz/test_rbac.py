"""RBACAuthorizer against upstream rbac.authorization.k8s.io/v1 semantics."""
from __future__ import annotations

import threading
from typing import Any

import pytest

from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes, Decision, Verdict
from securekube.authz.rbac import InvalidRBACObject, RBACAuthorizer

from tests.unit.authz.rbac_builders import rule

RBAC = "rbac.authorization.k8s.io"


# ----------------------------------------------------------------------------- builders




def cluster_role(name, *rules, labels=None, selectors=None) -> tuple[str, dict]:
    obj: dict[str, Any] = {
        "apiVersion": f"{RBAC}/v1",
        "kind": "ClusterRole",
        "metadata": {"name": name, "labels": labels or {}},
        "rules": list(rules),
    }
    if selectors is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": selectors}
    return "ClusterRole", obj


def role(namespace, name, *rules) -> tuple[str, dict]:
    return "Role", {"metadata": {"name": name, "namespace": namespace}, "rules": list(rules)}


def user_subject(name):
    return {"kind": "User", "apiGroup": RBAC, "name": name}


def group_subject(name):
    return {"kind": "Group", "apiGroup": RBAC, "name": name}


def sa_subject(name, namespace=None):
    out = {"kind": "ServiceAccount", "name": name}
    if namespace is not None:
        out["namespace"] = namespace
    return out


def crb(name, role_name, *subjects) -> tuple[str, dict]:
    return "ClusterRoleBinding", {
        "metadata": {"name": name},
        "roleRef": {"apiGroup": RBAC, "kind": "ClusterRole", "name": role_name},
        "subjects": list(subjects),
    }


def rb(namespace, name, role_kind, role_name, *subjects) -> tuple[str, dict]:
    return "RoleBinding", {
        "metadata": {"name": name, "namespace": namespace},
        "roleRef": {"apiGroup": RBAC, "kind": role_kind, "name": role_name},
        "subjects": list(subjects),
    }


ALICE = UserInfo("alice", groups=("devs", "system:authenticated"))
BOB = UserInfo("bob", groups=("system:authenticated",))
SA_CI = UserInfo("system:serviceaccount:team-a:ci", groups=("system:serviceaccounts", "system:authenticated"))


def res(verb, resource, namespace="", group="", name="", subresource="", user=ALICE) -> Attributes:
    return Attributes(
        user=user, verb=verb, resource_request=True, namespace=namespace, api_group=group,
        api_version="v1", resource=resource, subresource=subresource, name=name,
    )


def url(verb, path, user=ALICE) -> Attributes:
    return Attributes(user=user, verb=verb, resource_request=False, path=path)


def authorizer_with(*objects: tuple[str, dict]) -> RBACAuthorizer:
    authorizer = RBACAuthorizer()
    for kind, obj in objects:
        authorizer.apply(kind, obj)
    return authorizer


def allowed(authorizer: RBACAuthorizer, attrs: Attributes) -> bool:
    decision = authorizer.authorize(attrs)
    assert decision.verdict in (Verdict.ALLOW, Verdict.NO_OPINION)  # RBAC never denies
    return decision.verdict is Verdict.ALLOW


def granted(*rules) -> RBACAuthorizer:
    """alice holds a ClusterRole with `rules` cluster-wide."""
    return authorizer_with(cluster_role("r", *rules), crb("b", "r", user_subject("alice")))


# ----------------------------------------------------------------------------- rule matching

RULE_CASES = [
    # (id, rules, request, allowed)
    ("verb exact", [rule(["get"], [""], ["pods"])], res("get", "pods", "ns"), True),
    ("other verb", [rule(["get"], [""], ["pods"])], res("delete", "pods", "ns"), False),
    ("verb star", [rule(["*"], [""], ["pods"])], res("deletecollection", "pods", "ns"), True),
    ("group mismatch", [rule(["get"], [""], ["deployments"])], res("get", "deployments", group="apps"), False),
    ("group exact", [rule(["get"], ["apps"], ["deployments"])], res("get", "deployments", group="apps"), True),
    ("group star", [rule(["get"], ["*"], ["deployments"])], res("get", "deployments", group="apps"), True),
    ("resource star matches subresource", [rule(["get"], [""], ["*"])], res("get", "pods", subresource="log"), True),
    ("resource does not cover its subresource", [rule(["get"], [""], ["pods"])],
     res("get", "pods", "ns", name="p", subresource="log"), False),
    ("subresource exact", [rule(["get"], [""], ["pods/log"])],
     res("get", "pods", "ns", name="p", subresource="log"), True),
    ("subresource rule not the parent", [rule(["get"], [""], ["pods/log"])], res("get", "pods", "ns", name="p"), False),
    ("star-slash-subresource", [rule(["update"], ["apps"], ["*/scale"])],
     res("update", "deployments", "ns", "apps", "d", "scale"), True),
    ("star-slash-subresource not parent", [rule(["update"], ["apps"], ["*/scale"])],
     res("update", "deployments", "ns", "apps", "d"), False),
    ("star-slash-subresource other subresource", [rule(["update"], ["apps"], ["*/scale"])],
     res("update", "deployments", "ns", "apps", "d", "status"), False),
    ("resourceNames named", [rule(["get"], [""], ["configmaps"], names=["cfg"])],
     res("get", "configmaps", "ns", name="cfg"), True),
    ("resourceNames other name", [rule(["get"], [""], ["configmaps"], names=["cfg"])],
     res("get", "configmaps", "ns", name="other"), False),
    ("resourceNames do not allow list without name", [rule(["list"], [""], ["configmaps"], names=["cfg"])],
     res("list", "configmaps", "ns"), False),
    ("resourceNames allow list naming it (fieldSelector)", [rule(["list"], [""], ["configmaps"], names=["cfg"])],
     res("list", "configmaps", "ns", name="cfg"), True),
    ("resourceNames cannot restrict create", [rule(["create"], [""], ["configmaps"], names=["cfg"])],
     res("create", "configmaps", "ns"), False),
    ("resourceNames cannot restrict deletecollection",
     [rule(["deletecollection"], [""], ["configmaps"], names=["cfg"])],
     res("deletecollection", "configmaps", "ns"), False),
    ("url exact", [rule(["get"], urls=["/healthz"])], url("get", "/healthz"), True),
    ("url exact is not a prefix", [rule(["get"], urls=["/healthz"])], url("get", "/healthz/etcd"), False),
    ("url verb", [rule(["get"], urls=["/healthz"])], url("post", "/healthz"), False),
    ("url trailing star prefix", [rule(["get"], urls=["/apis/*"])], url("get", "/apis/apps/v1"), True),
    ("url trailing star needs the prefix", [rule(["get"], urls=["/apis/*"])], url("get", "/apis"), False),
    ("url star", [rule(["*"], urls=["*"])], url("put", "/anything/at/all"), True),
    ("url rule grants no resources", [rule(["*"], urls=["*"])], res("get", "pods", "ns"), False),
    ("resource rule grants no urls", [rule(["*"], ["*"], ["*"])], url("get", "/version"), False),
    ("rule without verbs", [rule([], [""], ["pods"])], res("get", "pods", "ns"), False),
    ("second rule matches", [rule(["get"], [""], ["pods"]), rule(["list"], [""], ["secrets"])],
     res("list", "secrets", "ns"), True),
]


@pytest.mark.parametrize("rules,request_attrs,expected", [c[1:] for c in RULE_CASES], ids=[c[0] for c in RULE_CASES])
def test_rule_matching_follows_upstream(rules, request_attrs, expected):
    assert allowed(granted(*rules), request_attrs) is expected


# ----------------------------------------------------------------------------- scoping


def test_rolebinding_to_clusterrole_grants_only_in_its_namespace():
    authorizer = authorizer_with(
        cluster_role("pod-reader", rule(["get", "list"], [""], ["pods"])),
        rb("team-a", "readers", "ClusterRole", "pod-reader", user_subject("alice")),
    )
    assert allowed(authorizer, res("list", "pods", "team-a"))
    assert not allowed(authorizer, res("list", "pods", "team-b"))
    assert not allowed(authorizer, res("list", "pods", ""))  # all namespaces is cluster-wide


def test_rolebinding_uses_the_role_of_its_own_namespace():
    authorizer = authorizer_with(
        role("team-a", "reader", rule(["get"], [""], ["pods"])),
        role("team-b", "reader", rule(["get"], [""], ["secrets"])),
        rb("team-a", "readers", "Role", "reader", user_subject("alice")),
    )
    assert allowed(authorizer, res("get", "pods", "team-a", name="p"))
    assert not allowed(authorizer, res("get", "secrets", "team-a", name="s"))
    assert not allowed(authorizer, res("get", "pods", "team-b", name="p"))


def test_clusterrolebinding_grants_everywhere():
    authorizer = granted(rule(["get"], [""], ["pods", "nodes"]))
    assert allowed(authorizer, res("get", "pods", "any-namespace", name="p"))
    assert allowed(authorizer, res("get", "nodes", name="n1"))


def test_rolebinding_to_clusterrole_never_grants_non_resource_urls():
    authorizer = authorizer_with(
        cluster_role("probe", rule(["get"], urls=["/healthz"])),
        rb("team-a", "probe", "ClusterRole", "probe", user_subject("alice")),
    )
    assert not allowed(authorizer, url("get", "/healthz"))


# ----------------------------------------------------------------------------- subjects


def test_user_and_group_subjects():
    authorizer = authorizer_with(
        cluster_role("reader", rule(["get"], [""], ["pods"])),
        crb("by-user", "reader", user_subject("bob")),
        rb("team-a", "by-group", "ClusterRole", "reader", group_subject("devs")),
    )
    assert allowed(authorizer, res("get", "pods", "team-b", name="p", user=BOB))
    assert allowed(authorizer, res("get", "pods", "team-a", name="p", user=ALICE))  # alice is in devs
    assert not allowed(authorizer, res("get", "pods", "team-b", name="p", user=ALICE))
    carol = UserInfo("carol", groups=("system:authenticated",))
    assert not allowed(authorizer, res("get", "pods", "team-a", name="p", user=carol))


def test_group_subject_does_not_match_a_user_of_that_name():
    authorizer = authorizer_with(
        cluster_role("reader", rule(["get"], [""], ["pods"])),
        crb("b", "reader", group_subject("alice")),
    )
    assert not allowed(authorizer, res("get", "pods", "ns", name="p", user=UserInfo("alice")))


def test_serviceaccount_subject_matches_its_username():
    authorizer = authorizer_with(
        cluster_role("reader", rule(["get"], [""], ["pods"])),
        crb("ci", "reader", sa_subject("ci", "team-a")),
    )
    assert allowed(authorizer, res("get", "pods", "x", name="p", user=SA_CI))
    other_namespace = UserInfo("system:serviceaccount:team-b:ci")
    assert not allowed(authorizer, res("get", "pods", "x", name="p", user=other_namespace))


def test_serviceaccount_subject_without_namespace_in_rolebinding_means_the_bindings_namespace():
    authorizer = authorizer_with(
        cluster_role("reader", rule(["get"], [""], ["pods"])),
        rb("team-a", "ci", "ClusterRole", "reader", sa_subject("ci")),
        rb("team-b", "ci", "ClusterRole", "reader", sa_subject("ci")),
    )
    assert allowed(authorizer, res("get", "pods", "team-a", name="p", user=SA_CI))
    assert not allowed(authorizer, res("get", "pods", "team-b", name="p", user=SA_CI))
    decision = authorizer.authorize(res("get", "pods", "team-a", name="p", user=SA_CI))
    assert decision.reason.endswith('to ServiceAccount "ci/team-a"')


def test_serviceaccount_subject_without_namespace_in_clusterrolebinding_is_invalid():
    authorizer = RBACAuthorizer()
    with pytest.raises(InvalidRBACObject, match="namespace"):
        authorizer.apply(*crb("ci", "reader", sa_subject("ci")))


# ----------------------------------------------------------------------------- aggregation


def test_aggregated_clusterrole_gets_the_union_of_matching_roles_and_ignores_its_own_rules():
    authorizer = authorizer_with(
        cluster_role("monitoring", rule(["get"], ["*"], ["*"]), selectors=[{"matchLabels": {"agg": "mon"}}]),
        cluster_role("pods", rule(["get"], [""], ["pods"]), labels={"agg": "mon"}),
        cluster_role("svcs", rule(["get"], [""], ["services"]), labels={"agg": "mon", "tier": "x"}),
        cluster_role("secrets", rule(["get"], [""], ["secrets"]), labels={"agg": "other"}),
        crb("b", "monitoring", user_subject("alice")),
    )
    assert allowed(authorizer, res("get", "pods", "ns", name="p"))
    assert allowed(authorizer, res("get", "services", "ns", name="s"))
    assert not allowed(authorizer, res("get", "secrets", "ns", name="s"))
    assert not allowed(authorizer, res("get", "configmaps", "ns", name="c"))  # its own rules were replaced


def test_aggregation_follows_label_changes_and_removals():
    authorizer = authorizer_with(
        cluster_role("agg", selectors=[{"matchLabels": {"agg": "yes"}}]),
        crb("b", "agg", user_subject("alice")),
    )
    assert not allowed(authorizer, res("get", "pods", "ns", name="p"))
    authorizer.apply(*cluster_role("pods", rule(["get"], [""], ["pods"]), labels={"agg": "yes"}))
    assert allowed(authorizer, res("get", "pods", "ns", name="p"))
    authorizer.apply(*cluster_role("pods", rule(["get"], [""], ["pods"]), labels={"agg": "no"}))
    assert not allowed(authorizer, res("get", "pods", "ns", name="p"))
    authorizer.apply(*cluster_role("pods", rule(["get"], [""], ["pods"]), labels={"agg": "yes"}))
    authorizer.remove("ClusterRole", "", "pods")
    assert not allowed(authorizer, res("get", "pods", "ns", name="p"))


def test_aggregation_with_match_expressions_and_several_selectors():
    authorizer = authorizer_with(
        cluster_role("agg", selectors=[
            {"matchExpressions": [{"key": "tier", "operator": "In", "values": ["a", "b"]},
                                  {"key": "off", "operator": "DoesNotExist"}]},
            {"matchLabels": {"extra": "true"}},
        ]),
        cluster_role("a", rule(["get"], [""], ["pods"]), labels={"tier": "a"}),
        cluster_role("b-off", rule(["get"], [""], ["secrets"]), labels={"tier": "b", "off": ""}),
        cluster_role("extra", rule(["get"], [""], ["services"]), labels={"extra": "true"}),
        crb("b", "agg", user_subject("alice")),
    )
    assert allowed(authorizer, res("get", "pods", "ns", name="x"))
    assert not allowed(authorizer, res("get", "secrets", "ns", name="x"))
    assert allowed(authorizer, res("get", "services", "ns", name="x"))


def test_nested_and_cyclic_aggregation_converge():
    authorizer = authorizer_with(
        cluster_role("top", selectors=[{"matchLabels": {"to-top": "1"}}]),
        cluster_role("middle", labels={"to-top": "1", "to-middle": "1"},
                     selectors=[{"matchLabels": {"to-middle": "1"}}]),
        cluster_role("leaf", rule(["get"], [""], ["pods"]), labels={"to-middle": "1"}),
        crb("b", "top", user_subject("alice")),
    )
    # top <- middle <- leaf, and middle selects itself (skipped) — leaf's rules reach top.
    assert allowed(authorizer, res("get", "pods", "ns", name="p"))


def test_invalid_selector_operator_is_rejected():
    with pytest.raises(InvalidRBACObject, match="operator"):
        RBACAuthorizer().apply(*cluster_role("agg", selectors=[{"matchExpressions": [{"key": "k", "operator": "Gt"}]}]))


# ----------------------------------------------------------------------------- updates


def test_remove_binding_revokes_and_role_created_later_grants():
    authorizer = authorizer_with(rb("ns", "b", "Role", "later", user_subject("alice")))
    assert not allowed(authorizer, res("get", "pods", "ns", name="p"))
    authorizer.apply(*role("ns", "later", rule(["get"], [""], ["pods"])))
    assert allowed(authorizer, res("get", "pods", "ns", name="p"))
    authorizer.remove("RoleBinding", "ns", "b")
    assert not allowed(authorizer, res("get", "pods", "ns", name="p"))
    authorizer.remove("RoleBinding", "ns", "b")  # removing twice is harmless


def test_replacing_a_binding_moves_the_grant_to_the_new_subjects():
    authorizer = authorizer_with(
        cluster_role("reader", rule(["get"], [""], ["pods"])),
        rb("ns", "b", "ClusterRole", "reader", user_subject("alice")),
    )
    authorizer.apply(*rb("ns", "b", "ClusterRole", "reader", user_subject("bob")))
    assert not allowed(authorizer, res("get", "pods", "ns", name="p", user=ALICE))
    assert allowed(authorizer, res("get", "pods", "ns", name="p", user=BOB))


def test_replacing_and_removing_a_role_changes_what_bindings_grant():
    authorizer = authorizer_with(
        role("ns", "r", rule(["get"], [""], ["pods"])),
        rb("ns", "b", "Role", "r", user_subject("alice")),
    )
    authorizer.apply(*role("ns", "r", rule(["get"], [""], ["secrets"])))
    assert not allowed(authorizer, res("get", "pods", "ns", name="p"))
    assert allowed(authorizer, res("get", "secrets", "ns", name="s"))
    authorizer.remove("Role", "ns", "r")
    assert not allowed(authorizer, res("get", "secrets", "ns", name="s"))


def test_removing_a_clusterrolebinding_revokes():
    authorizer = granted(rule(["get"], [""], ["pods"]))
    authorizer.remove("ClusterRoleBinding", "", "b")
    assert not allowed(authorizer, res("get", "pods", "ns", name="p"))


ROLE_REF = {"apiGroup": RBAC, "kind": "Role", "name": "r"}


@pytest.mark.parametrize(
    "kind,obj,message",
    [
        ("RoleBinding", rb("ns", "b", "Role", "r", {"kind": "Robot", "name": "x"})[1], "kind"),
        ("RoleBinding", rb("ns", "b", "Role", "r", {"kind": "User", "name": ""})[1], "name"),
        ("ClusterRoleBinding", crb("b", "r", user_subject("alice"))[1] | {"roleRef": ROLE_REF}, "roleRef.kind"),
        ("RoleBinding", {"metadata": {"name": "b"}, "roleRef": ROLE_REF}, "namespace"),
        ("RoleBinding", rb("ns", "b", "Role", "r", sa_subject("Bad:Name"))[1], "DNS-1123"),
        ("Role", {"metadata": {"name": "r", "namespace": "ns"}, "rules": [{"verbs": "get"}]}, "verbs"),
        ("Secret", {"metadata": {"name": "s"}}, "kind"),
    ],
    ids=["unknown subject kind", "empty subject name", "crb to Role", "rb without namespace",
         "sa name with colon", "verbs not a list", "not an rbac kind"],
)
def test_invalid_objects_raise_and_leave_the_authorizer_unchanged(kind, obj, message):
    authorizer = authorizer_with(
        cluster_role("reader", rule(["get"], [""], ["pods"])),
        rb("ns", "b", "ClusterRole", "reader", user_subject("alice")),
    )
    with pytest.raises(InvalidRBACObject, match=message):
        authorizer.apply(kind, obj)
    assert allowed(authorizer, res("get", "pods", "ns", name="p"))


# ----------------------------------------------------------------------------- decisions and reasons


def test_allow_reason_has_upstreams_form_for_clusterrolebindings():
    authorizer = authorizer_with(
        cluster_role("cluster-admin", rule(["*"], ["*"], ["*"])),
        crb("cluster-admins", "cluster-admin", user_subject("nobody"), group_subject("securekube:cluster-admins")),
    )
    admin = UserInfo("admin", groups=("securekube:cluster-admins",))
    assert authorizer.authorize(res("delete", "nodes", name="n", user=admin)) == Decision(
        Verdict.ALLOW,
        'RBAC: allowed by ClusterRoleBinding "cluster-admins" of ClusterRole "cluster-admin" '
        'to Group "securekube:cluster-admins"',
    )


def test_allow_reason_has_upstreams_form_for_rolebindings():
    authorizer = authorizer_with(
        role("team-a", "reader", rule(["get"], [""], ["pods"])),
        rb("team-a", "readers", "Role", "reader", user_subject("alice")),
    )
    assert authorizer.authorize(res("get", "pods", "team-a", name="p")).reason == (
        'RBAC: allowed by RoleBinding "readers/team-a" of Role "reader" to User "alice"'
    )


def test_reason_quotes_control_characters_in_names():
    tricky = UserInfo('eve\n"x', groups=())
    authorizer = authorizer_with(
        cluster_role("r", rule(["get"], [""], ["pods"])),
        crb("b", "r", user_subject('eve\n"x')),
    )
    reason = authorizer.authorize(res("get", "pods", "ns", name="p", user=tricky)).reason
    assert "\n" not in reason
    assert reason.endswith('to User "eve\\n\\"x"')


def test_no_opinion_reports_a_missing_role():
    authorizer = authorizer_with(crb("b", "ghost", user_subject("alice")))
    decision = authorizer.authorize(res("get", "pods", "ns", name="p"))
    assert decision == Decision(Verdict.NO_OPINION, 'RBAC: clusterrole.rbac.authorization.k8s.io "ghost" not found')


def test_system_masters_is_not_special_without_a_binding():
    masters = UserInfo("root", groups=("system:masters",))
    assert RBACAuthorizer().authorize(res("delete", "nodes", name="n", user=masters)).verdict is Verdict.NO_OPINION


def test_rules_for_lists_cluster_then_namespace_rules():
    authorizer = authorizer_with(
        cluster_role("discovery", rule(["get"], urls=["/api"])),
        cluster_role("reader", rule(["get"], [""], ["pods"], names=["p"])),
        crb("d", "discovery", group_subject("system:authenticated")),
        rb("team-a", "r", "ClusterRole", "reader", user_subject("alice"), group_subject("devs")),
    )
    assert authorizer.rules_for(ALICE, "team-a") == [
        {"nonResourceURLs": ["/api"], "verbs": ["get"]},
        {"apiGroups": [""], "resources": ["pods"], "resourceNames": ["p"], "verbs": ["get"]},
    ]
    assert authorizer.rules_for(ALICE, "team-b") == [{"nonResourceURLs": ["/api"], "verbs": ["get"]}]
    assert authorizer.rules_for(BOB, "team-a") == [{"nonResourceURLs": ["/api"], "verbs": ["get"]}]


def test_decisions_stay_consistent_while_bindings_change():
    """Readers run while one thread keeps rewriting bindings; every decision must be a clean
    ALLOW for the binding that is never touched, with no errors from a half-updated index."""
    authorizer = authorizer_with(
        cluster_role("reader", rule(["get"], [""], ["pods"])),
        rb("ns-0", "stable", "ClusterRole", "reader", user_subject("alice")),
    )
    stop = threading.Event()
    failures: list[object] = []

    def writer():
        i = 0
        while not stop.is_set():
            authorizer.apply(*rb("ns-0", f"churn-{i % 50}", "ClusterRole", "reader", user_subject(f"u{i}")))
            authorizer.remove("RoleBinding", "ns-0", f"churn-{(i + 25) % 50}")
            i += 1

    def reader():
        try:
            for _ in range(3000):
                if not allowed(authorizer, res("get", "pods", "ns-0", name="p")):
                    failures.append("stable grant disappeared")
                    return
        except Exception as exc:  # pragma: no cover - only on failure
            failures.append(exc)

    writer_thread = threading.Thread(target=writer)
    readers = [threading.Thread(target=reader) for _ in range(4)]
    writer_thread.start()
    for t in readers:
        t.start()
    for t in readers:
        t.join()
    stop.set()
    writer_thread.join()
    assert failures == []
