package securekube.admission.no_host_access_test

import data.securekube.admission.no_host_access

pod(spec) := {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team-a"}, "spec": object.union({"containers": [{"name": "web", "image": "x:1"}]}, spec)}

create(object) := {"request": {
	"kind": {"group": "", "version": "v1", "kind": "Pod"},
	"resource": {"group": "", "version": "v1", "resource": "pods"},
	"operation": "CREATE",
	"object": object,
	"userInfo": {"username": "ada"},
}}

denials(request) := result if {
	result := no_host_access.deny with input as request
}

test_a_plain_pod_is_allowed if {
	count(denials(create(pod({"volumes": [{"name": "cache", "emptyDir": {}}]})))) == 0
}

test_host_namespaces_are_denied if {
	denials(create(pod({"hostNetwork": true, "hostPID": true, "hostIPC": true}))) == {
		"hostNetwork is not allowed: the pod would share the node's network namespace",
		"hostPID is not allowed: the pod would share the node's process namespace",
		"hostIPC is not allowed: the pod would share the node's IPC namespace",
	}
}

test_explicit_false_is_allowed if {
	count(denials(create(pod({"hostNetwork": false, "hostPID": false, "hostIPC": false})))) == 0
}

test_host_path_volumes_are_denied if {
	volumes := [{"name": "runtime", "hostPath": {"path": "/run/containerd/containerd.sock", "type": "Socket"}}]
	denials(create(pod({"volumes": volumes}))) == {`volume "runtime" mounts the node's path "/run/containerd/containerd.sock": hostPath volumes are not allowed`}
}

test_updates_and_other_kinds_are_not_judged if {
	update := json.patch(create(pod({"hostNetwork": true})), [{"op": "replace", "path": "/request/operation", "value": "UPDATE"}])
	count(denials(update)) == 0
	configmap := json.patch(create({"kind": "ConfigMap", "spec": {}}), [{"op": "replace", "path": "/request/kind/kind", "value": "ConfigMap"}])
	count(denials(configmap)) == 0
}
