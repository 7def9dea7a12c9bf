# No container runs without a seccomp filter.
#
# seccomp removes hundreds of system calls a container never needs - and most kernel exploits
# used for container escapes need one of them. `Unconfined` switches the filter off. Unset is
# left to the runtime (securekube's kubelet applies RuntimeDefault) and to Pod Security
# `restricted`, which requires an explicit profile.
#
# Checked: the pod's and every container's seccompProfile when a pod is created, the ephemeral
# containers an update adds, and the legacy annotations (seccomp.security.alpha.kubernetes.io/pod,
# container.seccomp.security.alpha.kubernetes.io/<name>) on create and update.
package securekube.admission.seccomp_not_unconfined

# Each rule body starts with equality tests on the request that OPA's rule index can use, so a
# request a rule cannot apply to costs it next to nothing; refs go straight to input.

old_ephemeral_names := {container.name | some container in object.get(input.request.oldObject.spec, "ephemeralContainers", [])}

checked_containers contains container if {
	input.request.kind.kind == "Pod"
	input.request.operation == "CREATE"
	object.get(input.request, "subResource", "") in {"", "ephemeralcontainers"}
	some field in ["containers", "initContainers", "ephemeralContainers"]
	some container in object.get(input.request.object.spec, field, [])
}

checked_containers contains container if {
	input.request.kind.kind == "Pod"
	input.request.operation == "UPDATE"
	object.get(input.request, "subResource", "") in {"", "ephemeralcontainers"}
	some container in object.get(input.request.object.spec, "ephemeralContainers", [])
	not container.name in old_ephemeral_names
}

deny contains "the pod must not set securityContext.seccompProfile.type to Unconfined" if {
	input.request.kind.kind == "Pod"
	input.request.operation == "CREATE"
	object.get(input.request, "subResource", "") in {"", "ephemeralcontainers"}
	input.request.object.spec.securityContext.seccompProfile.type == "Unconfined"
}

deny contains msg if {
	some container in checked_containers
	container.securityContext.seccompProfile.type == "Unconfined"
	msg := sprintf("container %q must not set securityContext.seccompProfile.type to Unconfined", [container.name])
}

deny contains msg if {
	input.request.kind.kind == "Pod"
	input.request.operation in {"CREATE", "UPDATE"}
	object.get(input.request, "subResource", "") in {"", "ephemeralcontainers"}
	some key, value in object.get(input.request.object.metadata, "annotations", {})
	legacy_annotation(key)
	lower(value) == "unconfined"
	msg := sprintf("annotation %s=%s turns seccomp off: remove it", [key, value])
}

legacy_annotation(key) if key == "seccomp.security.alpha.kubernetes.io/pod"

legacy_annotation(key) if startswith(key, "container.seccomp.security.alpha.kubernetes.io/")
