"""The Pod Security Standards checks: upstream's reasons and details, per level and policy version."""
from __future__ import annotations

from typing import Any

import pytest

from securekube.admission.podsecurity_checks import LATEST_MINOR, CheckResult, evaluate_pod

LATEST = LATEST_MINOR


def failures(level: str, spec: dict[str, Any], metadata: dict[str, Any] | None = None,
             minor: int = LATEST) -> list[tuple[str, str]]:
    return [(f.reason, f.detail) for f in evaluate_pod(level, minor, metadata or {}, spec)]


def restricted_ok(**container: Any) -> dict[str, Any]:
    """A container that passes restricted, with `container` merged in."""
    base = {"name": "c", "securityContext": {"allowPrivilegeEscalation": False, "runAsNonRoot": True,
                                             "capabilities": {"drop": ["ALL"]},
                                             "seccompProfile": {"type": "RuntimeDefault"}}}
    return {**base, **container}


# Expected values are upstream's own test expectations (k8s.io/pod-security-admission/policy).
BASELINE_CASES = [
    ({"hostNetwork": True, "hostPID": True, "hostIPC": True, "containers": [{"name": "a"}]},
     ("host namespaces", "hostNetwork=true, hostPID=true, hostIPC=true")),
    ({"containers": [{"name": "a", "securityContext": {"privileged": True}}, {"name": "b"}]},
     ("privileged", 'container "a" must not set securityContext.privileged=true')),
    ({"containers": [{"name": "a", "securityContext": {"capabilities": {"add": ["NET_ADMIN", "CHOWN"]}}},
                     {"name": "b", "securityContext": {"capabilities": {"add": ["SYS_ADMIN"]}}}]},
     ("non-default capabilities",
      'containers "a", "b" must not include "NET_ADMIN", "SYS_ADMIN" in securityContext.capabilities.add')),
    ({"containers": [{"name": "a"}],
      "volumes": [{"name": "x", "hostPath": {"path": "/"}}, {"name": "y", "emptyDir": {}}]},
     ("hostPath volumes", 'volume "x"')),
    ({"containers": [{"name": "a", "ports": [{"containerPort": 80, "hostPort": 8080}, {"hostPort": 80}]},
                     {"name": "b", "ports": [{"hostPort": 9000}]}]},
     ("hostPort", 'containers "a", "b" use hostPorts 80, 8080, 9000')),
    ({"containers": [{"name": "a", "securityContext": {"procMount": "Unmasked"}}]},
     ("procMount", 'container "a" must not set securityContext.procMount to "Unmasked"')),
    ({"securityContext": {"seLinuxOptions": {"type": "spc_t", "user": "root"}},
      "containers": [{"name": "a", "securityContext": {"seLinuxOptions": {"role": "sysadm_r"}}}]},
     ("seLinuxOptions",
      'pod and container "a" set forbidden securityContext.seLinuxOptions: type "spc_t"; user may not be set; '
      "role may not be set")),
    ({"securityContext": {"seccompProfile": {"type": "Unconfined"}}, "containers": [{"name": "a"}]},
     ("seccompProfile", 'pod must not set securityContext.seccompProfile.type to "Unconfined"')),
    ({"securityContext": {"sysctls": [{"name": "kernel.shm_rmid_forced"}, {"name": "kernel.msgmax"},
                                      {"name": "net.core.somaxconn"}]}, "containers": [{"name": "a"}]},
     ("forbidden sysctls", "kernel.msgmax, net.core.somaxconn")),
    ({"securityContext": {"windowsOptions": {"hostProcess": True}},
      "containers": [{"name": "a", "securityContext": {"windowsOptions": {"hostProcess": True}}}]},
     ("hostProcess", 'pod and container "a" must not set securityContext.windowsOptions.hostProcess=true')),
    ({"securityContext": {"appArmorProfile": {"type": "Unconfined"}}, "containers": [{"name": "a"}]},
     ("forbidden AppArmor profile", 'pod must not set AppArmor profile type to "Unconfined"')),
    ({"containers": [{"name": "a", "livenessProbe": {"httpGet": {"host": "10.0.0.1", "port": 80}},
                      "lifecycle": {"preStop": {"tcpSocket": {"host": "metadata", "port": 80}}}}]},
     ("probe or lifecycle host", 'container "a" uses probe or lifecycle hosts "10.0.0.1", "metadata"')),
]


@pytest.mark.parametrize(("spec", "expected"), BASELINE_CASES)
def test_baseline_checks_word_their_failures_as_upstream(spec: dict[str, Any], expected: tuple[str, str]) -> None:
    assert failures("baseline", spec) == [expected]


