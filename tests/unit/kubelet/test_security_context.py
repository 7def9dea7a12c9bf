"""Pod securityContext → CRI runtime.v1 translation, with upstream precedence and messages."""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from securekube.kubelet.apparmor import AppArmorHost
from securekube.kubelet.cri import runtime_v1_pb2 as pb
from securekube.kubelet.errors import ContainerConfigError, PodAdmissionError
from securekube.kubelet.security import (
    DEFAULT_MASKED_PATHS,
    DEFAULT_READONLY_PATHS,
    ImageUser,
    NodeSecurity,
    admit_pod,
    container_security_context,
    sandbox_security_context,
    sandbox_sysctls,
)

ROOT_IMAGE = ImageUser()  # an image without a User runs as root
NOBODY_IMAGE = ImageUser(uid=65534)
NO_APPARMOR = "Cannot enforce AppArmor: AppArmor is not enabled on the host"


def make_pod(container_sc: dict[str, Any] | None = None, pod_sc: dict[str, Any] | None = None,
             annotations: dict[str, str] | None = None, **spec: Any) -> dict[str, Any]:
    container: dict[str, Any] = {"name": "app", "image": "localhost/securekube/busybox:test"}
    if container_sc is not None:
        container["securityContext"] = container_sc
    return {
        "metadata": {"name": "web", "namespace": "team-a", "uid": "1234",
                     "annotations": annotations or {}},
        "spec": {"containers": [container], "securityContext": pod_sc or {}, **spec},
    }


@pytest.fixture
def seccomp_root(tmp_path: Path) -> Path:
    root = tmp_path / "seccomp"
    (root / "profiles").mkdir(parents=True)
    (root / "profiles" / "no-mkdir.json").write_text(json.dumps({
        "defaultAction": "SCMP_ACT_ALLOW",
        "syscalls": [{"names": ["mkdir", "mkdirat"], "action": "SCMP_ACT_ERRNO"}]}))
    (root / "broken.json").write_text("{not json")
    return root


def fake_sysfs(tmp_path: Path, enabled: str | None, profiles: str | None = None) -> AppArmorHost:
    """A sysfs tree with (or without) the AppArmor module and loaded-profile list."""
    root = tmp_path / "sys"
    root.mkdir()
    if enabled is not None:
        flag = root / "module" / "apparmor" / "parameters" / "enabled"
        flag.parent.mkdir(parents=True)
        flag.write_text(enabled + "\n")
    if profiles is not None:
        listing = root / "kernel" / "security" / "apparmor" / "profiles"
        listing.parent.mkdir(parents=True)
        listing.write_text(profiles)
    return AppArmorHost(root)


@pytest.fixture
def node(seccomp_root: Path, tmp_path: Path) -> NodeSecurity:
    return NodeSecurity(seccomp_root=seccomp_root, apparmor=fake_sysfs(tmp_path, enabled=None))


@pytest.fixture
def apparmor_node(seccomp_root: Path, tmp_path: Path) -> NodeSecurity:
    host = fake_sysfs(tmp_path, enabled="Y",
                      profiles="k8s-deny-write (enforce)\nmy profile (complain)\n")
    return NodeSecurity(seccomp_root=seccomp_root, apparmor=host)


def translate(pod: dict[str, Any], node: NodeSecurity,
              image: ImageUser = NOBODY_IMAGE) -> pb.LinuxContainerSecurityContext:
    return container_security_context(pod, pod["spec"]["containers"][0], image, node)


# ---- seccomp -----------------------------------------------------------------------------------

def test_unset_seccomp_means_runtime_default(node: NodeSecurity) -> None:
    context = translate(make_pod(), node)
    assert context.HasField("seccomp")
    assert context.seccomp.profile_type == pb.SecurityProfile.RuntimeDefault
    assert context.seccomp_profile_path == "runtime/default"


@pytest.mark.parametrize(("container_sc", "pod_sc", "expected"), [
    ({}, {"seccompProfile": {"type": "Unconfined"}}, pb.SecurityProfile.Unconfined),
    ({"seccompProfile": {"type": "RuntimeDefault"}}, {"seccompProfile": {"type": "Unconfined"}},
     pb.SecurityProfile.RuntimeDefault),
    ({"seccompProfile": {"type": "Unconfined"}}, {}, pb.SecurityProfile.Unconfined),
])
def test_container_seccomp_overrides_pod_seccomp(node: NodeSecurity, container_sc: dict[str, Any],
                                                 pod_sc: dict[str, Any], expected: int) -> None:
    assert translate(make_pod(container_sc, pod_sc), node).seccomp.profile_type == expected


