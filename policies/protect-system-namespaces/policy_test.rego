package securekube.authz.protect_system_namespaces_test

import data.securekube.authz.protect_system_namespaces

# As in a real SubjectAccessReview, an empty name is left out.
review(verb, name) := request if {
	fields := {"verb": verb, "version": "v1", "resource": "namespaces", "name": name}
	request := {
		"apiVersion": "authorization.k8s.io/v1",
		"kind": "SubjectAccessReview",
		"spec": {
			"user": "admin",
			"groups": ["system:masters"],
			"resourceAttributes": {key: value | some key, value in fields; value != ""},
		},
	}
}

denials(request) := result if {
	result := protect_system_namespaces.deny with input as request
}

test_deleting_system_namespaces_is_denied if {
	every name in ["default", "kube-system", "kube-public", "kube-node-lease", "audit-system"] {
		denials(review("delete", name)) == {sprintf("namespace %s may not be deleted", [name])}
	}
}

test_deleting_every_namespace_is_denied if {
	denials(review("deletecollection", "")) == {"deleting every namespace would delete the protected ones"}
}

test_deleting_other_namespaces_is_left_to_rbac if {
	count(denials(review("delete", "team-a"))) == 0
}

test_reading_and_updating_system_namespaces_is_left_to_rbac if {
	every verb in ["get", "list", "update", "patch"] {
		count(denials(review(verb, "kube-system"))) == 0
	}
}

test_finalizing_a_system_namespace_is_left_to_rbac if {
	request := json.patch(review("update", "kube-system"), [{"op": "add", "path": "/spec/resourceAttributes/subresource", "value": "finalize"}])
	count(denials(request)) == 0
}
