"""The Pod Security Standards as checks on a pod's metadata and spec, with upstream's wording.

Each check belongs to the baseline or the restricted level and has one or more versions: the
first policy version (`v1.N`) a revision applies to. Evaluating level L at version V runs, for
every check of L (restricted includes baseline), its latest revision not newer than V; a
restricted revision may replace ("override") a baseline check, as `restrictedVolumes` replaces
`hostPathVolumes`. `latest` is the newest revision of everything, and a version newer than any
revision behaves as `latest`, as upstream's evaluator does.

Reasons and details are upstream's (k8s.io/pod-security-admission), so a denial reads as it
does on a real cluster: `allowPrivilegeEscalation != false (container "c" must set
securityContext.allowPrivilegeEscalation=false)`. Results come in upstream's order: baseline
check IDs sorted, then restricted check IDs sorted.

Objects are plain dicts (JSON as the API stores it): a missing field and an explicit null are
the same, as a nil pointer is upstream.
"""
from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from securekube.authz.rbac_model import go_quote

__all__ = [
    "BASELINE",
    "LATEST_MINOR",
    "LEVELS",
    "PRIVILEGED",
    "RESTRICTED",
    "CheckResult",
    "evaluate_pod",
]

PRIVILEGED, BASELINE, RESTRICTED = "privileged", "baseline", "restricted"
LEVELS = (PRIVILEGED, BASELINE, RESTRICTED)
# Minor version that stands for `latest`: newer than every revision below.
LATEST_MINOR = 1_000_000

Obj = Mapping[str, Any]


@dataclass(frozen=True)
class CheckResult:
    """A failed check: a short reason and, optionally, the specific fields and values at fault."""

    reason: str
    detail: str = ""


CheckFn = Callable[[Obj, Obj], CheckResult | None]  # (metadata, spec) -> failure or None


@dataclass(frozen=True)
class _Revision:
    minimum_minor: int
    check: CheckFn
    overrides: tuple[str, ...] = ()  # baseline check IDs this (restricted) revision replaces


@dataclass(frozen=True)
class _Check:
    id: str
    level: str
    revisions: tuple[_Revision, ...]  # increasing minimum_minor

    def revision_for(self, minor: int) -> _Revision | None:
        chosen = None
        for revision in self.revisions:
            if revision.minimum_minor <= minor:
                chosen = revision
        return chosen


# ------------------------------------------------------------------------------------ helpers


def _map(value: Any) -> Obj:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> Sequence[Any]:
    return value if isinstance(value, list) else ()


def _containers(spec: Obj) -> Iterator[Obj]:
    """Containers, init containers and ephemeral containers, as upstream's visitor walks them."""
    for field in ("containers", "initContainers", "ephemeralContainers"):
        for container in _list(spec.get(field)):
            if isinstance(container, Mapping):
                yield container


def _name(container: Obj) -> str:
    return str(container.get("name", ""))


def _security_context(obj: Obj) -> Obj | None:
    value = obj.get("securityContext")
    return value if isinstance(value, Mapping) else None


def _pluralize(singular: str, plural: str, count: int) -> str:
    return singular if count == 1 else plural


def _join_quote(items: Sequence[str]) -> str:
    return ", ".join(go_quote(str(item)) for item in items)


def _setters(pod: bool, containers: Sequence[str]) -> list[str]:
    """["pod", 'containers "a", "b"'], the subjects of upstream's "must not set" messages."""
    setters = ["pod"] if pod else []
    if containers:
        setters.append(f"{_pluralize('container', 'containers', len(containers))} {_join_quote(containers)}")
    return setters


def _is_windows(spec: Obj) -> bool:
    return _map(spec.get("os")).get("name") == "windows"


def _user_namespaced(spec: Obj) -> bool:
    return spec.get("hostUsers") is False


# ------------------------------------------------------------------------------------ baseline


_APPARMOR_ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
_APPARMOR_TYPES = frozenset({"RuntimeDefault", "Localhost"})


