"""The default RBAC policy a new cluster starts with: upstream's bootstrap roles and bindings.

The rules are upstream's (k8s.io/kubernetes plugin/pkg/auth/authorizer/rbac/bootstrappolicy),
limited to the user-facing roles: cluster-admin, discovery, basic-user, public-info-viewer and
the aggregated admin/edit/view with their `system:aggregate-to-*` parts, plus what joining a node
needs: `system:node-bootstrapper` and the CSR auto-approval roles (bound as kubeadm binds them:
bootstrap tokens may request node client certificates, nodes may renew their own), and
`system:kubelet-api-admin` for the API server's client of the kubelet API. Other node, controller
and scheduler roles are left out; securekube authorizes those components its own way.

One binding is securekube's own: the admin kubeconfig's group `securekube:cluster-admins` gets
cluster-admin through it, so the admin needs no membership of `system:masters` (CIS 5.1.7).
"""
from __future__ import annotations

from typing import Any

from securekube.authz.rbac_model import RBAC_API_VERSION, RBAC_GROUP

ADMIN_GROUP = "securekube:cluster-admins"

_BOOTSTRAP_LABELS = (("kubernetes.io/bootstrapping", "rbac-defaults"),)
_AUTOUPDATE_ANNOTATIONS = (("rbac.authorization.kubernetes.io/autoupdate", "true"),)
_AGGREGATE_TO_ADMIN = "rbac.authorization.k8s.io/aggregate-to-admin"
_AGGREGATE_TO_EDIT = "rbac.authorization.k8s.io/aggregate-to-edit"
_AGGREGATE_TO_VIEW = "rbac.authorization.k8s.io/aggregate-to-view"
_CERTIFICATES = "certificates.k8s.io"
_CSR_ROLE_PREFIX = "system:certificates.k8s.io:certificatesigningrequests:"
BOOTSTRAPPERS_GROUP = "system:bootstrappers"
NODES_GROUP = "system:nodes"
# The user of the API server's client certificate for kubelets (pki/profiles.yaml `kubelet-client`).
KUBELET_CLIENT_USER = "securekube-apiserver-kubelet-client"

_READ = ("get", "list", "watch")
_WRITE = ("create", "update", "patch", "delete", "deletecollection")
_READ_WRITE = _READ + _WRITE

# A rule as (verbs, apiGroups, resources) or, for non-resource URLs, (verbs, None, urls).
_Rule = tuple[tuple[str, ...], tuple[str, ...] | None, tuple[str, ...]]

