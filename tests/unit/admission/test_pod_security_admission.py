"""Pod Security Admission: namespace labels choose the level; denials, warnings and audit annotations as upstream."""
from __future__ import annotations

from typing import Any

import pytest

from securekube.admission.interfaces import AdmissionError
from securekube.admission.podsecurity import (
    AUDIT_VIOLATIONS_ANNOTATION,
    ENFORCED_POLICY_ANNOTATION,
    ERROR_ANNOTATION,
    EXEMPT_ANNOTATION,
    LevelVersion,
    NamespacePolicy,
    PodSecurityAdmission,
    PodSecurityConfig,
    PodSecurityExemptions,
    policy_for_labels,
)
from securekube.authn.interfaces import UserInfo
from tests.unit.admission.admission_requests import namespace, pod, pod_request, request

RESTRICTED = {"pod-security.kubernetes.io/enforce": "restricted"}
NGINX = pod("nginx", containers=[{"name": "nginx", "image": "nginx:1.27"}])
RESTRICTED_DETAIL = (
    'allowPrivilegeEscalation != false (container "nginx" must set securityContext.allowPrivilegeEscalation=false), '
    'unrestricted capabilities (container "nginx" must set securityContext.capabilities.drop=["ALL"]), '
    'runAsNonRoot != true (pod or container "nginx" must set securityContext.runAsNonRoot=true), '
    'seccompProfile (pod or container "nginx" must set securityContext.seccompProfile.type to "RuntimeDefault" or '
    '"Localhost")')