def _app_armor_profile(metadata: Obj, spec: Obj) -> CheckResult | None:
    bad_values: set[str] = set()
    pod_bad = False
    profile = _map(_map(spec.get("securityContext")).get("appArmorProfile"))
    if profile and profile.get("type") not in _APPARMOR_TYPES:
        pod_bad = True
        bad_values.add(str(profile.get("type", "")))
    bad_containers = []
    for container in _containers(spec):
        profile = _map(_map(container.get("securityContext")).get("appArmorProfile"))
        if profile and profile.get("type") not in _APPARMOR_TYPES:
            bad_containers.append(_name(container))
            bad_values.add(str(profile.get("type", "")))
    setters = _setters(pod_bad, bad_containers)
    annotations = sorted(
        f"{key}={go_quote(str(value))}" for key, value in _map(metadata.get("annotations")).items()
        if str(key).startswith(_APPARMOR_ANNOTATION_PREFIX)
        and not (value in ("", "runtime/default") or str(value).startswith("localhost/")))
    values = sorted(bad_values) + annotations
    if annotations:
        setters.append(_pluralize("annotation", "annotations", len(annotations)))
    if not setters:
        return None
    return CheckResult(_pluralize("forbidden AppArmor profile", "forbidden AppArmor profiles", len(values)),
                       f"{' and '.join(setters)} must not set AppArmor profile type to {_join_quote(values)}")


_BASELINE_CAPABILITIES = frozenset({
    "AUDIT_WRITE", "CHOWN", "DAC_OVERRIDE", "FOWNER", "FSETID", "KILL", "MKNOD", "NET_BIND_SERVICE",
    "SETFCAP", "SETGID", "SETPCAP", "SETUID", "SYS_CHROOT",
})


def _capabilities_baseline(metadata: Obj, spec: Obj) -> CheckResult | None:
    bad_containers, non_default = [], set()
    for container in _containers(spec):
        added = [str(c) for c in _list(_map(_map(container.get("securityContext")).get("capabilities")).get("add"))]
        extra = [c for c in added if c not in _BASELINE_CAPABILITIES]
        if extra:
            bad_containers.append(_name(container))
            non_default.update(extra)
    if not bad_containers:
        return None
    return CheckResult("non-default capabilities",
                       f"{_pluralize('container', 'containers', len(bad_containers))} {_join_quote(bad_containers)} "
                       f"must not include {_join_quote(sorted(non_default))} in securityContext.capabilities.add")


def _host_namespaces(metadata: Obj, spec: Obj) -> CheckResult | None:
    used = [f"{field}=true" for field in ("hostNetwork", "hostPID", "hostIPC") if spec.get(field) is True]
    return CheckResult("host namespaces", ", ".join(used)) if used else None


def _host_path_volumes(metadata: Obj, spec: Obj) -> CheckResult | None:
    names = [str(v.get("name", "")) for v in _list(spec.get("volumes"))
             if isinstance(v, Mapping) and v.get("hostPath") is not None]
    if not names:
        return None
    return CheckResult("hostPath volumes", f"{_pluralize('volume', 'volumes', len(names))} {_join_quote(names)}")


def _host_ports(metadata: Obj, spec: Obj) -> CheckResult | None:
    bad_containers, ports = [], set()
    for container in _containers(spec):
        used = [p.get("hostPort") for p in _list(container.get("ports"))
                if isinstance(p, Mapping) and p.get("hostPort") not in (None, 0)]
        if used:
            bad_containers.append(_name(container))
            ports.update(str(p) for p in used)
    if not bad_containers:
        return None
    count = len(bad_containers)
    # Sorted as strings, as upstream's string set sorts them.
    return CheckResult("hostPort", f"{_pluralize('container', 'containers', count)} {_join_quote(bad_containers)} "
                                   f"{_pluralize('uses', 'use', count)} "
                                   f"{_pluralize('hostPort', 'hostPorts', len(ports))} {', '.join(sorted(ports))}")


def _handler_hosts(handler: Any) -> list[str]:
    handler = _map(handler)
    hosts = []
    for kind in ("httpGet", "tcpSocket"):
        host = _map(handler.get(kind)).get("host")
        if host:
            hosts.append(str(host))
    return hosts


def _host_probes_and_lifecycle(metadata: Obj, spec: Obj) -> CheckResult | None:
    bad_containers: set[str] = set()
    hosts: set[str] = set()
    for container in _containers(spec):
        lifecycle = _map(container.get("lifecycle"))
        handlers = [container.get(p) for p in ("livenessProbe", "readinessProbe", "startupProbe")]
        handlers += [lifecycle.get("postStart"), lifecycle.get("preStop")]
        for handler in handlers:
            found = _handler_hosts(handler)
            if found:
                bad_containers.add(_name(container))
                hosts.update(found)
    if not bad_containers:
        return None
    count = len(bad_containers)
    return CheckResult("probe or lifecycle host",
                       f"{_pluralize('container', 'containers', count)} {_join_quote(sorted(bad_containers))} "
                       f"{_pluralize('uses', 'use', count)} "
                       f"{_pluralize('probe or lifecycle host', 'probe or lifecycle hosts', len(hosts))} "
                       f"{_join_quote(sorted(hosts))}")


