"""The handler chain, built in one function, outermost stage first.

Every stage is required: building the chain without one is an error at start-up, so a
misconfigured server refuses to start rather than serving without a control.
"""
from __future__ import annotations

from typing import Any

from securekube.apiserver.stages.audit_id import AuditIdStage
from securekube.apiserver.stages.authentication import AuthenticationStage
from securekube.apiserver.stages.authorization import AuthorizationStage
from securekube.apiserver.stages.impersonation import ImpersonationStage
from securekube.authn.interfaces import Authenticator
from securekube.authz.interfaces import Authorizer


def build_handler_chain(app: Any, *, authenticator: Authenticator, authorizer: Authorizer) -> Any:
    """Audit-Id → authentication → impersonation → authorization → application (decode, admission, registry)."""
    if authenticator is None or authorizer is None:
        raise ValueError("the handler chain needs an authenticator and an authorizer")
    app = AuthorizationStage(app, authorizer)
    app = ImpersonationStage(app, authorizer)
    app = AuthenticationStage(app, authenticator)
    return AuditIdStage(app)
