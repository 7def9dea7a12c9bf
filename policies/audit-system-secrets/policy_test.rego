package securekube.authz.audit_system_secrets_test

import data.securekube.authz.audit_system_secrets

sidecar := "system:serviceaccount:audit-system:detection-sidecar"

read_denial := "only system:serviceaccount:audit-system:detection-sidecar may read secrets in namespace audit-system"

review(user, groups, attributes) := {
	"apiVersion": "authorization.k8s.io/v1",
	"kind": "SubjectAccessReview",
	"spec": {"user": user, "groups": groups, "resourceAttributes": attributes},
}

secrets(verb, namespace) := {"verb": verb, "version": "v1", "resource": "secrets", "namespace": namespace}

denials(request) := result if {
	result := audit_system_secrets.deny with input as request
}

test_sidecar_reads_secrets_in_audit_system if {
	every verb in ["get", "list", "watch"] {
		count(denials(review(sidecar, ["system:serviceaccounts"], secrets(verb, "audit-system")))) == 0
	}
}

test_masters_cannot_read_secrets_in_audit_system if {
	every verb in ["get", "list", "watch"] {
		denials(review("admin", ["system:masters"], secrets(verb, "audit-system"))) == {read_denial}
	}
}

test_other_serviceaccount_of_audit_system_cannot_read if {
	user := "system:serviceaccount:audit-system:default"
	denials(review(user, [], secrets("get", "audit-system"))) == {read_denial}
}

test_list_across_all_namespaces_is_denied if {
	denials(review("admin", ["system:masters"], {"verb": "list", "resource": "secrets"})) == {read_denial}
}

test_request_without_user_is_denied if {
	request := {"spec": {"resourceAttributes": secrets("get", "audit-system")}}
	denials(request) == {read_denial}
}

test_secrets_in_other_namespaces_are_left_to_rbac if {
	count(denials(review("admin", ["system:masters"], secrets("get", "default")))) == 0
}

test_writes_are_left_to_rbac if {
	count(denials(review("admin", ["system:masters"], secrets("create", "audit-system")))) == 0
}

test_secrets_of_another_api_group_are_left_to_rbac if {
	attributes := object.union(secrets("get", "audit-system"), {"group": "example.com"})
	count(denials(review("admin", [], attributes))) == 0
}

test_impersonating_the_sidecar_serviceaccount_is_denied if {
	attributes := {"verb": "impersonate", "resource": "serviceaccounts", "namespace": "audit-system", "name": "detection-sidecar"}
	denials(review("admin", ["system:masters"], attributes)) == {"nobody may impersonate system:serviceaccount:audit-system:detection-sidecar"}
}

test_impersonating_the_sidecar_as_a_user_is_denied if {
	attributes := {"verb": "impersonate", "resource": "users", "name": sidecar}
	count(denials(review("admin", ["system:masters"], attributes))) == 1
}

test_impersonating_other_serviceaccounts_is_left_to_rbac if {
	attributes := {"verb": "impersonate", "resource": "serviceaccounts", "namespace": "audit-system", "name": "default"}
	count(denials(review("admin", ["system:masters"], attributes))) == 0
}

test_minting_a_token_for_the_sidecar_is_denied if {
	attributes := {
		"verb": "create", "resource": "serviceaccounts", "subresource": "token",
		"namespace": "audit-system", "name": "detection-sidecar",
	}
	denials(review("admin", ["system:masters"], attributes)) == {"nobody may request a token for system:serviceaccount:audit-system:detection-sidecar"}
}

test_non_resource_requests_are_left_to_rbac if {
	request := {"spec": {"user": "admin", "nonResourceAttributes": {"path": "/healthz", "verb": "get"}}}
	count(denials(request)) == 0
}