def _privileged(metadata: Obj, spec: Obj) -> CheckResult | None:
    bad = [_name(c) for c in _containers(spec) if _map(c.get("securityContext")).get("privileged") is True]
    if not bad:
        return None
    return CheckResult("privileged", f"{_pluralize('container', 'containers', len(bad))} {_join_quote(bad)} "
                                     "must not set securityContext.privileged=true")


def _proc_mount_strict(metadata: Obj, spec: Obj) -> CheckResult | None:
    bad_containers, types = [], set()
    for container in _containers(spec):
        proc_mount = _map(container.get("securityContext")).get("procMount")
        if proc_mount is not None and proc_mount != "Default":
            bad_containers.append(_name(container))
            types.add(str(proc_mount))
    if not bad_containers:
        return None
    return CheckResult("procMount", f"{_pluralize('container', 'containers', len(bad_containers))} "
                                    f"{_join_quote(bad_containers)} must not set securityContext.procMount to "
                                    f"{_join_quote(sorted(types))}")


def _proc_mount_baseline_v1_35(metadata: Obj, spec: Obj) -> CheckResult | None:
    # A pod in its own user namespace may unmask /proc: the masks protect the host's view.
    return None if _user_namespaced(spec) else _proc_mount_strict(metadata, spec)


_SELINUX_TYPES_V1_0 = frozenset({"", "container_t", "container_init_t", "container_kvm_t"})
_SELINUX_TYPES_V1_31 = _SELINUX_TYPES_V1_0 | {"container_engine_t"}


def _se_linux_options(allowed_types: frozenset[str]) -> CheckFn:
    def check(metadata: Obj, spec: Obj) -> CheckResult | None:
        bad_types: set[str] = set()
        flags = {"user": False, "role": False}

        def valid(options: Obj) -> bool:
            ok = True
            if str(options.get("type", "") or "") not in allowed_types:
                ok = False
                bad_types.add(str(options.get("type", "")))
            for field in ("user", "role"):
                if options.get(field):
                    ok, flags[field] = False, True
            return ok

        pod_options = _map(spec.get("securityContext")).get("seLinuxOptions")
        pod_bad = isinstance(pod_options, Mapping) and not valid(pod_options)
        bad_containers = []
        for container in _containers(spec):
            options = _map(container.get("securityContext")).get("seLinuxOptions")
            if isinstance(options, Mapping) and not valid(options):
                bad_containers.append(_name(container))
        setters = _setters(pod_bad, bad_containers)
        if not setters:
            return None
        data = []
        if bad_types:
            data.append(f"{_pluralize('type', 'types', len(bad_types))} {_join_quote(sorted(bad_types))}")
        data += [f"{field} may not be set" for field in ("user", "role") if flags[field]]
        return CheckResult("seLinuxOptions", f"{' and '.join(setters)} set forbidden securityContext.seLinuxOptions: "
                                             f"{'; '.join(data)}")
    return check


_SECCOMP_POD_ANNOTATION = "seccomp.security.alpha.kubernetes.io/pod"
_SECCOMP_CONTAINER_ANNOTATION_PREFIX = "container.seccomp.security.alpha.kubernetes.io/"


def _seccomp_annotations(metadata: Obj, spec: Obj, valid: Callable[[str], bool]) -> list[str]:
    annotations = _map(metadata.get("annotations"))
    keys = [_SECCOMP_POD_ANNOTATION] + [_SECCOMP_CONTAINER_ANNOTATION_PREFIX + _name(c) for c in _containers(spec)]
    return sorted(f"{key}={go_quote(str(annotations[key]))}" for key in keys
                  if key in annotations and not valid(str(annotations[key])))


def _seccomp_baseline_v1_0(metadata: Obj, spec: Obj) -> CheckResult | None:
    # Before 1.19 seccomp was set with annotations; "unconfined" is the only forbidden value.
    bad = _seccomp_annotations(metadata, spec, lambda value: value != "unconfined")
    if not bad:
        return None
    return CheckResult("seccompProfile", f"forbidden {_pluralize('annotation', 'annotations', len(bad))} "
                                         f"{', '.join(bad)}")


