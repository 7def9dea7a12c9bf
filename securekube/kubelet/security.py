"""A Pod's securityContext translated to CRI runtime.v1, with upstream kubelet semantics.

Precedence is upstream's (securitycontext.DetermineEffectiveSecurityContext): runAsUser,
runAsGroup, runAsNonRoot and seLinuxOptions set on the container override the pod's; capabilities,
privileged, readOnlyRootFilesystem, allowPrivilegeEscalation and procMount exist only per container.
Seccomp and AppArmor have their own modules. Anything we cannot translate faithfully raises
(`ContainerConfigError` for one container, `PodAdmissionError` for the pod) rather than being
dropped: a dropped security setting is a silently weaker container.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from securekube.kubelet import apparmor, seccomp
from securekube.kubelet.cri import runtime_v1_pb2 as pb
from securekube.kubelet.errors import ContainerConfigError, PodAdmissionError

# Fields of the pod securityContext that a container's own securityContext overrides.
_INHERITED_FIELDS = ("runAsUser", "runAsGroup", "runAsNonRoot", "seLinuxOptions")

# Linux capabilities by their CRI name (CAP_ prefix removed, as containerd adds it back).
KNOWN_CAPABILITIES = frozenset({
    "CHOWN", "DAC_OVERRIDE", "DAC_READ_SEARCH", "FOWNER", "FSETID", "KILL", "SETGID", "SETUID",
    "SETPCAP", "LINUX_IMMUTABLE", "NET_BIND_SERVICE", "NET_BROADCAST", "NET_ADMIN", "NET_RAW",
    "IPC_LOCK", "IPC_OWNER", "SYS_MODULE", "SYS_RAWIO", "SYS_CHROOT", "SYS_PTRACE", "SYS_PACCT",
    "SYS_ADMIN", "SYS_BOOT", "SYS_NICE", "SYS_RESOURCE", "SYS_TIME", "SYS_TTY_CONFIG", "MKNOD",
    "LEASE", "AUDIT_WRITE", "AUDIT_CONTROL", "SETFCAP", "MAC_OVERRIDE", "MAC_ADMIN", "SYSLOG",
    "WAKE_ALARM", "BLOCK_SUSPEND", "AUDIT_READ", "PERFMON", "BPF", "CHECKPOINT_RESTORE",
})

# Upstream's defaults for procMount "Default" (k8s.io/kubernetes pkg/securitycontext, kept in
# sync with moby): hidden kernel interfaces and read-only kernel tunables.
DEFAULT_MASKED_PATHS = (
    "/proc/asound", "/proc/acpi", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
    "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/proc/scsi", "/sys/firmware",
    "/sys/devices/virtual/powercap",
)
DEFAULT_READONLY_PATHS = ("/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger")

# Upstream's namespaced "safe" sysctls; any other needs an explicit kubelet allowlist, which we do
# not offer.
SAFE_SYSCTLS = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
    "net.ipv4.ip_local_reserved_ports", "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout",
    "net.ipv4.tcp_keepalive_intvl", "net.ipv4.tcp_keepalive_probes",
})


@dataclass(frozen=True)
class NodeSecurity:
    """The node's security facts: where Localhost seccomp profiles live, and its AppArmor."""

    seccomp_root: Path
    apparmor: apparmor.AppArmorHost = field(default_factory=apparmor.AppArmorHost)


@dataclass(frozen=True)
class ImageUser:
    """The user an image runs as (CRI ImageStatus): a numeric uid, a user name, or neither (root)."""

    uid: int | None = None
    username: str = ""

    @classmethod
    def from_cri(cls, image: pb.Image) -> ImageUser:
        return cls(image.uid.value if image.HasField("uid") else None, image.username)