def test_localhost_seccomp_resolves_under_the_kubelet_seccomp_dir(node: NodeSecurity,
                                                                   seccomp_root: Path) -> None:
    pod = make_pod({"seccompProfile": {"type": "Localhost", "localhostProfile": "profiles/no-mkdir.json"}})
    context = translate(pod, node)
    expected = str(seccomp_root / "profiles" / "no-mkdir.json")
    assert context.seccomp.profile_type == pb.SecurityProfile.Localhost
    assert context.seccomp.localhost_ref == expected
    assert context.seccomp_profile_path == f"localhost/{expected}"


@pytest.mark.parametrize(("profile", "message"), [
    ({"type": "Localhost", "localhostProfile": "profiles/missing.json"}, "does not exist"),
    ({"type": "Localhost", "localhostProfile": "broken.json"}, "not valid JSON"),
    ({"type": "Localhost", "localhostProfile": "../etc/passwd"}, "without '..'"),
    ({"type": "Localhost", "localhostProfile": "/etc/passwd"}, "must be a relative path"),
    ({"type": "Localhost"}, "localhostProfile must be set if seccompProfile type is Localhost."),
    ({"type": "Bogus"}, "Unsupported value"),
])
def test_unusable_seccomp_profiles_refuse_the_container(node: NodeSecurity, profile: dict[str, Any],
                                                        message: str) -> None:
    with pytest.raises(ContainerConfigError, match=message.replace(".", r"\.")) as raised:
        translate(make_pod({"seccompProfile": profile}), node)
    assert raised.value.reason == "CreateContainerConfigError"


# ---- AppArmor ----------------------------------------------------------------------------------

@pytest.mark.parametrize("pod", [
    make_pod({"appArmorProfile": {"type": "RuntimeDefault"}}),
    make_pod({"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-deny-write"}}),
    make_pod(pod_sc={"appArmorProfile": {"type": "RuntimeDefault"}}),
    make_pod(annotations={"container.apparmor.security.beta.kubernetes.io/app": "runtime/default"}),
    make_pod(annotations={"container.apparmor.security.beta.kubernetes.io/app": "localhost/x"}),
])
def test_apparmor_requests_are_rejected_on_a_host_without_apparmor(node: NodeSecurity,
                                                                   pod: dict[str, Any]) -> None:
    with pytest.raises(PodAdmissionError) as raised:
        admit_pod(pod, node)
    assert str(raised.value) == NO_APPARMOR
    assert raised.value.reason == "AppArmor"


@pytest.mark.parametrize("pod", [
    make_pod(),
    make_pod({"appArmorProfile": {"type": "Unconfined"}}),
    make_pod(annotations={"container.apparmor.security.beta.kubernetes.io/app": "unconfined"}),
])
def test_no_or_unconfined_apparmor_is_admitted_without_apparmor(node: NodeSecurity,
                                                               pod: dict[str, Any]) -> None:
    admit_pod(pod, node)


def test_apparmor_module_present_but_disabled_counts_as_absent(seccomp_root: Path, tmp_path: Path) -> None:
    node = NodeSecurity(seccomp_root, fake_sysfs(tmp_path, enabled="N", profiles=""))
    with pytest.raises(PodAdmissionError, match=NO_APPARMOR):
        admit_pod(make_pod({"appArmorProfile": {"type": "RuntimeDefault"}}), node)


def test_loaded_localhost_profile_is_admitted_and_sent_to_the_runtime(apparmor_node: NodeSecurity) -> None:
    pod = make_pod({"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-deny-write"}})
    admit_pod(pod, apparmor_node)
    context = translate(pod, apparmor_node)
    assert context.apparmor.profile_type == pb.SecurityProfile.Localhost
    assert context.apparmor.localhost_ref == "k8s-deny-write"
    assert context.apparmor_profile == "localhost/k8s-deny-write"


def test_profile_names_with_spaces_are_read_from_the_kernel_list(apparmor_node: NodeSecurity) -> None:
    admit_pod(make_pod({"appArmorProfile": {"type": "Localhost", "localhostProfile": "my profile"}}),
              apparmor_node)


def test_localhost_profile_that_is_not_loaded_is_rejected(apparmor_node: NodeSecurity) -> None:
    pod = make_pod(annotations={"container.apparmor.security.beta.kubernetes.io/app": "localhost/absent"})
    with pytest.raises(PodAdmissionError) as raised:
        admit_pod(pod, apparmor_node)
    assert str(raised.value) == 'Cannot enforce AppArmor: profile "absent" is not loaded'


def test_unreadable_profile_list_rejects_localhost_profiles(seccomp_root: Path, tmp_path: Path) -> None:
    node = NodeSecurity(seccomp_root, fake_sysfs(tmp_path, enabled="Y", profiles=None))
    pod = make_pod({"appArmorProfile": {"type": "Localhost", "localhostProfile": "k8s-deny-write"}})
    with pytest.raises(PodAdmissionError, match="could not read loaded profiles"):
        admit_pod(pod, node)