def _seccomp_type(obj: Obj) -> str | None:
    profile = _map(obj.get("securityContext")).get("seccompProfile")
    return str(_map(profile).get("type", "")) if isinstance(profile, Mapping) else None


def _seccomp_baseline_v1_19(metadata: Obj, spec: Obj) -> CheckResult | None:
    values: set[str] = set()
    pod_bad = _seccomp_type(spec) == "Unconfined"
    if pod_bad:
        values.add("Unconfined")
    bad_containers = [_name(c) for c in _containers(spec) if _seccomp_type(c) == "Unconfined"]
    if bad_containers:
        values.add("Unconfined")
    setters = _setters(pod_bad, bad_containers)
    if not setters:
        return None
    return CheckResult("seccompProfile", f"{' and '.join(setters)} must not set securityContext.seccompProfile.type "
                                         f"to {_join_quote(sorted(values))}")


_SYSCTLS_V1_0 = frozenset({
    "kernel.shm_rmid_forced", "net.ipv4.ip_local_port_range", "net.ipv4.tcp_syncookies",
    "net.ipv4.ping_group_range", "net.ipv4.ip_unprivileged_port_start",
})
_SYSCTLS_V1_27 = _SYSCTLS_V1_0 | {"net.ipv4.ip_local_reserved_ports"}
_SYSCTLS_V1_29 = _SYSCTLS_V1_27 | {
    "net.ipv4.tcp_keepalive_time", "net.ipv4.tcp_fin_timeout", "net.ipv4.tcp_keepalive_intvl",
    "net.ipv4.tcp_keepalive_probes",
}


def _sysctls(allowed: frozenset[str]) -> CheckFn:
    def check(metadata: Obj, spec: Obj) -> CheckResult | None:
        names = [str(_map(s).get("name", "")) for s in _list(_map(spec.get("securityContext")).get("sysctls"))]
        forbidden = [name for name in names if name not in allowed]
        return CheckResult("forbidden sysctls", ", ".join(forbidden)) if forbidden else None
    return check


def _windows_host_process(metadata: Obj, spec: Obj) -> CheckResult | None:
    def host_process(obj: Obj) -> bool:
        return _map(_map(obj.get("securityContext")).get("windowsOptions")).get("hostProcess") is True

    setters = _setters(host_process(spec), [_name(c) for c in _containers(spec) if host_process(c)])
    if not setters:
        return None
    return CheckResult("hostProcess", f"{' and '.join(setters)} must not set "
                                      "securityContext.windowsOptions.hostProcess=true")


# ---------------------------------------------------------------------------------- restricted


def _windows_exempt(check: CheckFn) -> CheckFn:
    """From 1.25 on, checks that mean nothing on Windows skip pods with spec.os.name=windows."""
    def exempt(metadata: Obj, spec: Obj) -> CheckResult | None:
        return None if _is_windows(spec) else check(metadata, spec)
    return exempt


def _allow_privilege_escalation(metadata: Obj, spec: Obj) -> CheckResult | None:
    bad = [_name(c) for c in _containers(spec)
           if _map(c.get("securityContext")).get("allowPrivilegeEscalation") is not False]
    if not bad:
        return None
    return CheckResult("allowPrivilegeEscalation != false",
                       f"{_pluralize('container', 'containers', len(bad))} {_join_quote(bad)} "
                       "must set securityContext.allowPrivilegeEscalation=false")


def _capabilities_restricted(metadata: Obj, spec: Obj) -> CheckResult | None:
    missing_drop, bad_add, added = [], [], set()
    for container in _containers(spec):
        capabilities = _map(_map(container.get("securityContext")).get("capabilities"))
        if "ALL" not in [str(c) for c in _list(capabilities.get("drop"))]:
            missing_drop.append(_name(container))
        extra = [str(c) for c in _list(capabilities.get("add")) if str(c) != "NET_BIND_SERVICE"]
        if extra:
            bad_add.append(_name(container))
            added.update(extra)
    details = []
    if missing_drop:
        details.append(f"{_pluralize('container', 'containers', len(missing_drop))} {_join_quote(missing_drop)} "
                       'must set securityContext.capabilities.drop=["ALL"]')
    if bad_add:
        details.append(f"{_pluralize('container', 'containers', len(bad_add))} {_join_quote(bad_add)} "
                       f"must not include {_join_quote(sorted(added))} in securityContext.capabilities.add")
    return CheckResult("unrestricted capabilities", "; ".join(details)) if details else None


