"""The review APIs: answers computed per request, never stored.

TokenReview (is this token valid, and whose is it), SelfSubjectReview (`kubectl auth whoami`),
SubjectAccessReview / LocalSubjectAccessReview / SelfSubjectAccessReview (`kubectl auth can-i`),
SelfSubjectRulesReview (`kubectl auth can-i --list`). Each asks the same authenticator or
authorizer the request path uses, so the answer is the decision a real request would get.
"""
from __future__ import annotations

from typing import Any, Callable, Protocol

from securekube.api import errors
from securekube.api.errors import Cause
from securekube.authn.interfaces import AuthenticationError, Authenticator, Credentials, UserInfo
from securekube.authz.interfaces import Attributes, Authorizer, Verdict
from securekube.registry.resource import ResourceType


class TokenAuthentication(Protocol):
    """What a TokenReview needs from the token authenticators (see apiserver/serviceaccounts.py)."""

    api_audiences: tuple[str, ...]

    def authenticator(self, audiences: tuple[str, ...] | None = None) -> Authenticator: ...

    def token_audiences(self, token: str, requested: tuple[str, ...]) -> list[str]: ...


def _invalid(t: ResourceType, field: str, message: str) -> errors.ApiError:
    return errors.invalid(t.kind, "", [Cause("FieldValueInvalid", message, field)], t.group)


def attributes_from_spec(t: ResourceType, spec: dict, user: UserInfo) -> Attributes:
    resource, non_resource = spec.get("resourceAttributes"), spec.get("nonResourceAttributes")
    if (resource is None) == (non_resource is None):
        raise _invalid(t, "spec.resourceAttributes",
                       "Invalid value: exactly one of nonResourceAttributes or resourceAttributes must be specified")
    if resource is not None:
        if not isinstance(resource, dict):
            raise _invalid(t, "spec.resourceAttributes", "Invalid value: must be an object")
        return Attributes(user=user, verb=str(resource.get("verb") or ""), resource_request=True,
                          namespace=str(resource.get("namespace") or ""), api_group=str(resource.get("group") or ""),
                          api_version=str(resource.get("version") or ""), resource=str(resource.get("resource") or ""),
                          subresource=str(resource.get("subresource") or ""), name=str(resource.get("name") or ""))
    if not isinstance(non_resource, dict):
        raise _invalid(t, "spec.nonResourceAttributes", "Invalid value: must be an object")
    return Attributes(user=user, verb=str(non_resource.get("verb") or ""), resource_request=False,
                      path=str(non_resource.get("path") or ""))


class Reviews:
    def __init__(self, authorizer: Authorizer, tokens: TokenAuthentication | None,
                 rules_for: Callable[[UserInfo, str], dict] | None) -> None:
        self._authorizer = authorizer
        self._tokens = tokens
        self._rules_for = rules_for

    def create(self, t: ResourceType, namespace: str, body: Any, user: UserInfo) -> dict:
        if not isinstance(body, dict) or not isinstance(body.get("spec", {}), dict):
            raise errors.bad_request(f"a {t.kind} must be an object with a spec")
        spec = body.get("spec") or {}
        status = getattr(self, f"_{t.kind}")(t, namespace, spec, user)
        meta = dict(body.get("metadata") or {})
        meta.setdefault("creationTimestamp", None)
        return {"kind": t.kind, "apiVersion": t.api_version, "metadata": meta, "spec": spec, "status": status}

    def _decide(self, attrs: Attributes) -> dict:
        decision = self._authorizer.authorize(attrs)
        status: dict[str, Any] = {"allowed": decision.verdict is Verdict.ALLOW}
        if decision.verdict is Verdict.DENY:
            status["denied"] = True
        if decision.reason:
            status["reason"] = decision.reason
        return status

    def _SubjectAccessReview(self, t: ResourceType, namespace: str, spec: dict, requester: UserInfo) -> dict:
        if not spec.get("user") and not spec.get("groups"):
            raise _invalid(t, "spec.user", 'Invalid value: "": at least one of user or group must be specified')
        extra = {k: tuple(v) for k, v in (spec.get("extra") or {}).items()}
        subject = UserInfo(str(spec.get("user") or ""), str(spec.get("uid") or ""),
                           tuple(spec.get("groups") or ()), extra)
        return self._decide(attributes_from_spec(t, spec, subject))

    def _LocalSubjectAccessReview(self, t: ResourceType, namespace: str, spec: dict, requester: UserInfo) -> dict:
        resource = spec.get("resourceAttributes")
        if not isinstance(resource, dict) or spec.get("nonResourceAttributes") is not None:
            raise _invalid(t, "spec.resourceAttributes", "Invalid value: resourceAttributes are required and "
                                                         "nonResourceAttributes are not allowed")
        if resource.get("namespace") not in (None, "", namespace):
            raise _invalid(t, "spec.resourceAttributes.namespace",
                           f'Invalid value: "{resource["namespace"]}": must match metadata.namespace')
        resource["namespace"] = namespace
        return self._SubjectAccessReview(t, namespace, spec, requester)

    def _SelfSubjectAccessReview(self, t: ResourceType, namespace: str, spec: dict, requester: UserInfo) -> dict:
        return self._decide(attributes_from_spec(t, spec, requester))

    def _SelfSubjectRulesReview(self, t: ResourceType, namespace: str, spec: dict, requester: UserInfo) -> dict:
        if self._rules_for is None:
            raise errors.service_unavailable("rules reviews are not available")
        return self._rules_for(requester, str(spec.get("namespace") or ""))

    def _SelfSubjectReview(self, t: ResourceType, namespace: str, spec: dict, requester: UserInfo) -> dict:
        return {"userInfo": requester.to_dict()}

    def _TokenReview(self, t: ResourceType, namespace: str, spec: dict, requester: UserInfo) -> dict:
        token = spec.get("token")
        if not isinstance(token, str) or not token:
            raise _invalid(t, "spec.token", 'Invalid value: "": token is required')
        if self._tokens is None:
            return {"authenticated": False, "error": "no token authenticator is configured"}
        requested = spec.get("audiences") or []
        if not isinstance(requested, list) or not all(isinstance(a, str) for a in requested):
            raise _invalid(t, "spec.audiences", "Invalid value: must be a list of strings")
        try:
            user = self._tokens.authenticator(tuple(requested) or None).authenticate(Credentials((), f"Bearer {token}"))
        except AuthenticationError:
            user = None
        if user is None:
            # Like upstream, the caller learns that the token is invalid, not why.
            return {"authenticated": False, "error": "invalid bearer token"}
        audiences = self._tokens.token_audiences(token, tuple(requested) or self._tokens.api_audiences)
        return {"authenticated": True, "user": user.to_dict(), "audiences": audiences}