def test_runtime_default_apparmor_is_admitted_where_apparmor_is_enabled(apparmor_node: NodeSecurity) -> None:
    pod = make_pod(pod_sc={"appArmorProfile": {"type": "RuntimeDefault"}})
    admit_pod(pod, apparmor_node)
    context = translate(pod, apparmor_node)
    assert context.apparmor.profile_type == pb.SecurityProfile.RuntimeDefault
    assert context.apparmor_profile == "runtime/default"


def test_apparmor_precedence_is_container_field_then_annotation_then_pod_field(
        apparmor_node: NodeSecurity) -> None:
    annotation = {"container.apparmor.security.beta.kubernetes.io/app": "localhost/k8s-deny-write"}
    pod_field = {"appArmorProfile": {"type": "RuntimeDefault"}}
    both = make_pod({"appArmorProfile": {"type": "Unconfined"}}, pod_field, annotation)
    assert translate(both, apparmor_node).apparmor.profile_type == pb.SecurityProfile.Unconfined
    annotated = make_pod({}, pod_field, annotation)
    assert translate(annotated, apparmor_node).apparmor.localhost_ref == "k8s-deny-write"
    pod_only = make_pod({}, pod_field)
    assert translate(pod_only, apparmor_node).apparmor.profile_type == pb.SecurityProfile.RuntimeDefault
    assert not translate(make_pod(), apparmor_node).HasField("apparmor")


def test_malformed_apparmor_annotation_is_rejected_not_ignored(apparmor_node: NodeSecurity) -> None:
    pod = make_pod(annotations={"container.apparmor.security.beta.kubernetes.io/app": "enforce-please"})
    with pytest.raises(PodAdmissionError, match="invalid AppArmor profile name"):
        admit_pod(pod, apparmor_node)


# ---- capabilities, privilege, users ------------------------------------------------------------

def test_capabilities_are_normalized_for_the_runtime(node: NodeSecurity) -> None:
    context = translate(make_pod({"capabilities": {"add": ["NET_ADMIN", "cap_sys_time"],
                                                   "drop": ["ALL"]}}), node)
    assert list(context.capabilities.add_capabilities) == ["NET_ADMIN", "SYS_TIME"]
    assert list(context.capabilities.drop_capabilities) == ["ALL"]


def test_unknown_capability_is_refused(node: NodeSecurity) -> None:
    with pytest.raises(ContainerConfigError, match="unknown capability 'SUPERPOWER'"):
        translate(make_pod({"capabilities": {"add": ["SUPERPOWER"]}}), node)


@pytest.mark.parametrize(("allow", "no_new_privs"), [(False, True), (True, False), (None, False)])
def test_allow_privilege_escalation_maps_to_no_new_privs(node: NodeSecurity, allow: bool | None,
                                                         no_new_privs: bool) -> None:
    container_sc = {} if allow is None else {"allowPrivilegeEscalation": allow}
    assert translate(make_pod(container_sc), node).no_new_privs is no_new_privs


def test_privileged_without_escalation_is_contradictory(node: NodeSecurity) -> None:
    with pytest.raises(ContainerConfigError, match="cannot set `allowPrivilegeEscalation` to false"):
        translate(make_pod({"privileged": True, "allowPrivilegeEscalation": False}), node)


def test_read_only_root_and_default_proc_masks(node: NodeSecurity) -> None:
    context = translate(make_pod({"readOnlyRootFilesystem": True}), node)
    assert context.readonly_rootfs is True
    assert tuple(context.masked_paths) == DEFAULT_MASKED_PATHS
    assert tuple(context.readonly_paths) == DEFAULT_READONLY_PATHS
    assert "/proc/kcore" in context.masked_paths and "/proc/sys" in context.readonly_paths


def test_unmasked_proc_is_refused_without_user_namespaces(node: NodeSecurity) -> None:
    with pytest.raises(ContainerConfigError, match="procMount"):
        translate(make_pod({"procMount": "Unmasked"}), node)


def test_container_user_and_group_override_the_pod(node: NodeSecurity) -> None:
    pod = make_pod({"runAsUser": 2000}, {"runAsUser": 1000, "runAsGroup": 3000,
                                         "fsGroup": 4000, "supplementalGroups": [5000]})
    context = translate(pod, node, ROOT_IMAGE)
    assert context.run_as_user.value == 2000
    assert context.run_as_group.value == 3000
    assert list(context.supplemental_groups) == [4000, 5000]