def test_a_minimal_pod_passes_baseline_and_fails_restricted_on_four_checks() -> None:
    spec = {"containers": [{"name": "nginx", "image": "nginx"}]}
    assert failures("baseline", spec) == []
    assert failures("restricted", spec) == [
        ("allowPrivilegeEscalation != false",
         'container "nginx" must set securityContext.allowPrivilegeEscalation=false'),
        ("unrestricted capabilities", 'container "nginx" must set securityContext.capabilities.drop=["ALL"]'),
        ("runAsNonRoot != true", 'pod or container "nginx" must set securityContext.runAsNonRoot=true'),
        ("seccompProfile", 'pod or container "nginx" must set securityContext.seccompProfile.type to '
                           '"RuntimeDefault" or "Localhost"'),
    ]


def test_privileged_level_checks_nothing() -> None:
    assert failures("privileged", {"hostNetwork": True, "containers": [{"name": "a"}]}) == []


def test_restricted_capabilities_name_missing_drops_and_extra_adds() -> None:
    containers = [
        {"name": "a", "securityContext": {"capabilities": {"add": ["FOO", "BAR"]}}},
        {"name": "b", "securityContext": {"capabilities": {"add": ["BAR", "BAZ"]}}},
        {"name": "c", "securityContext": {"capabilities": {"add": ["NET_BIND_SERVICE", "CHOWN"],
                                                           "drop": ["ALL", "FOO"]}}},
    ]
    found = dict(failures("restricted", {"containers": containers}))
    assert found["unrestricted capabilities"] == (
        'containers "a", "b" must set securityContext.capabilities.drop=["ALL"]; containers "a", "b", "c" must not '
        'include "BAR", "BAZ", "CHOWN", "FOO" in securityContext.capabilities.add')
    # Restricted replaces the baseline capabilities check instead of repeating it.
    assert "non-default capabilities" not in found


def test_restricted_volumes_list_types_sorted_and_unknown_sources() -> None:
    volumes = [{"name": "ok", "configMap": {"name": "x"}}, {"name": "img", "image": {"reference": "x"}},
               {"name": "b1", "hostPath": {"path": "/"}}, {"name": "b2", "nfs": {"server": "s"}},
               {"name": "c1"}]
    found = dict(failures("restricted", {"containers": [restricted_ok()], "volumes": volumes}))
    assert found == {"restricted volume types": 'volumes "b1", "b2", "c1" use restricted volume types "hostPath", '
                                                '"nfs", "unknown"'}


@pytest.mark.parametrize(("spec", "detail"), [
    ({"securityContext": {"runAsNonRoot": False}, "containers": [{"name": "a"}]},
     "pod must not set securityContext.runAsNonRoot=false"),
    ({"securityContext": {"runAsNonRoot": True},
      "containers": [{"name": "a"}, {"name": "c", "securityContext": {"runAsNonRoot": False}},
                     {"name": "d", "securityContext": {"runAsNonRoot": False}}]},
     'containers "c", "d" must not set securityContext.runAsNonRoot=false'),
    ({"containers": [{"name": "a"}, {"name": "b", "securityContext": {}},
                     {"name": "d", "securityContext": {"runAsNonRoot": True}}]},
     'pod or containers "a", "b" must set securityContext.runAsNonRoot=true'),
])
def test_run_as_non_root_details(spec: dict[str, Any], detail: str) -> None:
    for container in spec["containers"]:
        context = container.setdefault("securityContext", {})
        context.update({"allowPrivilegeEscalation": False, "capabilities": {"drop": ["ALL"]},
                        "seccompProfile": {"type": "RuntimeDefault"}})
    assert failures("restricted", spec) == [("runAsNonRoot != true", detail)]


def test_run_as_user_zero_is_named_for_pod_and_containers() -> None:
    spec = {"securityContext": {"runAsUser": 0}, "containers": [restricted_ok(name="a"),
                                                                restricted_ok(name="b", securityContext={
                                                                    **restricted_ok()["securityContext"],
                                                                    "runAsUser": 0})]}
    assert ("runAsUser=0", 'pod and container "b" must not set runAsUser=0') in failures("restricted", spec)


def test_run_as_user_false_is_not_zero() -> None:
    spec = {"securityContext": {"runAsUser": False}, "containers": [restricted_ok()]}
    assert failures("restricted", spec) == []


def test_seccomp_restricted_unconfined_container_is_reported_once() -> None:
    unconfined = {**restricted_ok()["securityContext"], "seccompProfile": {"type": "Unconfined"}}
    spec = {"securityContext": {"seccompProfile": {"type": "RuntimeDefault"}},
            "containers": [restricted_ok(name="c", securityContext=unconfined),
                           restricted_ok(name="d", securityContext=unconfined)]}
    assert failures("restricted", spec) == [
        ("seccompProfile", 'containers "c", "d" must not set securityContext.seccompProfile.type to "Unconfined"')]


