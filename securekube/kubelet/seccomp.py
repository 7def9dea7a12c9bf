"""Seccomp for containers: which profile applies, and its CRI form.

Upstream semantics (kubelet kuberuntime getSeccompProfile, with SeccompDefault on, CIS 4.2.14):
the container's `securityContext.seccompProfile` wins, then the pod's, and with neither the
container runs under the runtime's default profile — never unconfined by omission. A Localhost
profile is a path relative to the kubelet's seccomp directory; we check it exists and is a JSON
object before asking the runtime, so the failure is a clear message rather than a runc error.
"""
from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from securekube.kubelet.cri import runtime_v1_pb2 as pb
from securekube.kubelet.errors import ContainerConfigError

RUNTIME_DEFAULT = "RuntimeDefault"
LOCALHOST = "Localhost"
UNCONFINED = "Unconfined"


@dataclass(frozen=True)
class SeccompProfile:
    """A requested seccomp profile: its type and, for Localhost, the path under the seccomp directory."""

    type: str
    localhost_profile: str = ""


def _from_field(raw: Any, where: str) -> SeccompProfile:
    if not isinstance(raw, Mapping):
        raise ContainerConfigError(f"{where}: must be an object")
    kind = raw.get("type")
    localhost = raw.get("localhostProfile") or ""
    if kind == LOCALHOST:
        if not localhost:
            raise ContainerConfigError("localhostProfile must be set if seccompProfile type is Localhost.")
        return SeccompProfile(LOCALHOST, localhost)
    if kind in (RUNTIME_DEFAULT, UNCONFINED):
        if localhost:
            raise ContainerConfigError(f"{where}.localhostProfile: Invalid value: can only be set "
                                       "when seccomp type is Localhost")
        return SeccompProfile(kind)
    raise ContainerConfigError(f"{where}.type: Unsupported value: {kind!r}: supported values: "
                               '"Localhost", "RuntimeDefault", "Unconfined"')


def profile_for(pod: Mapping[str, Any], container: Mapping[str, Any]) -> SeccompProfile:
    """The seccomp profile that applies to `container` of `pod` (RuntimeDefault when none is set)."""
    container_sc = container.get("securityContext") or {}
    if container_sc.get("seccompProfile") is not None:
        return _from_field(container_sc["seccompProfile"],
                           f"containers[{container.get('name', '')}].securityContext.seccompProfile")
    pod_sc = (pod.get("spec") or {}).get("securityContext") or {}
    if pod_sc.get("seccompProfile") is not None:
        return _from_field(pod_sc["seccompProfile"], "spec.securityContext.seccompProfile")
    return SeccompProfile(RUNTIME_DEFAULT)


def localhost_profile_path(seccomp_root: Path, localhost_profile: str) -> Path:
    """The file of a Localhost profile; raises unless it is a readable JSON object under the root."""
    relative = PurePosixPath(localhost_profile)
    # Upstream API validation: a descending relative path (no absolute path, no "..").
    if relative.is_absolute() or ".." in relative.parts:
        raise ContainerConfigError(f"seccomp localhostProfile {localhost_profile!r} must be a "
                                   f"relative path under the kubelet seccomp directory without '..'")
    path = seccomp_root / relative
    try:
        document = json.loads(path.read_text())
    except FileNotFoundError:
        raise ContainerConfigError(f"cannot load seccomp profile {str(path)!r}: the file does not "
                                   f"exist (localhostProfile {localhost_profile!r})") from None
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise ContainerConfigError(f"cannot load seccomp profile {str(path)!r}: "
                                   f"{getattr(error, 'strerror', None) or 'not valid JSON'}") from None
    if not isinstance(document, dict) or "defaultAction" not in document:
        raise ContainerConfigError(f"cannot load seccomp profile {str(path)!r}: not a seccomp "
                                   "profile (a JSON object with defaultAction)")
    return path


def to_cri(profile: SeccompProfile, seccomp_root: Path) -> tuple[pb.SecurityProfile, str]:
    """The CRI typed profile and the deprecated `seccomp_profile_path` string for the same profile."""
    if profile.type == LOCALHOST:
        path = localhost_profile_path(seccomp_root, profile.localhost_profile)
        return (pb.SecurityProfile(profile_type=pb.SecurityProfile.Localhost, localhost_ref=str(path)),
                f"localhost/{path}")
    if profile.type == UNCONFINED:
        return pb.SecurityProfile(profile_type=pb.SecurityProfile.Unconfined), "unconfined"
    return pb.SecurityProfile(profile_type=pb.SecurityProfile.RuntimeDefault), "runtime/default"
