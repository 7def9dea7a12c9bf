"""Builders for RBAC objects shared by the authorization tests."""
from __future__ import annotations

from typing import Any


def rule(verbs, groups=None, resources=None, names=None, urls=None) -> dict[str, Any]:
    """A PolicyRule; only the fields given are set."""
    out: dict[str, Any] = {"verbs": list(verbs)}
    if groups is not None:
        out["apiGroups"] = list(groups)
    if resources is not None:
        out["resources"] = list(resources)
    if names is not None:
        out["resourceNames"] = list(names)
    if urls is not None:
        out["nonResourceURLs"] = list(urls)
    return out
