"""The admission chain: every mutating stage, then every validating stage, in the order given.

Order as in kube-apiserver: mutations first (built-in defaulting has already happened in the
registry; then Rego patches), so that validation judges the object that will be stored; then
NodeRestriction, Pod Security Admission and the Rego policies. Each stage sees the object the
stages before it produced.

Fail closed: a stage that raises anything but `AdmissionError` denies the request with a 403
naming the stage (never its exception text, which may quote the object); so does a mutating
stage that returns something other than an object. Warnings and audit annotations gathered up
to a denial travel with the `AdmissionError`, as upstream returns and records them too.
"""
from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence

from securekube.admission.interfaces import (
    AdmissionError,
    AdmissionRequest,
    AdmissionResult,
    MutatingAdmission,
    ValidatingAdmission,
)
from securekube.admission.noderestriction import NodeRestriction
from securekube.admission.opa import RegoAdmission
from securekube.admission.podsecurity import PodSecurityAdmission
from securekube.admission.policy_objects import PolicyObjects
from securekube.api.errors import forbidden

__all__ = ["AdmissionChain", "standard_chain"]

log = logging.getLogger("securekube.admission")


class AdmissionChain:
    """Runs admission stages in order; safe to share between threads if the stages are."""

    def __init__(self, mutating: Sequence[MutatingAdmission] = (),
                 validating: Sequence[ValidatingAdmission] = ()) -> None:
        names = [stage.name for stage in (*mutating, *validating)]
        if len(set(names)) != len(names):
            raise ValueError(f"admission stage names must be unique: {', '.join(names)}")
        self._mutating = tuple(mutating)
        self._validating = tuple(validating)

    @property
    def stage_names(self) -> tuple[str, ...]:
        return tuple(stage.name for stage in (*self._mutating, *self._validating))

    def admit(self, request: AdmissionRequest) -> AdmissionResult:
        """The object to store, warnings and audit annotations; raises AdmissionError to deny."""
        warnings: list[str] = []
        annotations: dict[str, str] = {}
        current = request
        try:
            for stage in self._mutating:
                result = _run(stage.name, stage.admit, current)
                if current.object is not None and not isinstance(result.object, dict):
                    raise _stage_failure(request, stage.name, "it returned no object")
                _gather(result, warnings, annotations)
                if result.object is not current.object:
                    current = dataclasses.replace(current, object=result.object)
            for validator in self._validating:
                result = _run(validator.name, validator.validate, current)
                _gather(result, warnings, annotations)
        except AdmissionError as denial:
            denial.warnings = warnings + [w for w in denial.warnings if w not in warnings]
            denial.audit_annotations = {**annotations, **denial.audit_annotations}
            raise
        return AdmissionResult(current.object, warnings, annotations)


def _run(name: str, call: Callable[[AdmissionRequest], AdmissionResult], request: AdmissionRequest) -> AdmissionResult:
    try:
        result = call(request)
    except AdmissionError:
        raise
    except Exception as exc:  # a broken stage denies; its text may quote the object, so it is not shown
        log.error("admission stage %s failed: %s", name, type(exc).__name__)
        raise _stage_failure(request, name, "it failed") from None
    if not isinstance(result, AdmissionResult):
        raise _stage_failure(request, name, "it gave no decision")
    return result


def _gather(result: AdmissionResult, warnings: list[str], annotations: dict[str, str]) -> None:
    warnings.extend(w for w in result.warnings if w not in warnings)
    annotations.update(result.audit_annotations)


def _stage_failure(request: AdmissionRequest, stage: str, what: str) -> AdmissionError:
    group, resource = request.group_resource
    error = forbidden(resource, request.name, f"admission stage {stage} could not decide ({what}); "
                                              "the request is denied", group)
    return AdmissionError.from_api_error(error)


def standard_chain(*, rego: RegoAdmission, pod_security: PodSecurityAdmission,
                   node_restriction: NodeRestriction, policy_objects: PolicyObjects) -> AdmissionChain:
    """The API server's chain, in kube-apiserver's order: Rego patches; then NodeRestriction, Pod
    Security, the check of policy objects being written, and the Rego policies and constraints.
    Every stage is required: a lab cluster never runs with a check silently missing."""
    return AdmissionChain([rego.mutating], [node_restriction, pod_security, policy_objects, rego.validating])
