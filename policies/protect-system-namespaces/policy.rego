# The namespaces the cluster itself depends on cannot be deleted, whatever RBAC grants.
#
# RBAC can grant `delete` on namespaces but cannot say "except these": a grant on all
# namespaces includes kube-system. Deleting kube-system or kube-node-lease breaks the control
# plane and the nodes; deleting audit-system removes the detection sidecar, which is how an
# intruder would go quiet. `deletecollection` deletes every namespace, these included.
package securekube.authz.protect_system_namespaces

protected_namespaces := {"default", "kube-system", "kube-public", "kube-node-lease", "audit-system"}

# Empty fields are absent from a SubjectAccessReview: read every field with its default.
attributes := object.get(input.spec, "resourceAttributes", {})

deleting_namespaces if {
	object.get(attributes, "group", "") == ""
	attributes.resource == "namespaces"
	object.get(attributes, "subresource", "") == ""
	attributes.verb in {"delete", "deletecollection"}
}

deny contains msg if {
	deleting_namespaces
	name := object.get(attributes, "name", "")
	name in protected_namespaces
	msg := sprintf("namespace %s may not be deleted", [name])
}

# Without a name the request covers every namespace, the protected ones too.
deny contains msg if {
	deleting_namespaces
	object.get(attributes, "name", "") == ""
	msg := "deleting every namespace would delete the protected ones"
}