def _spec(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return pod.get("spec") or {}


def _pod_security_context(pod: Mapping[str, Any]) -> Mapping[str, Any]:
    return _spec(pod).get("securityContext") or {}


def pod_display_name(pod: Mapping[str, Any]) -> str:
    """A pod as upstream's kubelet names it in messages: name_namespace(uid)."""
    meta = pod.get("metadata") or {}
    return f"{meta.get('name', '')}_{meta.get('namespace', '')}({meta.get('uid', '')})"


def effective_security_context(pod: Mapping[str, Any], container: Mapping[str, Any]) -> dict[str, Any]:
    """The container's securityContext with the pod-level fields it does not override filled in."""
    effective = dict(container.get("securityContext") or {})
    pod_sc = _pod_security_context(pod)
    for name in _INHERITED_FIELDS:
        if effective.get(name) is None and pod_sc.get(name) is not None:
            effective[name] = pod_sc[name]
    return effective


def verify_run_as_non_root(pod: Mapping[str, Any], container: Mapping[str, Any],
                           image_user: ImageUser) -> None:
    """Refuse a runAsNonRoot container that would run as root, with upstream's messages."""
    effective = effective_security_context(pod, container)
    if not effective.get("runAsNonRoot"):
        return
    where = f'(pod: "{pod_display_name(pod)}", container: {container.get("name", "")})'
    run_as_user = effective.get("runAsUser")
    if run_as_user is not None:
        if run_as_user == 0:
            raise ContainerConfigError(f"container's runAsUser breaks non-root policy {where}")
        return
    if image_user.uid is None and image_user.username:
        raise ContainerConfigError(
            f"container has runAsNonRoot and image has non-numeric user ({image_user.username}), "
            f"cannot verify user is non-root {where}")
    # An image without a user runs as root, exactly like one that says uid 0.
    if image_user.uid is None or image_user.uid == 0:
        raise ContainerConfigError(f"container has runAsNonRoot and image will run as root {where}")


def _capability_names(values: Any, where: str) -> list[str]:
    names = []
    for value in values or ():
        if not isinstance(value, str):
            raise ContainerConfigError(f"{where}: capability names must be strings")
        name = value.upper().removeprefix("CAP_")
        if name != "ALL" and name not in KNOWN_CAPABILITIES:
            raise ContainerConfigError(f"{where}: unknown capability {value!r}")
        names.append(name)
    return names


def _capabilities(raw: Mapping[str, Any] | None, container_name: str) -> pb.Capability | None:
    if raw is None:
        return None
    where = f"containers[{container_name}].securityContext.capabilities"
    return pb.Capability(add_capabilities=_capability_names(raw.get("add"), f"{where}.add"),
                         drop_capabilities=_capability_names(raw.get("drop"), f"{where}.drop"))


def _int64(value: Any, where: str) -> pb.Int64Value:
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise ContainerConfigError(f"{where}: must be a non-negative integer")
    return pb.Int64Value(value=value)


def _supplemental_groups(pod: Mapping[str, Any]) -> list[int]:
    pod_sc = _pod_security_context(pod)
    groups = [pod_sc["fsGroup"]] if pod_sc.get("fsGroup") is not None else []
    groups.extend(pod_sc.get("supplementalGroups") or ())
    for group in groups:
        if isinstance(group, bool) or not isinstance(group, int) or group < 0:
            raise ContainerConfigError("spec.securityContext: fsGroup and supplementalGroups must be "
                                       "non-negative integers")
    return groups


def namespace_options(pod: Mapping[str, Any]) -> pb.NamespaceOption:
    """The pod's Linux namespaces as upstream's kubelet asks for them."""
    spec = _spec(pod)
    if spec.get("hostPID"):
        pid = pb.NODE
    elif spec.get("shareProcessNamespace"):
        pid = pb.POD
    else:
        pid = pb.CONTAINER  # the CRI default is POD; v1 pods default to a PID namespace each
    return pb.NamespaceOption(network=pb.NODE if spec.get("hostNetwork") else pb.POD,
                              pid=pid, ipc=pb.NODE if spec.get("hostIPC") else pb.POD)


def container_security_context(pod: Mapping[str, Any], container: Mapping[str, Any],
                               image_user: ImageUser, node: NodeSecurity) -> pb.LinuxContainerSecurityContext:
    """The CRI security context for one container; raises ContainerConfigError if it cannot run."""
    name = container.get("name", "")
    where = f"containers[{name}].securityContext"
    effective = effective_security_context(pod, container)
    verify_run_as_non_root(pod, container, image_user)

    privileged = bool(effective.get("privileged"))
    allow_escalation = effective.get("allowPrivilegeEscalation")
    if privileged and allow_escalation is False:
        raise ContainerConfigError(f"{where}: cannot set `allowPrivilegeEscalation` to false and "
                                   "`privileged` to true")
    proc_mount = effective.get("procMount") or "Default"
    if proc_mount != "Default":
        # Unmasked /proc is only safe inside a user namespace, which this node does not create.
        raise ContainerConfigError(f"{where}.procMount: Invalid value: {proc_mount!r}: only "
                                   "\"Default\" is supported on this node")

    context = pb.LinuxContainerSecurityContext(
        privileged=privileged,
        readonly_rootfs=bool(effective.get("readOnlyRootFilesystem")),
        # Upstream: no_new_privs only when allowPrivilegeEscalation is explicitly false.
        no_new_privs=allow_escalation is False,
        namespace_options=namespace_options(pod),
        supplemental_groups=_supplemental_groups(pod),
        masked_paths=DEFAULT_MASKED_PATHS,
        readonly_paths=DEFAULT_READONLY_PATHS,
    )
    capabilities = _capabilities(effective.get("capabilities"), name)
    if capabilities is not None:
        context.capabilities.CopyFrom(capabilities)
    if effective.get("runAsUser") is not None:
        context.run_as_user.CopyFrom(_int64(effective["runAsUser"], f"{where}.runAsUser"))
    elif image_user.uid is not None:
        context.run_as_user.CopyFrom(pb.Int64Value(value=image_user.uid))
    else:
        context.run_as_username = image_user.username
    if effective.get("runAsGroup") is not None:
        context.run_as_group.CopyFrom(_int64(effective["runAsGroup"], f"{where}.runAsGroup"))

    seccomp_profile, seccomp_path = seccomp.to_cri(seccomp.profile_for(pod, container), node.seccomp_root)
    context.seccomp.CopyFrom(seccomp_profile)
    context.seccomp_profile_path = seccomp_path
    apparmor_profile = apparmor.profile_for(pod, container)
    if apparmor_profile is not None:
        context.apparmor.CopyFrom(apparmor_profile.to_cri())
        context.apparmor_profile = apparmor_profile.to_cri_deprecated_string()
    return context


def sandbox_security_context(pod: Mapping[str, Any]) -> pb.LinuxSandboxSecurityContext:
    """The CRI security context of the pod sandbox (the pause container)."""
    pod_sc = _pod_security_context(pod)
    containers = list(_containers(pod))
    context = pb.LinuxSandboxSecurityContext(
        namespace_options=namespace_options(pod),
        privileged=any((c.get("securityContext") or {}).get("privileged") for c in containers),
        # Upstream pins the sandbox to the runtime default profile whatever the pod asks.
        seccomp=pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault),
        seccomp_profile_path="runtime/default",
        supplemental_groups=_supplemental_groups(pod),
    )
    if pod_sc.get("runAsUser") is not None:
        context.run_as_user.CopyFrom(_int64(pod_sc["runAsUser"], "spec.securityContext.runAsUser"))
    if pod_sc.get("runAsGroup") is not None:
        context.run_as_group.CopyFrom(_int64(pod_sc["runAsGroup"], "spec.securityContext.runAsGroup"))
    return context


