package securekube.admission.no_exec_in_protected_namespaces_test

import data.securekube.admission.no_exec_in_protected_namespaces

connect(subresource, namespace) := {"request": {
	"kind": {"group": "", "version": "v1", "kind": "PodExecOptions"},
	"resource": {"group": "", "version": "v1", "resource": "pods"},
	"subResource": subresource,
	"name": "detector-0",
	"namespace": namespace,
	"operation": "CONNECT",
	"object": {"apiVersion": "v1", "kind": "PodExecOptions", "command": ["sh"], "stdin": true, "tty": true},
	"userInfo": {"username": "admin", "groups": ["system:masters", "system:authenticated"]},
}}

denials(request) := result if {
	result := no_exec_in_protected_namespaces.deny with input as request
}

test_exec_into_protected_namespaces_is_denied_even_for_masters if {
	denials(connect("exec", "kube-system")) == {"exec into pods of namespace kube-system is not allowed"}
	denials(connect("exec", "audit-system")) == {"exec into pods of namespace audit-system is not allowed"}
}

test_attach_is_denied if {
	denials(connect("attach", "audit-system")) == {"attach into pods of namespace audit-system is not allowed"}
}

test_exec_elsewhere_is_left_to_rbac if {
	count(denials(connect("exec", "team-a"))) == 0
}

test_port_forward_and_logs_are_left_to_rbac if {
	count(denials(connect("portforward", "kube-system"))) == 0
}

test_debug_containers_are_denied if {
	request := {"request": {
		"kind": {"group": "", "version": "v1", "kind": "Pod"},
		"resource": {"group": "", "version": "v1", "resource": "pods"},
		"subResource": "ephemeralcontainers", "namespace": "audit-system", "operation": "UPDATE",
	}}
	denials(request) == {"ephemeral (debug) containers in pods of namespace audit-system are not allowed"}
}

test_parameters_choose_the_namespaces if {
	request := object.union(connect("exec", "payments"), {"parameters": {"namespaces": ["payments"]}})
	count(denials(request)) == 1
	count(denials(object.union(connect("exec", "kube-system"), {"parameters": {"namespaces": ["payments"]}}))) == 0
}

test_other_resources_are_not_judged if {
	request := json.patch(connect("exec", "kube-system"), [{"op": "replace", "path": "/request/resource/resource", "value": "nodes"}])
	count(denials(request)) == 0
}

test_creating_a_pod_in_a_protected_namespace_is_left_to_other_policies if {
	count(no_exec_in_protected_namespaces.deny) == 0 with input as {"request": {
		"kind": {"group": "", "version": "v1", "kind": "Pod"},
		"resource": {"group": "", "version": "v1", "resource": "pods"},
		"namespace": "kube-system", "operation": "CREATE",
		"object": {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web"}},
	}}
}
