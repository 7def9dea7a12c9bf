package securekube.admission.protect_audit_namespace_test

import data.securekube.admission.protect_audit_namespace

admin := {"username": "admin", "groups": ["securekube:cluster-admins", "system:authenticated"]}

breakglass := {"username": "breakglass", "groups": ["system:masters", "system:authenticated"]}

review(operation, group, resource, subresource, namespace, user) := {"request": {
	"kind": {"group": group, "version": "v1", "kind": "Whatever"},
	"resource": {"group": group, "version": "v1", "resource": resource},
	"subResource": subresource,
	"name": "detection-sidecar-0",
	"namespace": namespace,
	"operation": operation,
	"userInfo": user,
}}

denials(request) := result if {
	result := protect_audit_namespace.deny with input as request
}

test_the_everyday_administrator_cannot_change_the_namespace if {
	every resource in ["pods", "secrets", "configmaps", "serviceaccounts"] {
		every operation in ["CREATE", "UPDATE", "DELETE"] {
			count(denials(review(operation, "", resource, "", "audit-system", admin))) == 1
		}
	}
}

test_the_message_says_who_may if {
	denials(review("CREATE", "", "pods", "", "audit-system", admin)) == {"namespace audit-system is protected: only system:masters may create pods there"}
}

test_rbac_in_the_namespace_is_protected if {
	every resource in ["roles", "rolebindings"] {
		count(denials(review("CREATE", "rbac.authorization.k8s.io", resource, "", "audit-system", admin))) == 1
	}
}

test_evicting_or_debugging_the_sidecar_is_denied if {
	denials(review("CREATE", "", "pods", "eviction", "audit-system", admin)) == {"namespace audit-system is protected: only system:masters may create pods/eviction there"}
	count(denials(review("UPDATE", "", "pods", "ephemeralcontainers", "audit-system", admin))) == 1
}

test_break_glass_may_change_it if {
	count(denials(review("CREATE", "", "pods", "", "audit-system", breakglass))) == 0
	count(denials(review("DELETE", "", "secrets", "", "audit-system", breakglass))) == 0
}

test_a_kubelet_may_finish_deleting_its_pod if {
	kubelet := {"username": "system:node:node-1", "groups": ["system:nodes", "system:authenticated"]}
	count(denials(review("DELETE", "", "pods", "", "audit-system", kubelet))) == 0
	count(denials(review("CREATE", "", "pods", "", "audit-system", kubelet))) == 1
}

test_status_updates_are_not_judged if {
	kubelet := {"username": "system:node:node-1", "groups": ["system:nodes"]}
	count(denials(review("UPDATE", "", "pods", "status", "audit-system", kubelet))) == 0
}

test_other_namespaces_and_resources_are_left_alone if {
	count(denials(review("CREATE", "", "pods", "", "team-a", admin))) == 0
	count(denials(review("CREATE", "", "events", "", "audit-system", admin))) == 0
	count(denials(review("CREATE", "apps", "deployments", "", "audit-system", admin))) == 0
}

test_the_namespace_object_is_protected if {
	update := json.patch(review("UPDATE", "", "namespaces", "", "audit-system", admin), [{"op": "replace", "path": "/request/name", "value": "audit-system"}])
	denials(update) == {"namespace audit-system is protected: only system:masters may update it"}
	other := json.patch(update, [{"op": "replace", "path": "/request/name", "value": "team-a"}])
	count(denials(other)) == 0
}

test_parameters_choose_who_is_exempt if {
	request := object.union(review("CREATE", "", "configmaps", "", "audit-system", admin), {"parameters": {"exempt_groups": ["securekube:cluster-admins"]}})
	count(denials(request)) == 0
	deployer := {"username": "system:serviceaccount:kube-system:deployer", "groups": []}
	with_user := object.union(review("CREATE", "", "pods", "", "audit-system", deployer), {"parameters": {"exempt_users": ["system:serviceaccount:kube-system:deployer"]}})
	count(denials(with_user)) == 0
}

test_a_request_without_a_user_is_denied if {
	request := json.remove(review("CREATE", "", "pods", "", "audit-system", admin), ["request/userInfo"])
	count(denials(request)) == 1
}
