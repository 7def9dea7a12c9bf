package securekube.admission.run_as_non_root_test

import data.securekube.admission.run_as_non_root

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
	result := run_as_non_root.deny with input as request
}

test_pod_level_non_root_covers_every_container if {
	count(denials(review("CREATE", pod({"runAsNonRoot": true, "runAsUser": 1000}, [{"name": "a"}, {"name": "b"}]), null))) == 0
}

test_container_level_non_root_is_enough if {
	count(denials(review("CREATE", pod({}, [{"name": "a", "securityContext": {"runAsNonRoot": true}}]), null))) == 0
}

test_an_unset_setting_is_denied if {
	denials(review("CREATE", pod({}, [{"name": "web"}]), null)) == {
		`container "web" must run as non-root: set securityContext.runAsNonRoot=true on the pod or the container`,
	}
}

test_a_container_can_not_opt_out if {
	containers := [{"name": "web", "securityContext": {"runAsNonRoot": false}}]
	count(denials(review("CREATE", pod({"runAsNonRoot": true}, containers), null))) == 1
}

test_user_zero_is_denied if {
	containers := [{"name": "web", "securityContext": {"runAsUser": 0}}]
	denials(review("CREATE", pod({"runAsNonRoot": true}, containers), null)) == {`container "web" must not run as user 0 (runAsUser: 0)`}
	count(denials(review("CREATE", pod({"runAsNonRoot": true, "runAsUser": 0}, [{"name": "web"}]), null))) == 1
}

test_a_root_debug_container_is_denied if {
	old := pod({"runAsNonRoot": true}, [{"name": "web"}])
	new := json.patch(old, [{"op": "add", "path": "/spec/ephemeralContainers", "value": [{"name": "debugger", "securityContext": {"runAsUser": 0, "runAsNonRoot": false}}]}])
	count(denials(review("UPDATE", new, old))) == 2
}

test_other_updates_are_not_judged if {
	old := pod({}, [{"name": "web"}])
	new := json.patch(old, [{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}])
	count(denials(review("UPDATE", new, old))) == 0
}

test_a_null_container_setting_falls_back_to_the_pod if {
	containers := [{"name": "web", "securityContext": {"runAsNonRoot": null, "runAsUser": null}}]
	count(denials(review("CREATE", pod({"runAsNonRoot": true, "runAsUser": 1000}, containers), null))) == 0
	count(denials(review("CREATE", pod({"runAsNonRoot": true, "runAsUser": 0}, containers), null))) == 1
}