def hardened(name: str = "nginx") -> dict[str, Any]:
    return pod(name, securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
               containers=[{"name": name, "image": "nginx:1.27", "securityContext": {
                   "allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]}}}])


def test_enforce_restricted_denies_with_upstreams_message() -> None:
    with pytest.raises(AdmissionError) as denied:
        PodSecurityAdmission().validate(pod_request(NGINX, namespace_labels=RESTRICTED))
    error = denied.value
    assert (error.code, error.reason) == (403, "Forbidden")
    assert error.message == f'pods "nginx" is forbidden: violates PodSecurity "restricted:latest": {RESTRICTED_DETAIL}'
    assert error.status()["details"] == {"name": "nginx", "group": "", "kind": "pods"}
    assert error.audit_annotations[ENFORCED_POLICY_ANNOTATION] == "restricted:latest"
    assert error.warnings == []  # a request already denied gets no warnings


def test_a_hardened_pod_is_allowed_under_restricted() -> None:
    result = PodSecurityAdmission().validate(pod_request(hardened(), namespace_labels=RESTRICTED))
    assert result.warnings == []
    assert result.audit_annotations == {ENFORCED_POLICY_ANNOTATION: "restricted:latest"}


def test_warn_mode_returns_a_warning_and_allows() -> None:
    labels = {"pod-security.kubernetes.io/warn": "restricted", "pod-security.kubernetes.io/warn-version": "v1.33"}
    result = PodSecurityAdmission().validate(pod_request(NGINX, namespace_labels=labels))
    assert result.warnings == [f'would violate PodSecurity "restricted:v1.33": {RESTRICTED_DETAIL}']
    assert result.audit_annotations == {ENFORCED_POLICY_ANNOTATION: "privileged:latest"}


def test_audit_mode_records_the_violations_in_the_audit_event() -> None:
    labels = {"pod-security.kubernetes.io/audit": "baseline"}
    privileged = pod("p", containers=[{"name": "p", "image": "x:1", "securityContext": {"privileged": True}}])
    result = PodSecurityAdmission().validate(pod_request(privileged, namespace_labels=labels))
    assert result.warnings == []
    assert result.audit_annotations[AUDIT_VIOLATIONS_ANNOTATION] == (
        'would violate PodSecurity "baseline:latest": privileged (container "p" must not set '
        'securityContext.privileged=true)')


def test_warn_follows_a_stricter_enforce_level_without_its_own_label() -> None:
    policy, errors = policy_for_labels({"pod-security.kubernetes.io/enforce": "baseline",
                                        "pod-security.kubernetes.io/enforce-version": "v1.30"})
    assert errors == ()
    assert policy.warn == LevelVersion("baseline", 30)
    policy, _ = policy_for_labels({"pod-security.kubernetes.io/enforce": "baseline",
                                   "pod-security.kubernetes.io/warn": "privileged"})
    assert policy.warn.level == "privileged"


def test_an_unparsable_enforce_label_fails_closed_to_restricted() -> None:
    labels = {"pod-security.kubernetes.io/enforce": "strict", "pod-security.kubernetes.io/audit": "loud"}
    policy, errors = policy_for_labels(labels)
    assert policy.enforce.level == "restricted" and policy.audit.level == "privileged"
    with pytest.raises(AdmissionError) as denied:
        PodSecurityAdmission().validate(pod_request(NGINX, namespace_labels=labels))
    assert 'violates PodSecurity "restricted:latest"' in denied.value.message
    assert denied.value.audit_annotations[ERROR_ANNOTATION].startswith(
        'Failed to parse policy: [metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: "strict": '
        "must be one of privileged, baseline, restricted, ")


def test_configured_defaults_apply_to_unlabelled_namespaces() -> None:
    config = PodSecurityConfig(defaults=NamespacePolicy.uniform(LevelVersion("restricted")))
    with pytest.raises(AdmissionError):
        PodSecurityAdmission(config).validate(pod_request(NGINX))
    assert PodSecurityAdmission().validate(pod_request(NGINX)).warnings == []


def test_exemptions_skip_checks_and_say_why() -> None:
    exemptions = PodSecurityExemptions(usernames=frozenset({"ci-bot"}), namespaces=frozenset({"team-a"}),
                                       runtime_classes=frozenset({"kata"}))
    admission = PodSecurityAdmission(PodSecurityConfig(exemptions=exemptions))
    assert admission.validate(pod_request(NGINX, namespace_labels=RESTRICTED)).audit_annotations == {
        EXEMPT_ANNOTATION: "namespace"}
    other = pod("nginx", ns="team-b", containers=NGINX["spec"]["containers"])
    assert admission.validate(pod_request(other, namespace_labels=RESTRICTED,
                                          user=UserInfo("ci-bot"))).audit_annotations == {EXEMPT_ANNOTATION: "user"}
    kata = pod("nginx", ns="team-b", runtimeClassName="kata", containers=NGINX["spec"]["containers"])
    assert admission.validate(pod_request(kata, namespace_labels=RESTRICTED)).audit_annotations == {
        EXEMPT_ANNOTATION: "runtimeClass"}


def test_metadata_only_updates_are_not_checked() -> None:
    relabelled = {**NGINX, "metadata": {**NGINX["metadata"], "labels": {"a": "b"}}}
    result = PodSecurityAdmission().validate(pod_request(relabelled, operation="UPDATE", old=NGINX,
                                                         namespace_labels=RESTRICTED))
    assert result.audit_annotations == {}


def test_an_image_change_is_checked() -> None:
    changed = pod("nginx", containers=[{"name": "nginx", "image": "nginx:1.28"}])
    with pytest.raises(AdmissionError):
        PodSecurityAdmission().validate(pod_request(changed, operation="UPDATE", old=NGINX,
                                                    namespace_labels=RESTRICTED))


def test_an_added_ephemeral_container_is_checked() -> None:
    old = hardened()
    new = {**old, "spec": {**old["spec"], "ephemeralContainers": [{"name": "debugger", "image": "busybox:1"}]}}
    with pytest.raises(AdmissionError) as denied:
        PodSecurityAdmission().validate(pod_request(new, operation="UPDATE", old=old,
                                                    sub_resource="ephemeralcontainers", namespace_labels=RESTRICTED))
    assert 'container "debugger" must set securityContext.allowPrivilegeEscalation=false' in denied.value.message


@pytest.mark.parametrize("sub_resource", ["status", "exec", "attach", "binding", "eviction", "log"])
def test_subresources_that_cannot_change_the_spec_are_ignored(sub_resource: str) -> None:
    result = PodSecurityAdmission().validate(pod_request(NGINX, operation="UPDATE", old=NGINX,
                                                         sub_resource=sub_resource, namespace_labels=RESTRICTED))
    assert result.audit_annotations == {}


def test_deletes_are_not_checked() -> None:
    result = PodSecurityAdmission().validate(pod_request(None, operation="DELETE", old=NGINX,
                                                         namespace_labels=RESTRICTED))
    assert result.audit_annotations == {}


def test_a_pod_in_an_unknown_namespace_is_denied() -> None:
    with pytest.raises(AdmissionError) as denied:
        PodSecurityAdmission().validate(pod_request(NGINX, namespace_object=None))
    assert (denied.value.code, denied.value.message) == (
        500, 'Internal error occurred: failed to lookup namespace "team-a"')


def test_a_fully_privileged_namespace_records_the_enforced_policy() -> None:
    result = PodSecurityAdmission().validate(pod_request(NGINX))
    assert result.audit_annotations == {ENFORCED_POLICY_ANNOTATION: "privileged:latest"}


# ---------------------------------------------------------------------------------- namespaces


def test_a_namespace_with_an_invalid_label_is_refused_with_422() -> None:
    ns = namespace("team-c", {"pod-security.kubernetes.io/enforce": "strict",
                              "pod-security.kubernetes.io/warn-version": "1.30"})
    with pytest.raises(AdmissionError) as refused:
        PodSecurityAdmission().validate(request("namespaces", obj=ns, name="team-c", namespace_name="team-c",
                                                kind="Namespace"))
    error = refused.value
    assert (error.code, error.reason) == (422, "Invalid")
    assert error.message == (
        'Namespace "team-c" is invalid: [metadata.labels[pod-security.kubernetes.io/enforce]: Invalid value: '
        '"strict": must be one of privileged, baseline, restricted, '
        'metadata.labels[pod-security.kubernetes.io/warn-version]: Invalid value: "1.30": must be "latest" or "v1.x"]')


def test_raising_the_enforce_level_warns_about_existing_pods() -> None:
    pods = [NGINX, pod("b-nginx", containers=NGINX["spec"]["containers"]), hardened("ok")]
    admission = PodSecurityAdmission(list_pods=lambda ns: pods if ns == "team-a" else [])
    result = admission.validate(request("namespaces", operation="UPDATE", obj=namespace("team-a", RESTRICTED),
                                        old=namespace("team-a"), name="team-a", namespace_name="team-a",
                                        kind="Namespace"))
    assert result.warnings == [
        'existing pods in namespace "team-a" violate the new PodSecurity enforce level "restricted:latest"',
        "b-nginx (and 1 other pod): allowPrivilegeEscalation != false, unrestricted capabilities, "
        "runAsNonRoot != true, seccompProfile",
    ]


def test_relaxing_the_enforce_level_checks_nothing() -> None:
    def fail(namespace_name: str) -> list[dict[str, Any]]:
        raise AssertionError("no pods should be listed")

    result = PodSecurityAdmission(list_pods=fail).validate(
        request("namespaces", operation="UPDATE", obj=namespace("team-a"), old=namespace("team-a", RESTRICTED),
                name="team-a", namespace_name="team-a", kind="Namespace"))
    assert result.warnings == []


def test_pod_template_owners_get_warnings_but_are_never_denied() -> None:
    deployment = {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "team-a"},
                  "spec": {"template": {"metadata": {}, "spec": NGINX["spec"]}}}
    result = PodSecurityAdmission().validate(request(
        "deployments", group="apps", kind="Deployment", obj=deployment, name="web", namespace_name="team-a",
        namespace_object=namespace("team-a", RESTRICTED)))
    assert result.warnings == [f'would violate PodSecurity "restricted:latest": {RESTRICTED_DETAIL}']
    assert ENFORCED_POLICY_ANNOTATION not in result.audit_annotations


def test_level_version_parsing() -> None:
    assert LevelVersion.parse("baseline:v1.30") == LevelVersion("baseline", 30)
    assert str(LevelVersion.parse("restricted")) == "restricted:latest"
    with pytest.raises(ValueError, match="must be one of privileged, baseline, restricted"):
        LevelVersion.parse("strict")
    with pytest.raises(ValueError, match='must be "latest" or "v1.x"'):
        LevelVersion.parse("baseline:1.30")
