"""AppArmor for pods: which profile a container asks for, and whether this host can enforce it.

Upstream semantics (k8s.io/kubernetes pkg/security/apparmor):
- a container's profile comes from, in order, its `securityContext.appArmorProfile`, the old
  annotation `container.apparmor.security.beta.kubernetes.io/<container>`, the pod's
  `securityContext.appArmorProfile`; none means "let the runtime decide";
- a pod that asks for any profile other than Unconfined is admitted only if the host has AppArmor
  enabled ("Cannot enforce AppArmor: AppArmor is not enabled on the host"), and a Localhost profile
  only if it is loaded in the kernel.
"""
from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securekube.kubelet.cri import runtime_v1_pb2 as pb
from securekube.kubelet.errors import PodAdmissionError

ANNOTATION_PREFIX = "container.apparmor.security.beta.kubernetes.io/"
RUNTIME_DEFAULT = "RuntimeDefault"
LOCALHOST = "Localhost"
UNCONFINED = "Unconfined"
# The old annotation's values.
_ANNOTATION_RUNTIME_DEFAULT = "runtime/default"
_ANNOTATION_UNCONFINED = "unconfined"
_ANNOTATION_LOCALHOST_PREFIX = "localhost/"
# Upstream's kubelet admission reason for AppArmor rejections.
ADMISSION_REASON = "AppArmor"


@dataclass(frozen=True)
class AppArmorProfile:
    """A requested AppArmor profile: its type and, for Localhost, the profile name."""

    type: str
    localhost_profile: str = ""

    def to_cri(self) -> pb.SecurityProfile:
        kinds = {RUNTIME_DEFAULT: pb.SecurityProfile.RuntimeDefault,
                 UNCONFINED: pb.SecurityProfile.Unconfined,
                 LOCALHOST: pb.SecurityProfile.Localhost}
        return pb.SecurityProfile(profile_type=kinds[self.type], localhost_ref=self.localhost_profile)

    def to_cri_deprecated_string(self) -> str:
        """The value of the deprecated CRI `apparmor_profile` field, for runtimes that predate the typed one."""
        if self.type == LOCALHOST:
            return _ANNOTATION_LOCALHOST_PREFIX + self.localhost_profile
        return _ANNOTATION_RUNTIME_DEFAULT if self.type == RUNTIME_DEFAULT else _ANNOTATION_UNCONFINED


@dataclass(frozen=True)
class AppArmorHost:
    """What the host kernel says about AppArmor, read from sysfs/securityfs under `sysfs_root`."""

    sysfs_root: Path = Path("/sys")

    def enabled(self) -> bool:
        """Whether the AppArmor LSM is enabled (the test runc and upstream use)."""
        flag = self.sysfs_root / "module" / "apparmor" / "parameters" / "enabled"
        try:
            return flag.read_text().strip().startswith("Y")
        except OSError:
            return False

    def loaded_profiles(self) -> frozenset[str]:
        """Names of the profiles loaded in the kernel; raises OSError when they cannot be read."""
        listing = self.sysfs_root / "kernel" / "security" / "apparmor" / "profiles"
        names = set()
        for line in listing.read_text().splitlines():
            # Each line is "<name> (<mode>)"; a name may itself contain spaces.
            name, _, _mode = line.rstrip().rpartition(" (")
            if name:
                names.add(name)
        return frozenset(names)


def _from_field(raw: Any, where: str) -> AppArmorProfile:
    if not isinstance(raw, Mapping):
        raise PodAdmissionError(ADMISSION_REASON, f"{where}: must be an object")
    kind = raw.get("type")
    localhost = raw.get("localhostProfile") or ""
    if kind == LOCALHOST:
        if not localhost:
            raise PodAdmissionError(ADMISSION_REASON,
                                    f"{where}.localhostProfile: Required value: must be set when "
                                    "AppArmor type is Localhost")
        return AppArmorProfile(LOCALHOST, localhost)
    if kind in (RUNTIME_DEFAULT, UNCONFINED):
        if localhost:
            raise PodAdmissionError(ADMISSION_REASON,
                                    f"{where}.localhostProfile: Invalid value: can only be set when "
                                    "AppArmor type is Localhost")
        return AppArmorProfile(kind)
    raise PodAdmissionError(ADMISSION_REASON, f"{where}.type: Unsupported value: {kind!r}: "
                            'supported values: "Localhost", "RuntimeDefault", "Unconfined"')


def _from_annotation(value: str, where: str) -> AppArmorProfile:
    if value == _ANNOTATION_RUNTIME_DEFAULT:
        return AppArmorProfile(RUNTIME_DEFAULT)
    if value == _ANNOTATION_UNCONFINED:
        return AppArmorProfile(UNCONFINED)
    if value.startswith(_ANNOTATION_LOCALHOST_PREFIX) and len(value) > len(_ANNOTATION_LOCALHOST_PREFIX):
        return AppArmorProfile(LOCALHOST, value[len(_ANNOTATION_LOCALHOST_PREFIX):])
    # Upstream ignores a malformed annotation; ignoring a security request would fail open.
    raise PodAdmissionError(ADMISSION_REASON, f"invalid AppArmor profile name: {value!r} in {where}")


def profile_for(pod: Mapping[str, Any], container: Mapping[str, Any]) -> AppArmorProfile | None:
    """The AppArmor profile `container` of `pod` asks for, or None if it asks for none."""
    container_sc = container.get("securityContext") or {}
    name = container.get("name", "")
    if container_sc.get("appArmorProfile") is not None:
        return _from_field(container_sc["appArmorProfile"],
                           f"containers[{name}].securityContext.appArmorProfile")
    annotations = (pod.get("metadata") or {}).get("annotations") or {}
    annotation = annotations.get(ANNOTATION_PREFIX + name)
    if annotation is not None:
        return _from_annotation(annotation, f"annotation {ANNOTATION_PREFIX + name}")
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    if pod_sc.get("appArmorProfile") is not None:
        return _from_field(pod_sc["appArmorProfile"], "spec.securityContext.appArmorProfile")
    return None


def _all_containers(pod: Mapping[str, Any]) -> Iterator[Mapping[str, Any]]:
    spec = pod.get("spec") or {}
    for key in ("initContainers", "containers", "ephemeralContainers"):
        yield from spec.get(key) or ()


def admit(pod: Mapping[str, Any], host: AppArmorHost) -> None:
    """Admit `pod` on this host or raise PodAdmissionError with upstream's message."""
    profiles = [profile_for(pod, container) for container in _all_containers(pod)]
    required = [profile for profile in profiles if profile is not None and profile.type != UNCONFINED]
    if not required:
        return
    if not host.enabled():
        raise PodAdmissionError(ADMISSION_REASON,
                                "Cannot enforce AppArmor: AppArmor is not enabled on the host")
    localhost = [profile.localhost_profile for profile in required if profile.type == LOCALHOST]
    if not localhost:
        return
    try:
        loaded = host.loaded_profiles()
    except OSError as error:
        raise PodAdmissionError(ADMISSION_REASON, "Cannot enforce AppArmor: could not read loaded "
                                f"profiles: {error.strerror or error}") from None
    for name in localhost:
        if name not in loaded:
            raise PodAdmissionError(ADMISSION_REASON,
                                    f'Cannot enforce AppArmor: profile "{name}" is not loaded')