# (name, extra labels, rules, label that an aggregationRule selects or None)
_CLUSTER_ROLES: tuple[tuple[str, tuple[tuple[str, str], ...], tuple[_Rule, ...], str | None], ...] = (
    (
        "cluster-admin",
        (),
        ((("*",), ("*",), ("*",)), (("*",), None, ("*",))),
        None,
    ),
    (
        "system:discovery",
        (),
        (
            (
                ("get",),
                None,
                ("/api", "/api/*", "/apis", "/apis/*", "/healthz", "/livez", "/openapi", "/openapi/*", "/readyz",
                 "/version", "/version/"),
            ),
        ),
        None,
    ),
    (
        "system:basic-user",
        (),
        (
            (("create",), ("authorization.k8s.io",), ("selfsubjectaccessreviews", "selfsubjectrulesreviews")),
            (("create",), ("authentication.k8s.io",), ("selfsubjectreviews",)),
        ),
        None,
    ),
    (
        "system:public-info-viewer",
        (),
        ((("get",), None, ("/healthz", "/livez", "/readyz", "/version", "/version/")),),
        None,
    ),
    (
        # Upstream's role for scrapers: health endpoints and /metrics, nothing else.
        "system:monitoring",
        (),
        ((("get",), None, ("/healthz", "/healthz/*", "/livez", "/livez/*", "/metrics", "/metrics/slis", "/readyz",
                           "/readyz/*")),),
        None,
    ),
    (
        "system:service-account-issuer-discovery",
        (),
        ((("get",), None, ("/.well-known/openid-configuration", "/.well-known/openid-configuration/",
                           "/openid/v1/jwks", "/openid/v1/jwks/")),),
        None,
    ),
    (
        "system:node-bootstrapper",
        (),
        ((("create", "get", "list", "watch"), (_CERTIFICATES,), ("certificatesigningrequests",)),),
        None,
    ),
    # The CSR approver asks whether a requester may create these (virtual) subresources.
    (
        _CSR_ROLE_PREFIX + "nodeclient",
        (),
        ((("create",), (_CERTIFICATES,), ("certificatesigningrequests/nodeclient",)),),
        None,
    ),
    (
        _CSR_ROLE_PREFIX + "selfnodeclient",
        (),
        ((("create",), (_CERTIFICATES,), ("certificatesigningrequests/selfnodeclient",)),),
        None,
    ),
    (
        "system:kubelet-api-admin",
        (),
        (
            (_READ, ("",), ("nodes",)),
            (("proxy",), ("",), ("nodes",)),
            (("*",), ("",), ("nodes/proxy", "nodes/metrics", "nodes/spec", "nodes/stats", "nodes/log")),
        ),
        None,
    ),
    ("admin", (), (), _AGGREGATE_TO_ADMIN),
    ("edit", ((_AGGREGATE_TO_ADMIN, "true"),), (), _AGGREGATE_TO_EDIT),
    ("view", ((_AGGREGATE_TO_EDIT, "true"),), (), _AGGREGATE_TO_VIEW),
    (
        "system:aggregate-to-admin",
        ((_AGGREGATE_TO_ADMIN, "true"),),
        (
            (("create",), ("authorization.k8s.io",), ("localsubjectaccessreviews",)),
            (_READ_WRITE, (RBAC_GROUP,), ("rolebindings", "roles")),
        ),
        None,
    ),
    (
        "system:aggregate-to-edit",
        ((_AGGREGATE_TO_EDIT, "true"),),
        (
            # Reading secrets and exec/attach are escalating powers: edit has them, view does not.
            (_READ, ("",), ("pods/attach", "pods/exec", "pods/portforward", "pods/proxy", "secrets", "services/proxy")),
            (("impersonate",), ("",), ("serviceaccounts",)),
            (_WRITE, ("",), ("pods", "pods/attach", "pods/exec", "pods/portforward", "pods/proxy")),
            (("create",), ("",), ("pods/eviction",)),
            (
                _WRITE,
                ("",),
                ("configmaps", "events", "persistentvolumeclaims", "replicationcontrollers",
                 "replicationcontrollers/scale", "secrets", "serviceaccounts", "services", "services/proxy"),
            ),
            (("create",), ("",), ("serviceaccounts/token",)),
            (
                _WRITE,
                ("apps",),
                ("daemonsets", "deployments", "deployments/rollback", "deployments/scale", "replicasets",
                 "replicasets/scale", "statefulsets", "statefulsets/scale"),
            ),
            (_WRITE, ("autoscaling",), ("horizontalpodautoscalers",)),
            (_WRITE, ("batch",), ("cronjobs", "jobs")),
            (
                _WRITE,
                ("extensions",),
                ("daemonsets", "deployments", "deployments/rollback", "deployments/scale", "ingresses",
                 "networkpolicies", "replicasets", "replicasets/scale", "replicationcontrollers/scale"),
            ),
            (_WRITE, ("policy",), ("poddisruptionbudgets",)),
            (_WRITE, ("networking.k8s.io",), ("ingresses", "networkpolicies")),
            (_READ_WRITE, ("coordination.k8s.io",), ("leases",)),
        ),
        None,
    ),
    (
        "system:aggregate-to-view",
        ((_AGGREGATE_TO_VIEW, "true"),),
        (
            (
                _READ,
                ("",),
                ("configmaps", "endpoints", "persistentvolumeclaims", "persistentvolumeclaims/status", "pods",
                 "replicationcontrollers", "replicationcontrollers/scale", "serviceaccounts", "services",
                 "services/status"),
            ),
            (
                _READ,
                ("",),
                ("bindings", "events", "limitranges", "namespaces/status", "pods/log", "pods/status",
                 "replicationcontrollers/status", "resourcequotas", "resourcequotas/status"),
            ),
            # Reading a namespace you have access to tells you which namespaces you can use.
            (_READ, ("",), ("namespaces",)),
            (_READ, ("discovery.k8s.io",), ("endpointslices",)),
            (
                _READ,
                ("apps",),
                ("controllerrevisions", "daemonsets", "daemonsets/status", "deployments", "deployments/scale",
                 "deployments/status", "replicasets", "replicasets/scale", "replicasets/status", "statefulsets",
                 "statefulsets/scale", "statefulsets/status"),
            ),
            (_READ, ("autoscaling",), ("horizontalpodautoscalers", "horizontalpodautoscalers/status")),
            (_READ, ("batch",), ("cronjobs", "cronjobs/status", "jobs", "jobs/status")),
            (
                _READ,
                ("extensions",),
                ("daemonsets", "daemonsets/status", "deployments", "deployments/scale", "deployments/status",
                 "ingresses", "ingresses/status", "networkpolicies", "replicasets", "replicasets/scale",
                 "replicasets/status", "replicationcontrollers/scale"),
            ),
            (_READ, ("policy",), ("poddisruptionbudgets", "poddisruptionbudgets/status")),
            (_READ, ("networking.k8s.io",), ("ingresses", "ingresses/status", "networkpolicies")),
        ),
        None,
    ),
)

