"""The admission chain: mutations first, then validations, fail closed, warnings kept on a denial."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import pytest

from securekube.admission.chain import AdmissionChain
from securekube.admission.interfaces import AdmissionError, AdmissionRequest, AdmissionResult
from securekube.admission.noderestriction import NodeRestriction
from securekube.admission.podsecurity import PodSecurityAdmission
from securekube.api.errors import forbidden
from tests.unit.admission.admission_requests import pod, pod_request


@dataclass
class Labeller:
    """A mutating stage that adds a label and records the object it saw."""

    name: str = "Labeller"
    seen: list[Any] = field(default_factory=list)

    def admit(self, request: AdmissionRequest) -> AdmissionResult:
        self.seen.append(request.object)
        obj = {**request.object, "metadata": {**request.object["metadata"], "labels": {"mutated": "yes"}}}
        return AdmissionResult(obj, ["labelled"], {"labeller/done": "true"})


@dataclass
class Recorder:
    name: str = "Recorder"
    seen: list[Any] = field(default_factory=list)
    warning: str = ""

    def validate(self, request: AdmissionRequest) -> AdmissionResult:
        self.seen.append(request.object)
        return AdmissionResult(request.object, [self.warning] if self.warning else [], {f"{self.name}/ok": "1"})


@dataclass
class Refuser:
    name: str = "Refuser"

    def validate(self, request: AdmissionRequest) -> AdmissionResult:
        raise AdmissionError.from_api_error(forbidden("pods", request.name, "no"))


@dataclass
class Broken:
    name: str = "Broken"
    secret: str = "s3cr3t-value"

    def validate(self, request: AdmissionRequest) -> AdmissionResult:
        raise RuntimeError(f"bad input {self.secret}")


def test_validation_sees_the_mutated_object_and_the_result_carries_it() -> None:
    labeller, recorder = Labeller(), Recorder(warning="careful")
    result = AdmissionChain([labeller], [recorder]).admit(pod_request(pod()))
    assert recorder.seen[0]["metadata"]["labels"] == {"mutated": "yes"}
    assert result.object["metadata"]["labels"] == {"mutated": "yes"}
    assert result.warnings == ["labelled", "careful"]
    assert result.audit_annotations == {"labeller/done": "true", "Recorder/ok": "1"}


def test_a_denial_stops_the_chain_and_keeps_earlier_warnings_and_annotations() -> None:
    after = Recorder("After")
    with pytest.raises(AdmissionError) as denied:
        AdmissionChain([Labeller()], [Recorder(warning="careful"), Refuser(), after]).admit(pod_request(pod()))
    assert denied.value.message == 'pods "web" is forbidden: no'
    assert denied.value.warnings == ["labelled", "careful"]
    assert denied.value.audit_annotations == {"labeller/done": "true", "Recorder/ok": "1"}
    assert after.seen == []


def test_a_stage_that_breaks_denies_without_repeating_its_error(caplog: pytest.LogCaptureFixture) -> None:
    with pytest.raises(AdmissionError) as denied:
        AdmissionChain([], [Broken()]).admit(pod_request(pod()))
    assert denied.value.code == 403
    assert denied.value.message == ('pods "web" is forbidden: admission stage Broken could not decide (it failed); '
                                    "the request is denied")
    assert "s3cr3t-value" not in caplog.text


def test_a_mutating_stage_that_drops_the_object_denies() -> None:
    class Dropper:
        name = "Dropper"

        def admit(self, request: AdmissionRequest) -> AdmissionResult:
            return AdmissionResult(None)

    with pytest.raises(AdmissionError, match="admission stage Dropper could not decide"):
        AdmissionChain([Dropper()], []).admit(pod_request(pod()))


def test_stage_names_must_be_unique() -> None:
    with pytest.raises(ValueError, match="unique"):
        AdmissionChain([], [Recorder(), Recorder()])


def test_the_builtin_stages_compose() -> None:
    chain = AdmissionChain([], [NodeRestriction(), PodSecurityAdmission()])
    assert chain.stage_names == ("NodeRestriction", "PodSecurity")
    with pytest.raises(AdmissionError, match='violates PodSecurity "baseline:latest": host namespaces'):
        chain.admit(pod_request(pod(hostNetwork=True),
                                namespace_labels={"pod-security.kubernetes.io/enforce": "baseline"}))
