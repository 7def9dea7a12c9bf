"""Impersonation stage: `Impersonate-*` headers (kubectl --as/--as-group) switch the identity, if allowed.

Each impersonated attribute needs its own `impersonate` permission, checked against the real
requester, as upstream: users (or serviceaccounts), groups, uids and userextras/<key>. The
original identity is kept in the scope for the audit log.
"""
from __future__ import annotations

from typing import Any
from urllib.parse import unquote

from securekube.api.errors import ApiError, bad_request
from securekube.apiserver.requestinfo import RequestInfo
from securekube.apiserver.stages.authorization import attributes_for, forbidden_message
from securekube.apiserver.stages.respond import send_status
from securekube.authn.interfaces import UserInfo
from securekube.authn.union import AUTHENTICATED_GROUP
from securekube.authz.interfaces import Authorizer, Verdict

SA_PREFIX = "system:serviceaccount:"
EXTRA_PREFIX = "impersonate-extra-"


def _requested(headers: list[tuple[bytes, bytes]]) -> tuple[str | None, list[str], str | None, dict[str, list[str]]]:
    user, uid, groups, extra = None, None, [], {}
    for raw_key, raw_value in headers:
        key, value = raw_key.decode("latin-1").lower(), raw_value.decode("latin-1")
        if key == "impersonate-user":
            user = value
        elif key == "impersonate-group":
            groups.append(value)
        elif key == "impersonate-uid":
            uid = value
        elif key.startswith(EXTRA_PREFIX):
            extra.setdefault(unquote(key[len(EXTRA_PREFIX):]), []).append(value)
    return user, groups, uid, extra


def _checks(user: str, groups: list[str], uid: str | None, extra: dict[str, list[str]]) -> list[RequestInfo]:
    """One `impersonate` request per impersonated attribute, shaped as upstream authorizes them."""
    checks = []
    if user.startswith(SA_PREFIX) and user.count(":") == 3:
        namespace, name = user[len(SA_PREFIX):].split(":")
        checks.append(RequestInfo(True, "", "impersonate", "api", "", "v1", namespace, "serviceaccounts", "", name))
    else:
        checks.append(RequestInfo(True, "", "impersonate", "api", "", "v1", "", "users", "", user))
    checks += [RequestInfo(True, "", "impersonate", "api", "", "v1", "", "groups", "", g) for g in groups]
    if uid is not None:
        checks.append(RequestInfo(True, "", "impersonate", "apis", "authentication.k8s.io", "v1", "", "uids", "", uid))
    for key, values in extra.items():
        checks += [RequestInfo(True, "", "impersonate", "apis", "authentication.k8s.io", "v1", "", "userextras", key, v)
                   for v in values]
    return checks


def impersonated_user(user: str, groups: list[str], uid: str | None, extra: dict[str, list[str]]) -> UserInfo:
    all_groups = list(groups)
    if user.startswith(SA_PREFIX) and user.count(":") == 3:
        namespace = user[len(SA_PREFIX):].split(":")[0]
        all_groups += ["system:serviceaccounts", f"system:serviceaccounts:{namespace}"]
    if user != "system:anonymous" and AUTHENTICATED_GROUP not in all_groups:
        all_groups.append(AUTHENTICATED_GROUP)
    return UserInfo(user, uid or "", tuple(dict.fromkeys(all_groups)), {k: tuple(v) for k, v in extra.items()})


class ImpersonationStage:
    def __init__(self, app: Any, authorizer: Authorizer) -> None:
        self.app, self._authorizer = app, authorizer

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        user, groups, uid, extra = _requested(scope.get("headers", []))
        if user is None:
            if groups or uid is not None or extra:
                await send_status(send, bad_request("requested impersonation of groups, uid or extra without "
                                                    "impersonating a user (Impersonate-User)"))
                return
            await self.app(scope, receive, send)
            return
        requester: UserInfo = scope["securekube.user"]
        for info in _checks(user, groups, uid, extra):
            decision = self._authorizer.authorize(attributes_for(requester, info))
            if decision.verdict is not Verdict.ALLOW:
                error: ApiError = forbidden_message(requester.username, info, decision)
                await send_status(send, error)
                return
        scope["securekube.impersonated_by"] = requester
        scope["securekube.user"] = impersonated_user(user, groups, uid, extra)
        await self.app(scope, receive, send)