# (binding name, ClusterRole, groups bound[, users bound])
_Binding = tuple[str, str, tuple[str, ...]] | tuple[str, str, tuple[str, ...], tuple[str, ...]]
_CLUSTER_ROLE_BINDINGS: tuple[_Binding, ...] = (
    ("cluster-admin", "cluster-admin", ("system:masters",)),
    ("system:basic-user", "system:basic-user", ("system:authenticated",)),
    ("system:discovery", "system:discovery", ("system:authenticated",)),
    ("system:public-info-viewer", "system:public-info-viewer", ("system:authenticated", "system:unauthenticated")),
    ("system:monitoring", "system:monitoring", ("system:monitoring",)),
    ("system:service-account-issuer-discovery", "system:service-account-issuer-discovery", ("system:serviceaccounts",)),
    (ADMIN_GROUP, "cluster-admin", (ADMIN_GROUP,)),
    ("securekube:kubelet-bootstrap", "system:node-bootstrapper", (BOOTSTRAPPERS_GROUP,)),
    ("securekube:node-autoapprove-bootstrap", _CSR_ROLE_PREFIX + "nodeclient", (BOOTSTRAPPERS_GROUP,)),
    ("securekube:node-autoapprove-certificate-rotation", _CSR_ROLE_PREFIX + "selfnodeclient", (NODES_GROUP,)),
    ("securekube:apiserver-kubelet-client", "system:kubelet-api-admin", (), (KUBELET_CLIENT_USER,)),
)


def bootstrap_objects() -> list[dict[str, Any]]:
    """The bootstrap ClusterRoles, then ClusterRoleBindings, as full rbac/v1 API objects (fresh dicts)."""
    roles = [_cluster_role(*spec) for spec in _CLUSTER_ROLES]
    bindings = [_cluster_role_binding(*spec) for spec in _CLUSTER_ROLE_BINDINGS]
    return roles + bindings


def _metadata(name: str, extra_labels: tuple[tuple[str, str], ...] = ()) -> dict[str, Any]:
    return {
        "name": name,
        "labels": dict(_BOOTSTRAP_LABELS + extra_labels),
        "annotations": dict(_AUTOUPDATE_ANNOTATIONS),
    }


def _cluster_role(
    name: str, extra_labels: tuple[tuple[str, str], ...], rules: tuple[_Rule, ...], aggregate_label: str | None
) -> dict[str, Any]:
    obj: dict[str, Any] = {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRole",
        "metadata": _metadata(name, extra_labels),
        "rules": [_rule(*rule) for rule in rules],
    }
    if aggregate_label is not None:
        obj["aggregationRule"] = {"clusterRoleSelectors": [{"matchLabels": {aggregate_label: "true"}}]}
    return obj


def _rule(verbs: tuple[str, ...], api_groups: tuple[str, ...] | None, targets: tuple[str, ...]) -> dict[str, Any]:
    if api_groups is None:
        return {"nonResourceURLs": list(targets), "verbs": list(verbs)}
    return {"apiGroups": list(api_groups), "resources": list(targets), "verbs": list(verbs)}


def _cluster_role_binding(name: str, role: str, groups: tuple[str, ...], users: tuple[str, ...] = ()) -> dict[str, Any]:
    return {
        "apiVersion": RBAC_API_VERSION,
        "kind": "ClusterRoleBinding",
        "metadata": _metadata(name),
        "roleRef": {"apiGroup": RBAC_GROUP, "kind": "ClusterRole", "name": role},
        "subjects": [{"apiGroup": RBAC_GROUP, "kind": "Group", "name": group} for group in groups]
        + [{"apiGroup": RBAC_GROUP, "kind": "User", "name": user} for user in users],
    }
