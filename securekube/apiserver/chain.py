"""The handler chain, built in one function, outermost stage first.

Every stage is required: building the chain without one is an error at start-up, so a
misconfigured server refuses to start rather than serving without a control.
"""
from __future__ import annotations

from typing import Any

from securekube.apiserver.stages.audit import AuditStage, Sink
from securekube.apiserver.stages.audit_id import AuditIdStage
from securekube.apiserver.stages.authentication import AuthenticationStage
from securekube.apiserver.stages.authorization import AuthorizationStage
from securekube.apiserver.stages.impersonation import ImpersonationStage
from securekube.audit.policy import AuditPolicy
from securekube.authn.interfaces import Authenticator
from securekube.authz.interfaces import Authorizer


def build_handler_chain(app: Any, *, authenticator: Authenticator, authorizer: Authorizer, audit_policy: AuditPolicy,
                        audit_sink: Sink) -> Any:
    """Audit-Id → authentication → audit → impersonation → authorization → application (decode, admission, registry)."""
    if authenticator is None or authorizer is None or audit_policy is None or audit_sink is None:
        raise ValueError("the handler chain needs an authenticator, an authorizer and an audit policy and sink")
    app = AuthorizationStage(app, authorizer)
    app = ImpersonationStage(app, authorizer)
    audit = AuditStage(app, audit_policy, audit_sink)
    app = AuthenticationStage(audit, authenticator, on_failure=audit.record_failed_authentication)
    return AuditIdStage(app)