_ALLOWED_VOLUME_TYPES = frozenset({
    "configMap", "csi", "downwardAPI", "emptyDir", "ephemeral", "image", "persistentVolumeClaim", "projected",
    "secret",
})
_RESTRICTED_VOLUME_TYPES = frozenset({
    "awsElasticBlockStore", "azureDisk", "azureFile", "cephfs", "cinder", "fc", "flexVolume", "flocker",
    "gcePersistentDisk", "gitRepo", "glusterfs", "hostPath", "iscsi", "nfs", "photonPersistentDisk",
    "portworxVolume", "quobyte", "rbd", "scaleIO", "storageos", "vsphereVolume",
})


def _restricted_volumes(metadata: Obj, spec: Obj) -> CheckResult | None:
    bad_volumes, bad_types = [], set()
    for volume in _list(spec.get("volumes")):
        if not isinstance(volume, Mapping):
            continue
        sources = {key for key, value in volume.items() if key != "name" and value is not None}
        # A restricted source wins over an allowed one (fail closed on a malformed volume).
        restricted = sorted(sources & _RESTRICTED_VOLUME_TYPES)
        if restricted:
            bad_types.update(restricted)
        elif not sources & _ALLOWED_VOLUME_TYPES:
            bad_types.add("unknown")
        else:
            continue
        bad_volumes.append(str(volume.get("name", "")))
    if not bad_volumes:
        return None
    count = len(bad_volumes)
    return CheckResult("restricted volume types",
                       f"{_pluralize('volume', 'volumes', count)} {_join_quote(bad_volumes)} "
                       f"{_pluralize('uses', 'use', count)} "
                       f"{_pluralize('restricted volume type', 'restricted volume types', len(bad_types))} "
                       f"{_join_quote(sorted(bad_types))}")


def _run_as_non_root(metadata: Obj, spec: Obj) -> CheckResult | None:
    pod_value = _map(spec.get("securityContext")).get("runAsNonRoot")
    pod_bad, pod_non_root = pod_value is False, pod_value is True
    explicitly_bad, implicitly_bad = [], []
    for container in _containers(spec):
        value = _map(container.get("securityContext")).get("runAsNonRoot")
        if value is not None:
            if value is False:
                explicitly_bad.append(_name(container))
        elif not pod_non_root:
            implicitly_bad.append(_name(container))
    setters = _setters(pod_bad, explicitly_bad)
    if setters:
        return CheckResult("runAsNonRoot != true",
                           f"{' and '.join(setters)} must not set securityContext.runAsNonRoot=false")
    if implicitly_bad:
        return CheckResult("runAsNonRoot != true",
                           f"pod or {_pluralize('container', 'containers', len(implicitly_bad))} "
                           f"{_join_quote(implicitly_bad)} must set securityContext.runAsNonRoot=true")
    return None


