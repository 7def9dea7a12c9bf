# Secrets in namespace audit-system are read by the detection sidecar and by nobody else.
#
# That namespace holds what keeps the audit trail honest (the sidecar's credentials, the keys
# that sign audit-log checkpoints). RBAC cannot protect them from a cluster administrator: it
# only grants, and an administrator can grant anything. This policy denies, before RBAC is
# asked, and it binds system:masters too - that is its point: a stolen administrator
# credential must not be enough to read, and so to forge or silence, the audit pipeline.
#
# Closed around the obvious detours as well: a list or watch across all namespaces returns
# audit-system's secrets too, and impersonating the sidecar or minting a token for it would
# hand its exemption to anyone allowed to impersonate (system:masters is). Not covered here:
# running a pod as the sidecar's ServiceAccount - restrict who creates pods in audit-system.
package securekube.authz.audit_system_secrets

protected_namespace := "audit-system"

sidecar_name := "detection-sidecar"

sidecar_user := sprintf("system:serviceaccount:%s:%s", [protected_namespace, sidecar_name])

read_verbs := {"get", "list", "watch"}

# Empty fields are absent from a SubjectAccessReview: read every field with its default.
attributes := object.get(input.spec, "resourceAttributes", {})

requester := object.get(input.spec, "user", "")

namespace := object.get(attributes, "namespace", "")

name := object.get(attributes, "name", "")

core_group if object.get(attributes, "group", "") == ""

# An empty namespace is every namespace, audit-system included; an empty name is every name.
in_protected_namespace if namespace in {protected_namespace, ""}

deny contains msg if {
	core_group
	attributes.resource == "secrets"
	attributes.verb in read_verbs
	in_protected_namespace
	requester != sidecar_user
	msg := sprintf("only %s may read secrets in namespace %s", [sidecar_user, protected_namespace])
}

deny contains msg if {
	core_group
	attributes.verb == "impersonate"
	names_sidecar_identity
	msg := sprintf("nobody may impersonate %s", [sidecar_user])
}

deny contains msg if {
	core_group
	attributes.verb == "create"
	attributes.resource == "serviceaccounts"
	object.get(attributes, "subresource", "") == "token"
	in_protected_namespace
	name in {sidecar_name, ""}
	msg := sprintf("nobody may request a token for %s", [sidecar_user])
}

# Impersonating a ServiceAccount is checked on `serviceaccounts`, any other user on `users`.
names_sidecar_identity if {
	attributes.resource == "serviceaccounts"
	in_protected_namespace
	name in {sidecar_name, ""}
}

names_sidecar_identity if {
	attributes.resource == "users"
	name in {sidecar_user, ""}
}
