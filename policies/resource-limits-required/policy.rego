# Every container of a pod sets CPU and memory limits.
#
# Without limits one pod can take a node's memory (the kernel then kills other pods) or its
# CPU; on a shared lab node that is a denial of service against every other workload, the
# detection sidecar included. Requests alone do not cap anything.
#
# Checked when a pod is created: containers and init containers need `resources.limits.cpu`
# and `resources.limits.memory`. Ephemeral containers cannot have resources and are not judged;
# resources do not change on ordinary updates.
#
# Parameter `resources`: the limits required (default ["cpu", "memory"]).
package securekube.admission.resource_limits_required

# Each rule body starts with equality tests on the request that OPA's rule index can use, so a
# request a rule cannot apply to costs it next to nothing; refs go straight to input.

required := object.get(input, ["parameters", "resources"], ["cpu", "memory"])

deny contains msg if {
	input.request.kind.kind == "Pod"
	input.request.operation == "CREATE"
	object.get(input.request, "subResource", "") == ""
	some field in ["containers", "initContainers"]
	some container in object.get(input.request.object.spec, field, [])
	some resource in required
	not has_limit(container, resource)
	msg := sprintf("container %q has no %s limit (resources.limits.%s)", [container.name, resource, resource])
}

has_limit(container, resource) if {
	limit := container.resources.limits[resource]
	limit != null
	limit != ""
}
