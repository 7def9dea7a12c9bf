"""The OPA authorizer: Rego policies that may DENY a request, or abstain. It never ALLOWs.

In the chain it sits between the Node authorizer and RBAC (Node -> OPA -> RBAC). RBAC can only
grant, so this is where rules RBAC cannot express live, such as "nobody reads secrets in
namespace audit-system except the detection sidecar" - a rule that must bind system:masters too.
Granting is left to RBAC: whatever the policies say, this authorizer's verdict is DENY or
NO_OPINION, never ALLOW.

Policy convention (policies/README.md): each authorization policy is a package
`securekube.authz.<name>` defining `deny contains msg if {...}` (Rego v1). Its `input` is the
request as an authorization.k8s.io/v1 SubjectAccessReview, serialised as upstream serialises it
(fields that are empty are left out), so a policy written for an OPA behind a Kubernetes
authorization webhook reads the same document. All policies are asked in one evaluation.

- some policy gives messages -> DENY, reason "<policy>: <message>" for each (joined by "; ");
- no policy gives a message -> NO_OPINION (the next authorizer decides);
- anything else -> DENY (fail closed): an engine error, a timeout (`eval_timeout`, 100 ms by
  default), a policy whose `deny` is undefined or not a set of messages.
"""
from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes, Decision, Verdict
from securekube.authz.rbac_model import go_quote
from securekube.policy.interfaces import DEFAULT_EVAL_TIMEOUT, PolicyEngine, PolicyError
from securekube.policy.loader import AUTHORIZATION_PACKAGE, Policy

__all__ = [
    "SAR_API_VERSION",
    "SAR_KIND",
    "OPAAuthorizer",
    "OPAAuthorizerConfig",
    "subject_access_review",
]

SAR_API_VERSION = "authorization.k8s.io/v1"
SAR_KIND = "SubjectAccessReview"
# The start-up check may compile every policy first; a request never waits this long.
VERIFY_TIMEOUT = 5.0
_RESULT = "deny"


@dataclass(frozen=True)
class OPAAuthorizerConfig:
    """Limits of the OPA authorizer."""

    eval_timeout: float = DEFAULT_EVAL_TIMEOUT  # seconds; a slower evaluation is a DENY

    def __post_init__(self) -> None:
        if not self.eval_timeout > 0:
            raise ValueError("eval_timeout must be positive")


def subject_access_review(attrs: Attributes) -> dict[str, Any]:
    """The request as an authorization.k8s.io/v1 SubjectAccessReview, the policies' `input`.

    As upstream's JSON (`omitempty`), empty fields are absent rather than "": a policy tests
    `object.get(input.spec.resourceAttributes, "namespace", "") == ""` for the cluster scope.
    """
    user = attrs.user
    spec = _without_empty({
        "user": user.username,
        "groups": list(user.groups),
        "uid": user.uid,
        "extra": {key: list(values) for key, values in user.extra.items()},
    })
    if attrs.resource_request:
        spec["resourceAttributes"] = _without_empty({
            "namespace": attrs.namespace,
            "verb": attrs.verb,
            "group": attrs.api_group,
            "version": attrs.api_version,
            "resource": attrs.resource,
            "subresource": attrs.subresource,
            "name": attrs.name,
        })
    else:
        spec["nonResourceAttributes"] = _without_empty({"path": attrs.path, "verb": attrs.verb})
    return {"apiVersion": SAR_API_VERSION, "kind": SAR_KIND, "spec": spec}


def _without_empty(fields: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in fields.items() if value}


class OPAAuthorizer:
    """Denies what an authorization policy denies; otherwise has no opinion. Never allows.

    `policies` must already be loaded into `engine` (see `securekube.policy.loader.load_policies`);
    call `verify()` at start-up to fail then, rather than deny every request, when they are not.
    Safe to share between threads: it holds no state besides the engine, which is.
    """

    def __init__(
        self, engine: PolicyEngine, policies: Sequence[Policy], config: OPAAuthorizerConfig = OPAAuthorizerConfig()
    ) -> None:
        if not policies:
            raise ValueError("the OPA authorizer needs at least one authorization policy")
        not_authorization = [p.name for p in policies if not p.is_authorization]
        if not_authorization:
            prefix = ".".join(AUTHORIZATION_PACKAGE)
            raise ValueError(f"not authorization policies (package {prefix}.<name>): {', '.join(not_authorization)}")
        packages = {policy.name: policy.module.package[-1] for policy in policies}
        if len(packages) != len(policies) or len(set(packages.values())) != len(policies):
            raise ValueError("authorization policy names and packages must be unique")
        self._engine = engine
        self._config = config
        self._names = tuple(packages)
        # One query for all policies. A comprehension leaves out a policy whose `deny` is
        # undefined instead of making the whole answer undefined, so it can be named.
        authz = "data" + "".join(f"[{json.dumps(segment)}]" for segment in AUTHORIZATION_PACKAGE)
        self._query = f"{_RESULT} := {{name: {authz}[pkg].deny | some name, pkg in {json.dumps(packages)}}}"

    def verify(self, timeout: float = VERIFY_TIMEOUT) -> None:
        """Raise PolicyError unless every policy answers (its `deny` defined) for a plain request."""
        anonymous = UserInfo(username="system:anonymous", groups=("system:unauthenticated",))
        probe = Attributes(user=anonymous, verb="get", resource_request=False, path="/healthz")
        rows = self._engine.evaluate(self._query, subject_access_review(probe), timeout=timeout)
        answered = rows[0].get(_RESULT) if len(rows) == 1 else None
        missing = [name for name in self._names if not isinstance(answered, dict) or name not in answered]
        if missing:
            raise PolicyError(f"authorization policies not loaded or without 'deny': {', '.join(missing)}")

    def authorize(self, attrs: Attributes) -> Decision:
        try:
            rows = self._engine.evaluate(self._query, subject_access_review(attrs), timeout=self._config.eval_timeout)
        except PolicyError as exc:
            # One line: engine messages can carry a multi-line source excerpt.
            return Decision(Verdict.DENY, f"opa: policy evaluation failed: {' '.join(str(exc).split())}")
        except Exception as exc:  # an engine that breaks its contract still denies
            return Decision(Verdict.DENY, f"opa: policy evaluation failed: {type(exc).__name__}")
        answered = rows[0].get(_RESULT) if len(rows) == 1 else None
        if not isinstance(answered, dict):
            return Decision(Verdict.DENY, "opa: the policies gave no answer")
        reasons = []
        for name in self._names:
            messages = answered.get(name)
            if messages is None:
                reasons.append(f"{name}: 'deny' is undefined")
            elif not isinstance(messages, list):
                reasons.append(f"{name}: 'deny' is not a set of messages")
            else:
                reasons += [f"{name}: {_printable(message)}" for message in messages]
        if reasons:
            return Decision(Verdict.DENY, "; ".join(reasons))
        return Decision(Verdict.NO_OPINION)


def _printable(message: Any) -> str:
    # A message may quote request fields (a name with a newline, say): never let it forge a log line.
    text = message if isinstance(message, str) else json.dumps(message)
    return text if text.isprintable() else go_quote(text)
