package securekube.admission.seccomp_not_unconfined_test

import data.securekube.admission.seccomp_not_unconfined

pod(pod_context, containers) := {
	"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team-a"},
	"spec": {"securityContext": pod_context, "containers": containers},
}

review(operation, object, old) := {"request": {
	"kind": {"group": "", "version": "v1", "kind": "Pod"},
	"resource": {"group": "", "version": "v1", "resource": "pods"},
	"operation": operation,
	"object": object,
	"oldObject": old,
	"userInfo": {"username": "ada"},
}}

denials(request) := result if {
	result := seccomp_not_unconfined.deny with input as request
}

unconfined := {"seccompProfile": {"type": "Unconfined"}}

test_runtime_default_and_unset_are_allowed if {
	count(denials(review("CREATE", pod({"seccompProfile": {"type": "RuntimeDefault"}}, [{"name": "web"}]), null))) == 0
	count(denials(review("CREATE", pod({}, [{"name": "web", "securityContext": {"seccompProfile": {"type": "Localhost", "localhostProfile": "p.json"}}}]), null))) == 0
}

test_an_unconfined_pod_is_denied if {
	denials(review("CREATE", pod(unconfined, [{"name": "web"}]), null)) == {"the pod must not set securityContext.seccompProfile.type to Unconfined"}
}

test_an_unconfined_container_is_denied if {
	denials(review("CREATE", pod({}, [{"name": "web", "securityContext": unconfined}]), null)) == {`container "web" must not set securityContext.seccompProfile.type to Unconfined`}
}

test_legacy_annotations_are_denied if {
	object := json.patch(pod({}, [{"name": "web"}]), [{"op": "add", "path": "/metadata/annotations", "value": {
		"seccomp.security.alpha.kubernetes.io/pod": "unconfined",
		"container.seccomp.security.alpha.kubernetes.io/web": "Unconfined",
		"example.com/other": "unconfined",
	}}])
	count(denials(review("CREATE", object, null))) == 2
}

test_an_unconfined_debug_container_is_denied if {
	old := pod({}, [{"name": "web"}])
	new := json.patch(old, [{"op": "add", "path": "/spec/ephemeralContainers", "value": [{"name": "debugger", "securityContext": unconfined}]}])
	count(denials(review("UPDATE", new, old))) == 1
}

test_existing_containers_are_not_judged_again if {
	old := pod(unconfined, [{"name": "web", "securityContext": unconfined}])
	new := json.patch(old, [{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}])
	count(denials(review("UPDATE", new, old))) == 0
}
