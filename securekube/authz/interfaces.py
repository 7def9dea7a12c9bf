"""Authorization: may this identity do this to that.

Each authorizer returns a `Decision`; `union.py` asks them in order and the first ALLOW or
DENY wins. If every authorizer has NO_OPINION the request is denied (default deny).
"""
from __future__ import annotations

import enum
from dataclasses import dataclass
from typing import Protocol

from securekube.api.selectors import FieldRequirement
from securekube.authn.interfaces import UserInfo


@dataclass(frozen=True)
class Attributes:
    """The request as authorization sees it (the SubjectAccessReview spec shape)."""

    user: UserInfo
    verb: str  # get list watch create update patch delete deletecollection ... (API verbs, lower case)
    resource_request: bool
    namespace: str = ""
    api_group: str = ""
    api_version: str = ""
    resource: str = ""
    subresource: str = ""
    name: str = ""
    path: str = ""  # for non-resource requests, e.g. "/version"
    # The request's fieldSelector (list/watch), so the Node authorizer can scope a kubelet to its pods.
    field_selector: tuple[FieldRequirement, ...] = ()


class Verdict(enum.Enum):
    ALLOW = "allow"
    DENY = "deny"
    NO_OPINION = "no-opinion"


@dataclass(frozen=True)
class Decision:
    verdict: Verdict
    reason: str = ""  # why, for the audit log and `rbac explain`; never shown to a denied client in detail


class Authorizer(Protocol):
    def authorize(self, attrs: Attributes) -> Decision: ...
