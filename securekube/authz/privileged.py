"""`system:masters` may do anything RBAC would decide, as upstream: it bypasses RBAC only.

It sits after the Node and OPA authorizers in the union, so an OPA deny still applies to it
(that is what the OPA policies are for), and it never decides for anyone else.
"""
from __future__ import annotations

from securekube.authz.interfaces import Attributes, Decision, Verdict

MASTERS_GROUP = "system:masters"


class PrivilegedGroupAuthorizer:
    def __init__(self, groups: tuple[str, ...] = (MASTERS_GROUP,)) -> None:
        self._groups = frozenset(groups)

    def authorize(self, attrs: Attributes) -> Decision:
        granted = self._groups.intersection(attrs.user.groups)
        if granted:
            return Decision(Verdict.ALLOW, f"allowed as a member of {sorted(granted)[0]}")
        return Decision(Verdict.NO_OPINION)
