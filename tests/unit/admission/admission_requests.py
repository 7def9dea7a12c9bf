"""Builders of admission requests for the admission tests."""
from __future__ import annotations

from typing import Any

from securekube.admission.interfaces import AdmissionRequest
from securekube.authn.interfaces import UserInfo

ADA = UserInfo(username="ada", groups=("developers", "system:authenticated"))


def namespace(name: str, labels: dict[str, str] | None = None) -> dict[str, Any]:
    return {"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": name, "labels": labels or {}}}


def pod(name: str = "web", ns: str = "team-a", **spec: Any) -> dict[str, Any]:
    containers = spec.pop("containers", [{"name": name, "image": "localhost/web:1"}])
    return {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": name, "namespace": ns},
            "spec": {"containers": containers, **spec}}


def pod_request(obj: dict[str, Any] | None, *, operation: str = "CREATE", old: dict[str, Any] | None = None,
                sub_resource: str = "", user: UserInfo = ADA, namespace_labels: dict[str, str] | None = None,
                namespace_object: dict[str, Any] | None | bool = True) -> AdmissionRequest:
    """A request about a pod in namespace team-a (or the pod's own namespace)."""
    source = obj if obj is not None else old or {}
    ns = source.get("metadata", {}).get("namespace", "team-a")
    name = source.get("metadata", {}).get("name", "")
    ns_object = namespace(ns, namespace_labels) if namespace_object is True else namespace_object or None
    return AdmissionRequest(
        uid="uid-1", kind={"group": "", "version": "v1", "kind": "Pod"},
        resource={"group": "", "version": "v1", "resource": "pods"}, sub_resource=sub_resource, name=name,
        namespace=ns, operation=operation, user_info=user, object=obj, old_object=old,
        namespace_object=ns_object)


def request(resource: str, *, operation: str = "CREATE", obj: dict[str, Any] | None = None,
            old: dict[str, Any] | None = None, group: str = "", kind: str = "", name: str = "",
            namespace_name: str = "", sub_resource: str = "", user: UserInfo = ADA,
            namespace_object: dict[str, Any] | None = None) -> AdmissionRequest:
    return AdmissionRequest(
        uid="uid-2", kind={"group": group, "version": "v1", "kind": kind or resource.rstrip("s").capitalize()},
        resource={"group": group, "version": "v1", "resource": resource}, sub_resource=sub_resource, name=name,
        namespace=namespace_name, operation=operation, user_info=user, object=obj, old_object=old,
        namespace_object=namespace_object)
