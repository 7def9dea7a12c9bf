package securekube.admission.no_latest_tag_test

import data.securekube.admission.no_latest_tag

pod(containers) := {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team-a"}, "spec": {"containers": containers}}

review(operation, object, old) := {"request": {
	"kind": {"group": "", "version": "v1", "kind": "Pod"},
	"resource": {"group": "", "version": "v1", "resource": "pods"},
	"operation": operation,
	"object": object,
	"oldObject": old,
	"userInfo": {"username": "ada"},
}}

denials_for(image) := result if {
	result := no_latest_tag.deny with input as review("CREATE", pod([{"name": "web", "image": image}]), null)
}

test_version_tags_are_allowed if {
	every image in ["localhost/app:1.4.2", "registry.k8s.io/pause:3.10", "localhost:5000/team/app:v2"] {
		count(denials_for(image)) == 0
	}
}

test_digests_are_allowed if {
	every image in ["localhost/app@sha256:0123456789abcdef", "localhost/app:latest@sha256:0123456789abcdef"] {
		count(denials_for(image)) == 0
	}
}

test_latest_is_denied if {
	denials_for("localhost/app:latest") == {`container "web" uses image "localhost/app:latest": the :latest tag is not allowed, use a version tag or a digest`}
}

test_a_missing_tag_is_denied if {
	denials_for("localhost/app") == {`container "web" uses image "localhost/app" without a tag (that means :latest): use a version tag or a digest`}
}

test_a_registry_port_is_not_a_tag if {
	count(denials_for("localhost:5000/app")) == 1
}

test_every_container_kind_is_checked if {
	object := json.patch(pod([{"name": "a", "image": "localhost/app"}]), [
		{"op": "add", "path": "/spec/initContainers", "value": [{"name": "init", "image": "localhost/init:latest"}]},
		{"op": "add", "path": "/spec/ephemeralContainers", "value": [{"name": "debug", "image": "busybox"}]},
	])
	count(no_latest_tag.deny) == 3 with input as review("CREATE", object, null)
}

test_updates_judge_only_changed_images if {
	old := pod([{"name": "web", "image": "localhost/app:latest"}])
	relabelled := json.patch(old, [{"op": "add", "path": "/metadata/labels", "value": {"a": "b"}}])
	count(no_latest_tag.deny) == 0 with input as review("UPDATE", relabelled, old)
	repointed := pod([{"name": "web", "image": "localhost/other:latest"}])
	count(no_latest_tag.deny) == 1 with input as review("UPDATE", repointed, old)
}

test_other_kinds_are_not_judged if {
	request := json.patch(review("CREATE", {"kind": "ConfigMap"}, null), [{"op": "replace", "path": "/request/kind/kind", "value": "ConfigMap"}])
	count(no_latest_tag.deny) == 0 with input as request
}

test_only_the_last_colon_after_the_last_slash_is_the_tag if {
	denials_for("localhost/app:1:latest") == {`container "web" uses image "localhost/app:1:latest": the :latest tag is not allowed, use a version tag or a digest`}
	denials_for("localhost:5000/team:x/app") == {`container "web" uses image "localhost:5000/team:x/app" without a tag (that means :latest): use a version tag or a digest`}
	count(denials_for("localhost/app:latest-1")) == 0
	count(denials_for("localhost/app:")) == 0
}
