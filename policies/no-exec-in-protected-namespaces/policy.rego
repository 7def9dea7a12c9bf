# Nobody runs commands inside the pods of the protected namespaces.
#
# kube-system runs the cluster's own components and audit-system the detection sidecar, with
# their credentials and signing keys. `kubectl exec` or `kubectl attach` into one of them runs
# code with those credentials; `kubectl debug` (an ephemeral container) does the same by
# another door, so it is refused too. RBAC grants `pods/exec` broadly (admin, edit) and cannot
# take it back for one namespace; this policy can, and it binds cluster administrators as
# well. To debug a component there, change this policy - which is itself audited.
#
# Parameter `namespaces`: the protected namespaces (default kube-system, audit-system).
package securekube.admission.no_exec_in_protected_namespaces

# Each rule body starts with equality tests on the request that OPA's rule index can use, so a
# request a rule cannot apply to costs it next to nothing; refs go straight to input.

protected := object.get(input, ["parameters", "namespaces"], ["kube-system", "audit-system"])

namespace := object.get(input.request, "namespace", "")

deny contains msg if {
	input.request.operation == "CONNECT"
	input.request.resource.resource == "pods"
	input.request.resource.group == ""
	some subresource in ["exec", "attach"]
	input.request.subResource == subresource
	namespace in protected
	msg := sprintf("%s into pods of namespace %s is not allowed", [subresource, namespace])
}

deny contains msg if {
	input.request.subResource == "ephemeralcontainers"
	input.request.resource.resource == "pods"
	input.request.resource.group == ""
	input.request.operation in {"CREATE", "UPDATE"}
	namespace in protected
	msg := sprintf("ephemeral (debug) containers in pods of namespace %s are not allowed", [namespace])
}
