"""Offline judgement: what admission would decide about a request, as findings rather than errors.

The tools (`securekube policy eval`, `replay`, `audit-existing`) ask the same stages the API
server runs - the Rego policies and constraints, and Pod Security Admission when asked to - and
want every finding, not the first denial. A stage that cannot decide is reported as an error
finding, never as an allowed request.

Pod Security needs the namespace's labels. A tool that knows them passes the Namespace object;
one that does not (an audit log from another cluster) can judge every namespace at one level
(`pod_security_level`) to see what that level would have done.
"""
from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from securekube.admission.interfaces import UPDATE, AdmissionError, AdmissionRequest
from securekube.admission.opa import Finding, RegoAdmission
from securekube.admission.podsecurity import (
    AUDIT_VIOLATIONS_ANNOTATION,
    ENFORCE_LABEL,
    LevelVersion,
    PodSecurityAdmission,
)
from securekube.policy.interfaces import PolicyError

__all__ = ["ERROR", "Judge", "Judgement", "POD_SECURITY"]

ERROR = "error"
POD_SECURITY = "PodSecurity"
_FORBIDDEN_MARKER = " is forbidden: "


@dataclass(frozen=True)
class Judgement:
    """The findings about one request; `object` is the object after the policies' patches."""

    findings: tuple[Finding, ...]
    object: dict[str, Any] | None = None
    patched_by: tuple[str, ...] = ()

    def by_action(self, action: str) -> tuple[Finding, ...]:
        return tuple(f for f in self.findings if f.action == action)

    @property
    def outcome(self) -> str:
        """The strongest action among the findings: error, deny, warn, dryrun, or "" (allowed)."""
        for action in (ERROR, "deny", "warn", "dryrun"):
            if any(f.action == action for f in self.findings):
                return action
        return ""


class Judge:
    """Judges requests with the given stages; either may be None (not judged)."""

    def __init__(self, rego: RegoAdmission | None = None, pod_security: PodSecurityAdmission | None = None,
                 pod_security_level: LevelVersion | None = None) -> None:
        self._rego = rego
        self._pod_security = pod_security
        self._level = pod_security_level

    def judge(self, request: AdmissionRequest) -> Judgement:
        findings: list[Finding] = []
        obj, patched_by = request.object, ()
        if self._rego is not None:
            try:
                decision = self._rego.decide(request)
            except PolicyError as exc:
                findings.append(Finding("policy", "admission policies", ERROR, str(exc)))
            else:
                findings += decision.findings
                obj, patched_by = decision.object, tuple(name for name, _ in decision.patches)
        if self._pod_security is not None:
            findings += self._pod_security_findings(dataclasses.replace(request, object=obj))
        return Judgement(tuple(findings), obj, patched_by)

    def _pod_security_findings(self, request: AdmissionRequest) -> list[Finding]:
        assert self._pod_security is not None
        if self._level is not None:
            labels = {ENFORCE_LABEL: self._level.level, ENFORCE_LABEL + "-version": _version_text(self._level)}
            request = dataclasses.replace(request, namespace_object={
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": request.namespace, "labels": labels}})
        if request.operation == UPDATE and request.old_object is None:
            # Without the stored object every update counts as one that changes the pod.
            request = dataclasses.replace(request, old_object={})
        try:
            result = self._pod_security.validate(request)
        except AdmissionError as denial:
            if denial.code >= 500:
                return [Finding("pod-security", POD_SECURITY, ERROR, denial.message)]
            return [Finding("pod-security", POD_SECURITY, "deny", _reason(denial.message)),
                    *_audit_findings(denial.audit_annotations)]
        return [Finding("pod-security", POD_SECURITY, "warn", w) for w in result.warnings] + \
            _audit_findings(result.audit_annotations)


def _version_text(level: LevelVersion) -> str:
    return "latest" if level.minor is None else f"v1.{level.minor}"


def _reason(message: str) -> str:
    """`violates PodSecurity ...` without the `pods "x" is forbidden: ` prefix."""
    return message.split(_FORBIDDEN_MARKER, 1)[1] if _FORBIDDEN_MARKER in message else message


def _audit_findings(annotations: Mapping[str, str]) -> list[Finding]:
    violations = annotations.get(AUDIT_VIOLATIONS_ANNOTATION)
    return [Finding("pod-security", POD_SECURITY, "dryrun", violations)] if violations else []
