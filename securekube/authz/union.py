"""Asks each authorizer in order; the first ALLOW or DENY wins, otherwise deny (default deny)."""
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
        return Decision(Verdict.DENY, "; ".join(reasons) or "no authorizer allowed the request")