def test_results_come_in_upstream_order_baseline_first() -> None:
    spec = {"hostNetwork": True, "containers": [{"name": "a", "securityContext": {"privileged": True}}]}
    reasons = [reason for reason, _ in failures("restricted", spec)]
    assert reasons == ["host namespaces", "privileged", "allowPrivilegeEscalation != false",
                       "unrestricted capabilities", "runAsNonRoot != true", "seccompProfile"]


def test_ephemeral_and_init_containers_are_checked() -> None:
    spec = {"initContainers": [{"name": "i", "securityContext": {"privileged": True}}],
            "containers": [{"name": "a"}],
            "ephemeralContainers": [{"name": "e", "securityContext": {"privileged": True}}]}
    assert failures("baseline", spec) == [("privileged", 'containers "i", "e" must not set '
                                                         "securityContext.privileged=true")]


# ------------------------------------------------------------------------------------ versions


def test_sysctl_allow_list_grows_with_the_version() -> None:
    spec = {"securityContext": {"sysctls": [{"name": "net.ipv4.tcp_keepalive_time"}]}, "containers": [{"name": "a"}]}
    assert failures("baseline", spec, minor=28) == [("forbidden sysctls", "net.ipv4.tcp_keepalive_time")]
    assert failures("baseline", spec, minor=29) == []
    assert failures("baseline", spec) == []


def test_windows_pods_are_exempt_from_linux_only_checks_from_1_25() -> None:
    spec = {"os": {"name": "windows"}, "securityContext": {"runAsNonRoot": True}, "containers": [{"name": "a"}]}
    assert failures("restricted", spec) == []
    assert [r for r, _ in failures("restricted", spec, minor=24)] == [
        "allowPrivilegeEscalation != false", "unrestricted capabilities", "seccompProfile"]


def test_checks_apply_only_from_the_version_that_introduced_them() -> None:
    spec = {"securityContext": {"runAsNonRoot": True}, "containers": [{"name": "a"}]}
    # capabilities (1.22), runAsUser (1.23), seccomp fields (1.19), allowPrivilegeEscalation (1.8)
    assert [r for r, _ in failures("restricted", spec, minor=7)] == []
    assert [r for r, _ in failures("restricted", spec, minor=21)] == [
        "allowPrivilegeEscalation != false", "seccompProfile"]
    probe = {"containers": [{"name": "a", "readinessProbe": {"tcpSocket": {"host": "x", "port": 1}}}]}
    assert failures("baseline", probe, minor=33) == []
    assert failures("baseline", probe, minor=34) != []


def test_before_1_19_seccomp_is_judged_on_annotations() -> None:
    metadata = {"annotations": {"seccomp.security.alpha.kubernetes.io/pod": "unconfined"}}
    spec = {"containers": [{"name": "a"}]}
    assert failures("baseline", spec, metadata, minor=18) == [
        ("seccompProfile", 'forbidden annotation seccomp.security.alpha.kubernetes.io/pod="unconfined"')]


def test_user_namespaced_pods_may_unmask_proc_at_baseline_from_1_35_only() -> None:
    spec = {"hostUsers": False, "containers": [{"name": "a", "securityContext": {"procMount": "Unmasked"}}]}
    assert failures("baseline", spec) == []
    assert failures("baseline", spec, minor=34) != []
    restricted = {**spec, "containers": [restricted_ok(securityContext={**restricted_ok()["securityContext"],
                                                                         "procMount": "Unmasked"})]}
    assert failures("restricted", restricted) == [
        ("procMount", 'container "c" must not set securityContext.procMount to "Unmasked"')]


def test_selinux_container_engine_type_is_allowed_from_1_31() -> None:
    spec = {"securityContext": {"seLinuxOptions": {"type": "container_engine_t"}}, "containers": [{"name": "a"}]}
    assert failures("baseline", spec, minor=30) != []
    assert failures("baseline", spec, minor=31) == []


def test_an_unknown_level_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown Pod Security level"):
        evaluate_pod("strict", LATEST, {}, {})


def test_malformed_fields_never_crash_a_check() -> None:
    spec = {"containers": [None, "x", {"name": "a", "securityContext": None, "ports": [None]}],
            "volumes": "nope", "securityContext": "nope"}
    result = evaluate_pod("restricted", LATEST, {"annotations": None}, spec)
    assert all(isinstance(r, CheckResult) for r in result)
