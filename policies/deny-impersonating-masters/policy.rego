# Nobody impersonates the cluster-administrator groups, whatever RBAC grants.
#
# `kubectl --as=someone --as-group=system:masters` turns an `impersonate` permission into full
# control of the cluster. RBAC rules for `impersonate` are easy to write too broadly
# (resources: ["*"], a wildcard resourceNames), and RBAC cannot take a grant back; this policy
# can. Administrators act with their own credentials, so the audit log names who did what.
package securekube.authz.deny_impersonating_masters

administrator_groups := {"system:masters", "securekube:cluster-admins"}

# Empty fields are absent from a SubjectAccessReview: read every field with its default.
attributes := object.get(input.spec, "resourceAttributes", {})

deny contains msg if {
	object.get(attributes, "group", "") == ""
	attributes.verb == "impersonate"
	attributes.resource == "groups"
	some group in administrator_groups
	object.get(attributes, "name", "") in {group, ""}
	msg := sprintf("nobody may impersonate group %s", [group])
}
