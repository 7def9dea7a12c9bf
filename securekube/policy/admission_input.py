"""AdmissionReview documents for admission policies: the `input` they are evaluated with.

Admission policies read `input.request` as in an admission.k8s.io/v1 AdmissionReview (the shape
OPA's Kubernetes admission tutorials and kube-mgmt use). Tools that start from a plain object
(a policy sample, `securekube policy eval`, an object stored in a cluster) wrap it here in the
review its creation would produce: operation CREATE, the object's own kind, the resource name
Kubernetes' discovery-less guess gives that kind, and a user (by default the lab administrator).

A document that already is an AdmissionReview is used as it is, so a sample or an input file can
exercise UPDATE, DELETE or CONNECT, or a particular user.
"""
from __future__ import annotations

import re
from collections.abc import Mapping
from typing import Any

__all__ = [
    "ADMISSION_REVIEW_API_VERSION",
    "ADMISSION_REVIEW_KIND",
    "SAMPLE_USER",
    "as_admission_review",
    "group_version",
    "guess_resource",
    "is_admission_review",
    "review_for_object",
]

ADMISSION_REVIEW_API_VERSION = "admission.k8s.io/v1"
ADMISSION_REVIEW_KIND = "AdmissionReview"
OLDER_REVIEW_API_VERSIONS = frozenset({"admission.k8s.io/v1beta1"})
# The lab's administrator (admin.kubeconfig): who creates a sample unless the sample says otherwise.
SAMPLE_USER: Mapping[str, Any] = {"username": "admin", "groups": ["securekube:cluster-admins", "system:authenticated"]}
SAMPLE_UID = "00000000-0000-0000-0000-000000000000"

_VOWEL_Y = re.compile(r"[aeiou]y$")


def is_admission_review(document: Mapping[str, Any]) -> bool:
    return document.get("kind") == ADMISSION_REVIEW_KIND and (
        document.get("apiVersion") == ADMISSION_REVIEW_API_VERSION
        or document.get("apiVersion") in OLDER_REVIEW_API_VERSIONS)


def group_version(api_version: str) -> tuple[str, str]:
    """("apps", "v1") for "apps/v1", ("", "v1") for the core group's "v1"."""
    group, _, version = api_version.rpartition("/")
    return group, version


def guess_resource(kind: str) -> str:
    """The plural resource name of `kind`, guessed the way Kubernetes guesses without discovery.

    Lower-cased kind; "s" ends take "es", a consonant and "y" take "ies", the rest take "s"
    (Pod -> pods, NetworkPolicy -> networkpolicies, Ingress -> ingresses).
    """
    lowered = kind.lower()
    if not lowered:
        return ""
    if lowered.endswith("s"):
        return lowered + "es"
    if lowered.endswith("y") and not _VOWEL_Y.search(lowered):
        return lowered[:-1] + "ies"
    return lowered + "s"


def review_for_object(
    obj: Mapping[str, Any],
    *,
    operation: str = "CREATE",
    user: Mapping[str, Any] = SAMPLE_USER,
    namespace: str | None = None,
    old_object: Mapping[str, Any] | None = None,
) -> dict[str, Any]:
    """The AdmissionReview for creating `obj` (or another operation on it) as `user`."""
    group, version = group_version(str(obj.get("apiVersion", "")))
    kind = str(obj.get("kind", ""))
    metadata = obj.get("metadata") if isinstance(obj.get("metadata"), Mapping) else {}
    name = str(metadata.get("name", "") or "")
    if namespace is None:
        namespace = str(metadata.get("namespace", "") or "")
    if kind == "Namespace":
        namespace = name  # as upstream: a Namespace's request carries its own name as namespace
    gvk = {"group": group, "version": version, "kind": kind}
    gvr = {"group": group, "version": version, "resource": guess_resource(kind)}
    request: dict[str, Any] = {
        "uid": SAMPLE_UID,
        "kind": gvk,
        "resource": gvr,
        "requestKind": gvk,
        "requestResource": gvr,
        "name": name,
        "operation": operation,
        "userInfo": dict(user),
        "object": None if operation == "DELETE" else dict(obj),
        "oldObject": dict(old_object) if old_object is not None else (dict(obj) if operation == "DELETE" else None),
        "dryRun": False,
    }
    if namespace:
        request["namespace"] = namespace
    return {"apiVersion": ADMISSION_REVIEW_API_VERSION, "kind": ADMISSION_REVIEW_KIND, "request": request}


def as_admission_review(document: Mapping[str, Any]) -> dict[str, Any]:
    """`document` itself when it is an AdmissionReview, else the review of creating it."""
    if is_admission_review(document):
        return dict(document)
    return review_for_object(document)
