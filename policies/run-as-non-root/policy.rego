# Containers run as a non-root user, enforced by the kubelet.
#
# A process running as UID 0 in a container is root on the node if it escapes the container
# (a kernel bug, a writable host mount, a mis-set capability). `runAsNonRoot: true` makes the
# kubelet refuse to start a container whose user is 0, whatever the image says; `runAsUser: 0`
# asks for root explicitly.
#
# Each container's effective settings count: its own securityContext, else the pod's. Checked
# for every container of a created pod and for the ephemeral containers an update adds
# (kubectl debug can ask for root).
package securekube.admission.run_as_non_root

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

# The container's own setting wins over the pod's, as the kubelet applies them.
effective(container, field) := value if {
	value := container.securityContext[field]
	value != null
} else := input.request.object.spec.securityContext[field]

runs_as_non_root(container) if effective(container, "runAsNonRoot") == true

deny contains msg if {
	some container in checked_containers
	not runs_as_non_root(container)
	msg := sprintf("container %q must run as non-root: set securityContext.runAsNonRoot=true on the pod or the container", [container.name])
}

deny contains msg if {
	some container in checked_containers
	effective(container, "runAsUser") == 0
	msg := sprintf("container %q must not run as user 0 (runAsUser: 0)", [container.name])
}
