package securekube.admission.allowed_image_registries_test

import data.securekube.admission.allowed_image_registries

pod(containers) := {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team-a"}, "spec": {"containers": containers}}

review(operation, object, old) := {"request": {
	"kind": {"group": "", "version": "v1", "kind": "Pod"},
	"resource": {"group": "", "version": "v1", "resource": "pods"},
	"operation": operation,
	"object": object,
	"oldObject": old,
	"userInfo": {"username": "ada"},
}}

create(object) := review("CREATE", object, null)

denials(request) := result if {
	result := allowed_image_registries.deny with input as request
}

test_default_registries_are_allowed if {
	containers := [{"name": "a", "image": "localhost/app:1.0"}, {"name": "b", "image": "registry.k8s.io/pause:3.10"}]
	count(denials(create(pod(containers)))) == 0
}

test_other_registry_is_denied if {
	denials(create(pod([{"name": "web", "image": "docker.io/library/nginx:1.27"}]))) == {
		`container "web" uses image "docker.io/library/nginx:1.27", which is not from an allowed registry (localhost/, registry.k8s.io/)`,
	}
}

test_a_lookalike_host_is_denied if {
	count(denials(create(pod([{"name": "web", "image": "registry.k8s.io.attacker.example/pause:1"}])))) == 1
}

test_short_names_are_denied if {
	# "nginx" means docker.io/library/nginx to the runtime: not an allowed registry.
	count(denials(create(pod([{"name": "web", "image": "nginx:1.27"}])))) == 1
}

test_init_and_ephemeral_containers_are_checked if {
	object := json.patch(pod([{"name": "a", "image": "localhost/app:1"}]), [
		{"op": "add", "path": "/spec/initContainers", "value": [{"name": "init", "image": "quay.io/x/init:1"}]},
		{"op": "add", "path": "/spec/ephemeralContainers", "value": [{"name": "debug", "image": "busybox:1"}]},
	])
	count(denials(create(object))) == 2
}

test_parameters_replace_the_default_list if {
	request := object.union(create(pod([{"name": "web", "image": "docker.io/library/nginx:1.27"}])), {"parameters": {"registries": ["docker.io/library/"]}})
	count(denials(request)) == 0
	count(denials(object.union(create(pod([{"name": "web", "image": "localhost/app:1"}])), {"parameters": {"registries": ["docker.io/library/"]}}))) == 1
}

test_an_update_that_keeps_the_images_is_allowed if {
	old := pod([{"name": "web", "image": "quay.io/legacy/app:1"}])
	new := json.patch(old, [{"op": "add", "path": "/metadata/labels", "value": {"tier": "web"}}])
	count(denials(review("UPDATE", new, old))) == 0
}

test_an_update_to_a_foreign_image_is_denied if {
	old := pod([{"name": "web", "image": "localhost/app:1"}])
	new := pod([{"name": "web", "image": "quay.io/evil/app:1"}])
	count(denials(review("UPDATE", new, old))) == 1
}

test_kubectl_debug_with_a_foreign_image_is_denied if {
	old := pod([{"name": "web", "image": "localhost/app:1"}])
	new := json.patch(old, [{"op": "add", "path": "/spec/ephemeralContainers", "value": [{"name": "debugger", "image": "busybox:1.36"}]}])
	request := json.patch(review("UPDATE", new, old), [{"op": "add", "path": "/request/subResource", "value": "ephemeralcontainers"}])
	denials(request) == {`container "debugger" uses image "busybox:1.36", which is not from an allowed registry (localhost/, registry.k8s.io/)`}
}

test_other_kinds_and_status_updates_are_not_judged if {
	configmap := review("CREATE", {"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "x"}}, null)
	configmap_request := json.patch(configmap, [{"op": "replace", "path": "/request/kind/kind", "value": "ConfigMap"}])
	count(denials(configmap_request)) == 0
	old := pod([{"name": "web", "image": "quay.io/legacy/app:1"}])
	status := json.patch(review("UPDATE", old, old), [{"op": "add", "path": "/request/subResource", "value": "status"}])
	count(denials(status)) == 0
}

test_deletes_are_not_judged if {
	count(denials(review("DELETE", null, pod([{"name": "web", "image": "quay.io/x/y:1"}])))) == 0
}