def sandbox_sysctls(pod: Mapping[str, Any]) -> dict[str, str]:
    """The pod's sysctls, already admitted by `admit_pod`."""
    return {normalize_sysctl(entry["name"]): str(entry.get("value", ""))
            for entry in _pod_security_context(pod).get("sysctls") or ()}


def normalize_sysctl(name: str) -> str:
    """A sysctl name in dotted form ("net/ipv4/x" → "net.ipv4.x"), as upstream normalizes it."""
    first_slash, first_dot = name.find("/"), name.find(".")
    if first_slash != -1 and (first_dot == -1 or first_slash < first_dot):
        return name.translate(str.maketrans("/.", "./"))
    return name


def _containers(pod: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    spec = _spec(pod)
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or ()


def admit_pod(pod: Mapping[str, Any], node: NodeSecurity) -> None:
    """The node's admission of a pod's security requests; raises PodAdmissionError to reject."""
    apparmor.admit(pod, node.apparmor)
    spec = _spec(pod)
    for entry in _pod_security_context(pod).get("sysctls") or ():
        name = normalize_sysctl(str((entry or {}).get("name", "")))
        if name not in SAFE_SYSCTLS:
            raise PodAdmissionError("SysctlForbidden", f'forbidden sysctl: "{name}" not allowlisted')
        if spec.get("hostNetwork") and name.startswith("net."):
            raise PodAdmissionError("SysctlForbidden",
                                    f'forbidden sysctl: "{name}" not allowed with host net enabled')
    if spec.get("hostUsers") is False:
        # A pod that asks for a user namespace must not silently run without one.
        raise PodAdmissionError("UserNamespacesUnsupported",
                                "pod requests a user namespace (hostUsers: false), which this node "
                                "does not support")
