"""Asks each authorizer in order; the first ALLOW or DENY wins.

When every authorizer abstains the union abstains too (NO_OPINION): the authorization stage
allows only ALLOW, so that is a deny (default deny), while a SubjectAccessReview can still tell
"nobody allowed it" (allowed: false) from "a policy denied it" (denied: true), as upstream.
"""
from __future__ import annotations

from securekube.authz.interfaces import Attributes, Authorizer, Decision, Verdict


class UnionAuthorizer:
    def __init__(self, *authorizers: Authorizer) -> None:
        if not authorizers:
            raise ValueError("at least one authorizer is required")  # never start without authorization
        self._authorizers = authorizers

    def authorize(self, attrs: Attributes) -> Decision:
        reasons = []
        for authorizer in self._authorizers:
            try:
                decision = authorizer.authorize(attrs)
            except Exception as exc:  # an authorizer that fails denies: fail closed
                return Decision(Verdict.DENY, f"{type(authorizer).__name__} error: {type(exc).__name__}")
            if decision.verdict is not Verdict.NO_OPINION:
                return decision
            if decision.reason:
                reasons.append(decision.reason)
        return Decision(Verdict.NO_OPINION, "; ".join(reasons))
