# Pod images come only from registries the cluster trusts.
#
# An image is code that runs with the pod's identity and secrets; pulling it from an arbitrary
# registry hands that to whoever controls the registry (or a typo-squatted name on a public
# one). The lab's default allows its own image store and the Kubernetes project's registry.
#
# Parameter `registries`: the allowed prefixes, each ending in "/" so that "registry.k8s.io/"
# does not also admit "registry.k8s.io.attacker.example/". An image matches when it starts with
# one of them, so "docker.io/library/" allows Docker Hub's official images only.
#
# Checked: every container of a created pod; on an update, the containers whose image changes
# and the ephemeral containers it adds (kubectl debug). Images of unchanged containers are not
# judged again, so tightening the list never blocks a label change on a running pod.
package securekube.admission.allowed_image_registries

# Each rule body starts with equality tests on the request that OPA's rule index can use, so a
# request a rule cannot apply to costs it next to nothing; refs go straight to input.

default_registries := ["localhost/", "registry.k8s.io/"]

registries := object.get(input, ["parameters", "registries"], default_registries)

container_fields := ["containers", "initContainers", "ephemeralContainers"]

old_images[name] := container.image if {
	some field in container_fields
	some container in object.get(input.request.oldObject.spec, field, [])
	name := container.name
}

checked_containers contains container if {
	input.request.kind.kind == "Pod"
	input.request.operation == "CREATE"
	object.get(input.request, "subResource", "") in {"", "ephemeralcontainers"}
	some field in container_fields
	some container in object.get(input.request.object.spec, field, [])
}

checked_containers contains container if {
	input.request.kind.kind == "Pod"
	input.request.operation == "UPDATE"
	object.get(input.request, "subResource", "") in {"", "ephemeralcontainers"}
	some field in container_fields
	some container in object.get(input.request.object.spec, field, [])
	object.get(old_images, container.name, "") != container.image
}

allowed(image) if {
	some registry in registries
	startswith(image, registry)
}

deny contains msg if {
	some container in checked_containers
	not allowed(container.image)
	msg := sprintf("container %q uses image %q, which is not from an allowed registry (%s)", [
		container.name, container.image, concat(", ", registries),
	])
}
