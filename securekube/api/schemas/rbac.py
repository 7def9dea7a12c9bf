"""rbac.authorization.k8s.io/v1: Role, ClusterRole, RoleBinding and ClusterRoleBinding."""
from __future__ import annotations

from securekube.api.schema import STRING, GroupVersionKind, array, field, obj
from securekube.api.schemas.meta import LABEL_SELECTOR, kind_object

RBAC = "io.k8s.api.rbac.v1"
GROUP = "rbac.authorization.k8s.io"


def _gvk(kind: str) -> GroupVersionKind:
    return GroupVersionKind(GROUP, "v1", kind)


POLICY_RULE = obj(
    f"{RBAC}.PolicyRule", "Actions a rule allows: verbs on resources or on non-resource URLs.",
    field("apiGroups", array(STRING), "API groups of the resources; \"\" is the core group, \"*\" any group."),
    field("nonResourceURLs", array(STRING), "URL paths such as /healthz; only in ClusterRoles, \"*\" as a suffix "
                                            "matches any rest."),
    field("resourceNames", array(STRING), "Names the rule is limited to; any name when empty."),
    field("resources", array(STRING), "Resources, with subresources as resource/subresource; \"*\" for all."),
    field("verbs", array(STRING), "Verbs allowed, such as get, list or create; \"*\" for all.", required=True),
)

AGGREGATION_RULE = obj(
    f"{RBAC}.AggregationRule", "Builds a ClusterRole's rules from the rules of other ClusterRoles.",
    field("clusterRoleSelectors", array(LABEL_SELECTOR), "ClusterRoles whose rules are added, selected by label."),
)

SUBJECT = obj(
    f"{RBAC}.Subject", "Who a binding grants to: a user, a group or a service account.",
    field("apiGroup", STRING, "rbac.authorization.k8s.io for users and groups, empty for service accounts."),
    field("kind", STRING, "User, Group or ServiceAccount.", required=True),
    field("name", STRING, "Name of the subject.", required=True),
    field("namespace", STRING, "Namespace of a service account; empty for users and groups."),
)

ROLE_REF = obj(
    f"{RBAC}.RoleRef", "The role a binding grants; it cannot change after creation.",
    field("apiGroup", STRING, "Group of the role: rbac.authorization.k8s.io.", required=True),
    field("kind", STRING, "Role or ClusterRole.", required=True),
    field("name", STRING, "Name of the role.", required=True),
)

ROLE = kind_object(
    f"{RBAC}.Role", "Permissions inside one namespace.", _gvk("Role"),
    field("rules", array(POLICY_RULE), "What the role allows."),
)

CLUSTER_ROLE = kind_object(
    f"{RBAC}.ClusterRole", "Permissions that can apply cluster-wide or, through a RoleBinding, in one namespace.",
    _gvk("ClusterRole"),
    field("aggregationRule", AGGREGATION_RULE, "When set, the rules are filled from other ClusterRoles."),
    field("rules", array(POLICY_RULE), "What the role allows."),
)

ROLE_BINDING = kind_object(
    f"{RBAC}.RoleBinding", "Grants a Role or ClusterRole to subjects inside one namespace.", _gvk("RoleBinding"),
    field("roleRef", ROLE_REF, "The role granted.", required=True),
    field("subjects", array(SUBJECT), "Who is granted the role."),
)

CLUSTER_ROLE_BINDING = kind_object(
    f"{RBAC}.ClusterRoleBinding", "Grants a ClusterRole to subjects across the whole cluster.",
    _gvk("ClusterRoleBinding"),
    field("roleRef", ROLE_REF, "The ClusterRole granted.", required=True),
    field("subjects", array(SUBJECT), "Who is granted the role."),
)
