package securekube.admission.resource_limits_required_test

import data.securekube.admission.resource_limits_required

limited := {"limits": {"cpu": "500m", "memory": "128Mi"}}

pod(containers) := {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team-a"}, "spec": {"containers": containers}}

create(object) := {"request": {
	"kind": {"group": "", "version": "v1", "kind": "Pod"},
	"resource": {"group": "", "version": "v1", "resource": "pods"},
	"operation": "CREATE",
	"object": object,
	"userInfo": {"username": "ada"},
}}

denials(request) := result if {
	result := resource_limits_required.deny with input as request
}

test_limited_containers_are_allowed if {
	count(denials(create(pod([{"name": "web", "image": "localhost/web:1", "resources": limited}])))) == 0
}

test_missing_limits_are_denied if {
	denials(create(pod([{"name": "web", "image": "localhost/web:1"}]))) == {
		`container "web" has no cpu limit (resources.limits.cpu)`,
		`container "web" has no memory limit (resources.limits.memory)`,
	}
}

test_requests_are_not_limits if {
	resources := {"requests": {"cpu": "100m", "memory": "64Mi"}, "limits": {"cpu": "1"}}
	denials(create(pod([{"name": "web", "image": "localhost/web:1", "resources": resources}]))) == {
		`container "web" has no memory limit (resources.limits.memory)`,
	}
}

test_init_containers_need_limits_too if {
	object := json.patch(pod([{"name": "web", "image": "x:1", "resources": limited}]), [
		{"op": "add", "path": "/spec/initContainers", "value": [{"name": "migrate", "image": "x:1"}]},
	])
	count(denials(create(object))) == 2
}

test_parameters_choose_the_resources if {
	request := object.union(create(pod([{"name": "web", "image": "x:1", "resources": {"limits": {"memory": "1Gi"}}}])), {"parameters": {"resources": ["memory"]}})
	count(denials(request)) == 0
}

test_updates_and_other_kinds_are_not_judged if {
	update := json.patch(create(pod([{"name": "web", "image": "x:1"}])), [{"op": "replace", "path": "/request/operation", "value": "UPDATE"}])
	count(denials(update)) == 0
	configmap := json.patch(create({"kind": "ConfigMap"}), [{"op": "replace", "path": "/request/kind/kind", "value": "ConfigMap"}])
	count(denials(configmap)) == 0
}
