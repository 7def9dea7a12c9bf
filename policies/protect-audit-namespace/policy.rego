# What runs in audit-system, and with which credentials and permissions, changes only by break-glass.
#
# audit-system holds the detection sidecar: its pod, its ServiceAccount, its configuration, the
# keys that sign audit-log checkpoints, and the RBAC that lets it report. Whoever can replace
# the pod (or add a container to it, or evict it), edit its ConfigMaps or Secrets, or grant
# its ServiceAccount more, can blind or impersonate the detector - the first thing an intruder
# with an administrator's credential would do. The everyday administrator
# (securekube:cluster-admins) is therefore not enough: changes need the short-lived break-glass
# credential (system:masters, `securekube pki breakglass`), which is issued on request and
# stands out in the audit log. The authorization policy `audit-system-secrets` keeps the
# secrets unreadable as well; `protect-system-namespaces` keeps the namespace from being deleted.
#
# Denied to everyone else in namespace audit-system: create, update and delete of pods
# (also pods/ephemeralcontainers and pods/eviction), secrets, configmaps, serviceaccounts,
# roles and rolebindings; and updates of the Namespace object itself (its Pod Security labels).
# A kubelet may still finish deleting a pod bound to it (NodeRestriction checks the binding),
# and status updates are not judged.
#
# Parameters `exempt_groups` (default ["system:masters"]) and `exempt_users` (default []).
package securekube.admission.protect_audit_namespace

# Each rule body starts with equality tests on the request that OPA's rule index can use, so a
# request a rule cannot apply to costs it next to nothing; refs go straight to input.

protected_namespace := "audit-system"

exempt_groups := object.get(input, ["parameters", "exempt_groups"], ["system:masters"])

exempt_users := object.get(input, ["parameters", "exempt_users"], [])

protected_resources := {
	{"group": "", "resource": "pods"},
	{"group": "", "resource": "secrets"},
	{"group": "", "resource": "configmaps"},
	{"group": "", "resource": "serviceaccounts"},
	{"group": "rbac.authorization.k8s.io", "resource": "roles"},
	{"group": "rbac.authorization.k8s.io", "resource": "rolebindings"},
}

# Subresources that change what runs ("" is the object itself).
protected_subresources := {"", "ephemeralcontainers", "eviction"}

user := object.get(input.request.userInfo, "username", "")

groups := object.get(input.request.userInfo, "groups", [])

subresource := object.get(input.request, "subResource", "")

resource := {"group": input.request.resource.group, "resource": input.request.resource.resource}

exempt if user in exempt_users

exempt if {
	some group in groups
	group in exempt_groups
}

# The kubelet deletes a pod for good once its containers stopped; NodeRestriction makes sure
# the pod is bound to that kubelet's node.
kubelet_finishing_deletion if {
	input.request.operation == "DELETE"
	resource == {"group": "", "resource": "pods"}
	subresource == ""
	"system:nodes" in groups
	startswith(user, "system:node:")
}

holders := concat(", ", array.concat(exempt_groups, exempt_users))

what := input.request.resource.resource if subresource == ""

what := sprintf("%s/%s", [input.request.resource.resource, subresource]) if subresource != ""

# The rules compare with the literal "audit-system" (protected_namespace's value): the rule
# index can use a constant, not a rule reference.
deny contains msg if {
	input.request.namespace == "audit-system"
	input.request.operation in {"CREATE", "UPDATE", "DELETE"}
	resource in protected_resources
	subresource in protected_subresources
	not exempt
	not kubelet_finishing_deletion
	msg := sprintf("namespace %s is protected: only %s may %s %s there", [
		protected_namespace, holders, lower(input.request.operation), what,
	])
}

deny contains msg if {
	input.request.name == "audit-system"
	input.request.resource.resource == "namespaces"
	input.request.resource.group == ""
	input.request.operation in {"UPDATE", "DELETE"}
	subresource == ""
	not exempt
	msg := sprintf("namespace %s is protected: only %s may %s it", [
		protected_namespace, holders, lower(input.request.operation),
	])
}
