# Pod images name a version: no `:latest` tag, and no image without a tag.
#
# A tagless image means `:latest`, and `:latest` means "whatever the registry holds when the
# node pulls": two replicas can run different code, a rollback does not roll anything back, and
# nobody can tell from the pod which build ran. A fixed tag (`app:1.4.2`) or a digest
# (`app@sha256:...`, which also pins the content) is required.
#
# The tag is what follows the last ":" after the last "/", so a registry port
# (`localhost:5000/app`) is not mistaken for a tag.
#
# Checked: every container of a created pod; on an update, the containers whose image changes
# and the ephemeral containers it adds (kubectl debug).
package securekube.admission.no_latest_tag

# Each rule body starts with equality tests on the request that OPA's rule index can use, so a
# request a rule cannot apply to costs it next to nothing; refs go straight to input.

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

pinned_by_digest(image) if contains(image, "@")

# A tag is a ":" after the last "/" (so "localhost:5000/app" has none); a regex finds it
# without splitting the image. A ":latest" at the end is always after the last "/".
tagged(image) if regex.match(`:[^/]*$`, image)

deny contains msg if {
	some container in checked_containers
	not pinned_by_digest(container.image)
	endswith(container.image, ":latest")
	msg := sprintf("container %q uses image %q: the :latest tag is not allowed, use a version tag or a digest", [
		container.name, container.image,
	])
}

deny contains msg if {
	some container in checked_containers
	not pinned_by_digest(container.image)
	not tagged(container.image)
	msg := sprintf("container %q uses image %q without a tag (that means :latest): use a version tag or a digest", [
		container.name, container.image,
	])
}
