package securekube.authz.deny_impersonating_masters_test

import data.securekube.authz.deny_impersonating_masters

review(user, groups, attributes) := {
	"apiVersion": "authorization.k8s.io/v1",
	"kind": "SubjectAccessReview",
	"spec": {"user": user, "groups": groups, "resourceAttributes": attributes},
}

impersonate(resource, name) := {"verb": "impersonate", "resource": resource, "name": name}

denials(request) := result if {
	result := deny_impersonating_masters.deny with input as request
}

test_impersonating_system_masters_is_denied if {
	request := review("admin", ["system:masters"], impersonate("groups", "system:masters"))
	denials(request) == {"nobody may impersonate group system:masters"}
}

test_impersonating_cluster_admins_is_denied if {
	request := review("ops", ["ops"], impersonate("groups", "securekube:cluster-admins"))
	denials(request) == {"nobody may impersonate group securekube:cluster-admins"}
}

test_impersonating_every_group_includes_the_administrators if {
	request := review("ops", [], {"verb": "impersonate", "resource": "groups"})
	count(denials(request)) == 2
}

test_impersonating_other_groups_is_left_to_rbac if {
	request := review("admin", ["system:masters"], impersonate("groups", "developers"))
	count(denials(request)) == 0
}

test_impersonating_users_is_left_to_rbac if {
	request := review("admin", ["system:masters"], impersonate("users", "system:masters"))
	count(denials(request)) == 0
}

test_other_verbs_on_groups_are_left_to_rbac if {
	request := review("admin", [], {"verb": "get", "resource": "groups", "name": "system:masters"})
	count(denials(request)) == 0
}

test_groups_of_another_api_group_are_left_to_rbac if {
	attributes := object.union(impersonate("groups", "system:masters"), {"group": "example.com"})
	count(denials(review("admin", [], attributes))) == 0
}