def _is_root(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value == 0


def _run_as_user(metadata: Obj, spec: Obj) -> CheckResult | None:
    pod_bad = _is_root(_map(spec.get("securityContext")).get("runAsUser"))
    bad = [_name(c) for c in _containers(spec) if _is_root(_map(c.get("securityContext")).get("runAsUser"))]
    setters = _setters(pod_bad, bad)
    return CheckResult("runAsUser=0", f"{' and '.join(setters)} must not set runAsUser=0") if setters else None


_RESTRICTED_SECCOMP = frozenset({"RuntimeDefault", "Localhost"})


def _seccomp_restricted(metadata: Obj, spec: Obj) -> CheckResult | None:
    values: set[str] = set()
    pod_type = _seccomp_type(spec)
    pod_bad = pod_type is not None and pod_type not in _RESTRICTED_SECCOMP
    if pod_bad:
        values.add(str(pod_type))
    pod_set = pod_type is not None and not pod_bad
    explicitly_bad, implicitly_bad = [], []
    for container in _containers(spec):
        container_type = _seccomp_type(container)
        if container_type is not None:
            if container_type not in _RESTRICTED_SECCOMP:
                explicitly_bad.append(_name(container))
                values.add(container_type)
        elif not pod_set:
            implicitly_bad.append(_name(container))
    details = []
    setters = _setters(pod_bad, explicitly_bad)
    if setters:
        details.append(f"{' and '.join(setters)} must not set securityContext.seccompProfile.type to "
                       f"{_join_quote(sorted(values))}")
    if implicitly_bad:
        details.append(f"pod or {_pluralize('container', 'containers', len(implicitly_bad))} "
                       f"{_join_quote(implicitly_bad)} must set securityContext.seccompProfile.type to "
                       '"RuntimeDefault" or "Localhost"')
    return CheckResult("seccompProfile", "; ".join(details)) if details else None


# ---------------------------------------------------------------------------------- the registry


def _only(minor: int, check: CheckFn, overrides: tuple[str, ...] = ()) -> tuple[_Revision, ...]:
    return (_Revision(minor, check, overrides),)


_CHECKS: tuple[_Check, ...] = (
    _Check("appArmorProfile", BASELINE, _only(0, _app_armor_profile)),
    _Check("capabilities_baseline", BASELINE, _only(0, _capabilities_baseline)),
    _Check("hostNamespaces", BASELINE, _only(0, _host_namespaces)),
    _Check("hostPathVolumes", BASELINE, _only(0, _host_path_volumes)),
    _Check("hostPorts", BASELINE, _only(0, _host_ports)),
    _Check("hostProbesAndHostLifecycle", BASELINE, _only(34, _host_probes_and_lifecycle)),
    _Check("privileged", BASELINE, _only(0, _privileged)),
    _Check("procMount_baseline", BASELINE, (_Revision(0, _proc_mount_strict),
                                            _Revision(35, _proc_mount_baseline_v1_35))),
    _Check("seLinuxOptions", BASELINE, (_Revision(0, _se_linux_options(_SELINUX_TYPES_V1_0)),
                                        _Revision(31, _se_linux_options(_SELINUX_TYPES_V1_31)))),
    _Check("seccompProfile_baseline", BASELINE, (_Revision(0, _seccomp_baseline_v1_0),
                                                 _Revision(19, _seccomp_baseline_v1_19))),
    _Check("sysctls", BASELINE, (_Revision(0, _sysctls(_SYSCTLS_V1_0)), _Revision(27, _sysctls(_SYSCTLS_V1_27)),
                                 _Revision(29, _sysctls(_SYSCTLS_V1_29)))),
    _Check("windowsHostProcess", BASELINE, _only(0, _windows_host_process)),
    _Check("allowPrivilegeEscalation", RESTRICTED, (_Revision(8, _allow_privilege_escalation),
                                                    _Revision(25, _windows_exempt(_allow_privilege_escalation)))),
    _Check("capabilities_restricted", RESTRICTED, (
        _Revision(22, _capabilities_restricted, ("capabilities_baseline",)),
        _Revision(25, _windows_exempt(_capabilities_restricted), ("capabilities_baseline",)))),
    # Upstream added it in 1.35 without replacing the baseline check; replacing it here keeps a
    # single "procMount" entry in the message (the restricted check is the stricter of the two).
    _Check("procMount_restricted", RESTRICTED, _only(35, _proc_mount_strict, ("procMount_baseline",))),
    _Check("restrictedVolumes", RESTRICTED, _only(0, _restricted_volumes, ("hostPathVolumes",))),
    _Check("runAsNonRoot", RESTRICTED, _only(0, _run_as_non_root)),
    _Check("runAsUser", RESTRICTED, _only(23, _run_as_user)),
    _Check("seccompProfile_restricted", RESTRICTED, (
        _Revision(19, _seccomp_restricted, ("seccompProfile_baseline",)),
        _Revision(25, _windows_exempt(_seccomp_restricted), ("seccompProfile_baseline",)))),
)

# Upstream's order: baseline IDs sorted (byte order), then restricted IDs sorted.
_ORDERED = tuple(sorted((c for c in _CHECKS if c.level == BASELINE), key=lambda c: c.id)) + \
    tuple(sorted((c for c in _CHECKS if c.level == RESTRICTED), key=lambda c: c.id))


def evaluate_pod(level: str, minor: int, metadata: Obj, spec: Obj) -> tuple[CheckResult, ...]:
    """The failed checks of `level` at policy version v1.`minor` (LATEST_MINOR for latest), in order."""
    if level not in LEVELS:
        raise ValueError(f"unknown Pod Security level {level!r}")
    if level == PRIVILEGED:
        return ()
    chosen: list[tuple[_Check, _Revision]] = []
    for check in _ORDERED:
        if check.level == RESTRICTED and level != RESTRICTED:
            continue
        revision = check.revision_for(minor)
        if revision is not None:
            chosen.append((check, revision))
    overridden = {override for _, revision in chosen for override in revision.overrides}
    failures = []
    for check, revision in chosen:
        if check.id in overridden:
            continue
        result = revision.check(metadata, spec)
        if result is not None:
            failures.append(result)
    return tuple(failures)
