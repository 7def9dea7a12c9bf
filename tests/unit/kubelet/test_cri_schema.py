"""The CRI stubs speak upstream runtime.v1 on the wire: package, services and field numbers."""
from __future__ import annotations

import pytest

from securekube.kubelet.cri import runtime_v1_pb2 as pb
from securekube.kubelet.cri import runtime_v1_pb2_grpc as pb_grpc


def test_services_have_upstream_full_names() -> None:
    services = pb.DESCRIPTOR.services_by_name
    assert services["RuntimeService"].full_name == "runtime.v1.RuntimeService"
    assert services["ImageService"].full_name == "runtime.v1.ImageService"
    assert set(services["RuntimeService"].methods_by_name) == {
        "Version", "RunPodSandbox", "StopPodSandbox", "RemovePodSandbox", "PodSandboxStatus",
        "ListPodSandbox", "CreateContainer", "StartContainer", "StopContainer", "RemoveContainer",
        "ListContainers", "ContainerStatus"}
    assert set(services["ImageService"].methods_by_name) == {
        "ListImages", "ImageStatus", "PullImage", "RemoveImage"}
    assert hasattr(pb_grpc, "RuntimeServiceStub") and hasattr(pb_grpc, "ImageServiceStub")


# Field numbers copied from upstream k8s.io/cri-api pkg/apis/runtime/v1/api.proto: a change here
# would make containerd read our security settings as something else.
@pytest.mark.parametrize(("message", "fields"), [
    (pb.LinuxContainerSecurityContext, {
        "capabilities": 1, "privileged": 2, "namespace_options": 3, "run_as_user": 5,
        "run_as_username": 6, "readonly_rootfs": 7, "supplemental_groups": 8,
        "apparmor_profile": 9, "seccomp_profile_path": 10, "no_new_privs": 11, "run_as_group": 12,
        "masked_paths": 13, "readonly_paths": 14, "seccomp": 15, "apparmor": 16}),
    (pb.LinuxSandboxSecurityContext, {
        "namespace_options": 1, "run_as_user": 3, "readonly_rootfs": 4, "supplemental_groups": 5,
        "privileged": 6, "seccomp_profile_path": 7, "run_as_group": 8, "seccomp": 9, "apparmor": 10}),
    (pb.SecurityProfile, {"profile_type": 1, "localhost_ref": 2}),
    (pb.LinuxContainerResources, {
        "cpu_period": 1, "cpu_quota": 2, "cpu_shares": 3, "memory_limit_in_bytes": 4,
        "oom_score_adj": 5, "unified": 9, "memory_swap_limit_in_bytes": 10}),
    (pb.ContainerConfig, {
        "metadata": 1, "image": 2, "command": 3, "args": 4, "working_dir": 5, "envs": 6,
        "mounts": 7, "labels": 9, "annotations": 10, "log_path": 11, "tty": 14, "linux": 15}),
    (pb.PodSandboxConfig, {"metadata": 1, "hostname": 2, "log_directory": 3, "dns_config": 4,
                           "labels": 6, "annotations": 7, "linux": 8}),
    (pb.LinuxPodSandboxConfig, {"cgroup_parent": 1, "security_context": 2, "sysctls": 3}),
    (pb.ContainerStatus, {"id": 1, "state": 3, "started_at": 5, "finished_at": 6, "exit_code": 7,
                          "image_ref": 9, "reason": 10, "message": 11, "log_path": 15}),
    (pb.Image, {"id": 1, "repo_tags": 2, "uid": 5, "username": 6}),
    (pb.ImageSpec, {"image": 1, "annotations": 2, "user_specified_image": 18}),
])
def test_field_numbers_match_upstream(message: type, fields: dict[str, int]) -> None:
    numbers = {field.name: field.number for field in message.DESCRIPTOR.fields}
    assert {name: numbers.get(name) for name in fields} == fields


def test_profile_type_values_match_upstream() -> None:
    assert (pb.SecurityProfile.RuntimeDefault, pb.SecurityProfile.Unconfined,
            pb.SecurityProfile.Localhost) == (0, 1, 2)
    assert (pb.POD, pb.CONTAINER, pb.NODE, pb.TARGET) == (0, 1, 2, 3)


def test_a_runtime_default_profile_is_sent_even_though_it_is_the_zero_value() -> None:
    # An absent seccomp message means "unset" to containerd; the kubelet must send it explicitly.
    context = pb.LinuxContainerSecurityContext(
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault))
    decoded = pb.LinuxContainerSecurityContext.FromString(context.SerializeToString())
    assert decoded.HasField("seccomp")
