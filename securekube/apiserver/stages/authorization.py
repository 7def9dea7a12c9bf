"""Authorization stage: every request is decided before a handler runs; anything but ALLOW is a 403."""
from __future__ import annotations

from typing import Any, Mapping
from urllib.parse import parse_qsl

from securekube.api.errors import ApiError, forbidden
from securekube.api.selectors import FieldRequirement, parse_field_selector
from securekube.apiserver.requestinfo import RequestInfo, request_info
from securekube.apiserver.stages.respond import send_status
from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes, Authorizer, Decision, Verdict


def forbidden_message(username: str, info: RequestInfo, decision: Decision | None = None) -> ApiError:
    """The upstream 403 wording, e.g. User "x" cannot list resource "pods" in API group "" in the namespace "y".

    An explicit deny's reason (an OPA policy's message) is appended as upstream does; RBAC abstains silently.
    """
    why = f": {decision.reason}" if decision is not None and decision.verdict is Verdict.DENY and decision.reason else ""
    if not info.is_resource_request:
        return ApiError(403, "Forbidden", f'forbidden: User "{username}" cannot {info.verb} path "{info.path}"{why}', {})
    resource = f"{info.resource}/{info.subresource}" if info.subresource else info.resource
    scope = f'in the namespace "{info.namespace}"' if info.namespace else "at the cluster scope"
    message = f'User "{username}" cannot {info.verb} resource "{resource}" in API group "{info.api_group}" {scope}{why}'
    return forbidden(resource, info.name, message, info.api_group)


class _EveryPath(dict):
    """Accepts every field path: which ones a kind supports is the handler's check (a 400), not authorization's."""

    def __contains__(self, key: object) -> bool:
        return True


def field_selector_of(query: Mapping[str, str]) -> tuple[FieldRequirement, ...]:
    """The fieldSelector the handler will apply; one that does not parse reads as none (the handler refuses it)."""
    try:
        return parse_field_selector(query.get("fieldSelector"), _EveryPath())
    except ApiError:
        return ()


def attributes_for(user: UserInfo, info: RequestInfo, query: Mapping[str, str] | None = None) -> Attributes:
    """What authorization is asked about a request (or about one impersonation step)."""
    return Attributes(user=user, verb=info.verb, resource_request=info.is_resource_request,
                      namespace=info.namespace, api_group=info.api_group, api_version=info.api_version,
                      resource=info.resource, subresource=info.subresource, name=info.name, path=info.path,
                      field_selector=field_selector_of(query) if query and info.is_resource_request else ())


class AuthorizationStage:
    def __init__(self, app: Any, authorizer: Authorizer) -> None:
        self.app, self._authorizer = app, authorizer

    async def __call__(self, scope: dict, receive: Any, send: Any) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        info = request_info(scope)
        user = scope["securekube.user"]
        # The same parse as the application's (starlette's QueryParams): the last value of a key wins.
        query = dict(parse_qsl(scope.get("query_string", b"").decode("latin-1"), keep_blank_values=True))
        attrs = attributes_for(user, info, query)
        decision = self._authorizer.authorize(attrs)
        scope["securekube.authz_decision"] = decision
        if decision.verdict is not Verdict.ALLOW:
            await send_status(send, forbidden_message(user.username, info, decision))
            return
        await self.app(scope, receive, send)