def test_image_user_applies_when_no_run_as_user(node: NodeSecurity) -> None:
    assert translate(make_pod(), node, ImageUser(uid=65534)).run_as_user.value == 65534
    named = translate(make_pod(), node, ImageUser(username="www"))
    assert not named.HasField("run_as_user") and named.run_as_username == "www"


@pytest.mark.parametrize(("image", "pod_sc", "container_sc", "message"), [
    (ROOT_IMAGE, {"runAsNonRoot": True}, {}, "container has runAsNonRoot and image will run as root"),
    (ImageUser(uid=0), {}, {"runAsNonRoot": True}, "container has runAsNonRoot and image will run as root"),
    (NOBODY_IMAGE, {"runAsNonRoot": True}, {"runAsUser": 0}, "container's runAsUser breaks non-root policy"),
    (ImageUser(username="app"), {"runAsNonRoot": True}, {},
     "container has runAsNonRoot and image has non-numeric user (app), cannot verify user is non-root"),
])
def test_run_as_non_root_refuses_root_with_upstream_messages(node: NodeSecurity, image: ImageUser,
                                                            pod_sc: dict[str, Any],
                                                            container_sc: dict[str, Any],
                                                            message: str) -> None:
    with pytest.raises(ContainerConfigError) as raised:
        translate(make_pod(container_sc, pod_sc), node, image)
    assert raised.value.message == f'{message} (pod: "web_team-a(1234)", container: app)'


@pytest.mark.parametrize(("image", "container_sc"), [
    (NOBODY_IMAGE, {}), (ROOT_IMAGE, {"runAsUser": 1000}), (ROOT_IMAGE, {"runAsNonRoot": False}),
])
def test_run_as_non_root_allows_non_root(node: NodeSecurity, image: ImageUser,
                                         container_sc: dict[str, Any]) -> None:
    pod = make_pod(container_sc, {"runAsNonRoot": True} if "runAsNonRoot" not in container_sc else {})
    translate(pod, node, image)


# ---- namespaces and the sandbox ----------------------------------------------------------------

@pytest.mark.parametrize(("spec", "network", "pid", "ipc"), [
    ({}, pb.POD, pb.CONTAINER, pb.POD),
    ({"shareProcessNamespace": True}, pb.POD, pb.POD, pb.POD),
    ({"hostNetwork": True, "hostPID": True, "hostIPC": True}, pb.NODE, pb.NODE, pb.NODE),
])
def test_namespace_options(node: NodeSecurity, spec: dict[str, Any], network: int, pid: int,
                           ipc: int) -> None:
    options = translate(make_pod(**spec), node).namespace_options
    assert (options.network, options.pid, options.ipc) == (network, pid, ipc)


def test_sandbox_runs_runtime_default_as_the_pod_user() -> None:
    pod = make_pod({"privileged": True}, {"runAsUser": 1000, "runAsGroup": 1000, "fsGroup": 2000,
                                          "seccompProfile": {"type": "Unconfined"}})
    context = sandbox_security_context(pod)
    assert context.seccomp.profile_type == pb.SecurityProfile.RuntimeDefault
    assert (context.run_as_user.value, context.run_as_group.value) == (1000, 1000)
    assert context.privileged is True
    assert list(context.supplemental_groups) == [2000]


# ---- pod admission: sysctls, user namespaces ---------------------------------------------------

def test_safe_sysctls_are_admitted_and_normalized(node: NodeSecurity) -> None:
    pod = make_pod(pod_sc={"sysctls": [{"name": "net/ipv4/ip_local_port_range", "value": "1024 65535"}]})
    admit_pod(pod, node)
    assert sandbox_sysctls(pod) == {"net.ipv4.ip_local_port_range": "1024 65535"}


@pytest.mark.parametrize(("sysctl", "spec", "message"), [
    ("kernel.msgmax", {}, 'forbidden sysctl: "kernel.msgmax" not allowlisted'),
    ("net.ipv4.tcp_syncookies", {"hostNetwork": True},
     'forbidden sysctl: "net.ipv4.tcp_syncookies" not allowed with host net enabled'),
])
def test_unsafe_sysctls_are_forbidden(node: NodeSecurity, sysctl: str, spec: dict[str, Any],
                                      message: str) -> None:
    pod = make_pod(pod_sc={"sysctls": [{"name": sysctl, "value": "1"}]}, **spec)
    with pytest.raises(PodAdmissionError) as raised:
        admit_pod(pod, node)
    assert (raised.value.reason, str(raised.value)) == ("SysctlForbidden", message)


def test_user_namespace_request_is_not_silently_dropped(node: NodeSecurity) -> None:
    with pytest.raises(PodAdmissionError, match="hostUsers: false"):
        admit_pod(make_pod(hostUsers=False), node)
