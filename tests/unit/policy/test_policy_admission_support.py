"""Policy-layer support for admission policies: conventions, sample reviews, coverage, located errors."""
from __future__ import annotations

from pathlib import Path

import pytest

from securekube.policy.admission_input import as_admission_review, guess_resource, review_for_object
from securekube.policy.compile_errors import with_columns
from securekube.policy.coverage import CoverageAccumulator
from securekube.policy.embedded import EmbeddedOpaEngine
from securekube.policy.interfaces import PolicyCompileError
from securekube.policy.loader import PolicyLoadError, policy_from_file, read_policies
from securekube.policy.testing import check_policy

POLICY = """package securekube.admission.no_privileged

deny contains msg if {
	some c in input.request.object.spec.containers
	c.securityContext.privileged
	msg := sprintf("container %q is privileged", [c.name])
}

deny contains "no exec" if {
	input.request.operation == "CONNECT"
}

warn contains "label your pods" if not input.request.object.metadata.labels
"""

TESTS = """package securekube.admission.no_privileged_test

import data.securekube.admission.no_privileged

test_privileged_is_denied if {
	container := {"name": "c", "securityContext": {"privileged": true}}
	review := {"request": {"operation": "CREATE", "object": {"spec": {"containers": [container]}}}}
	no_privileged.deny == {`container "c" is privileged`} with input as review
}
"""

POD = ("apiVersion: v1\nkind: Pod\nmetadata: {name: p, namespace: team-a, labels: {a: b}}\n"
       "spec:\n  containers: [{name: c, image: x}]\n")
PRIVILEGED = POD.replace("image: x}", "image: x, securityContext: {privileged: true}}")
EXEC = """apiVersion: admission.k8s.io/v1
kind: AdmissionReview
request:
  uid: u
  kind: {group: "", version: v1, kind: PodExecOptions}
  resource: {group: "", version: v1, resource: pods}
  subResource: exec
  operation: CONNECT
  userInfo: {username: ada}
  object: {kind: PodExecOptions, command: [sh]}
"""


def folder(root: Path, allowed: dict[str, str], disallowed: dict[str, str]) -> Path:
    directory = root / "no-privileged"
    (directory / "samples" / "allowed").mkdir(parents=True)
    (directory / "samples" / "disallowed").mkdir(parents=True)
    (directory / "policy.rego").write_text(POLICY)
    (directory / "policy_test.rego").write_text(TESTS)
    for kind, samples in (("allowed", allowed), ("disallowed", disallowed)):
        for name, text in samples.items():
            (directory / "samples" / kind / name).write_text(text)
    return directory


def test_admission_policies_are_recognised(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    folder(tmp_path, {"pod.yaml": POD}, {"privileged.yaml": PRIVILEGED})
    (policy,) = read_policies(tmp_path, engine)
    assert policy.is_admission and not policy.is_authorization
    assert policy.defines("deny") and policy.defines("warn") and not policy.defines("patch")


def test_admission_samples_are_objects_or_reviews(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    folder(tmp_path, {"pod.yaml": POD}, {"privileged.yaml": PRIVILEGED, "exec.yaml": EXEC})
    (policy,) = read_policies(tmp_path, engine)
    report = check_policy(policy, engine)
    assert report.passed, report.failures()


def test_a_sample_that_is_no_object_fails(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    folder(tmp_path, {"pod.yaml": POD}, {"bare.yaml": "spec: {containers: []}\n"})
    (policy,) = read_policies(tmp_path, engine)
    failures = {c.name: c.detail for c in check_policy(policy, engine).cases if not c.passed}
    assert failures == {"samples/disallowed/bare.yaml": "an admission policy's samples must be Kubernetes objects "
                                                         "(apiVersion, kind) or AdmissionReviews"}


def test_coverage_names_the_lines_no_test_reached(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    folder(tmp_path, {"pod.yaml": POD}, {"privileged.yaml": PRIVILEGED})
    (policy,) = read_policies(tmp_path, engine)
    report = check_policy(policy, engine, coverage=True)
    assert report.coverage is not None
    assert report.coverage.path == str(tmp_path / "no-privileged" / "policy.rego")
    # The CONNECT rule (lines 9-11) and the warn rule (line 13) are never evaluated by the one test.
    assert {9, 10, 13} <= report.coverage.not_covered
    assert {3, 4, 5, 6} <= report.coverage.covered
    assert 0 < report.coverage.percent < 100
    assert check_policy(policy, engine).coverage is None


def test_the_coverage_accumulator_merges_reports() -> None:
    accumulator = CoverageAccumulator()
    row = lambda a, b: {"start": {"row": a, "col": 1}, "end": {"row": b, "col": 5}}  # noqa: E731
    accumulator.add({"files": {"p.rego": {"covered": [row(1, 2)], "not_covered": [row(4, 6)]}}})
    accumulator.add({"files": {"p.rego": {"covered": [row(5, 5)], "not_covered": [row(9, 9)]}}})
    accumulator.add(None)
    accumulator.add({"files": {"p.rego": {"covered": "garbage"}}})
    (coverage,) = accumulator.files()
    assert coverage.covered == {1, 2, 5}
    assert coverage.uncovered_ranges() == "4, 6, 9"
    assert round(coverage.percent) == 50


def test_reviews_for_plain_objects() -> None:
    review = review_for_object({"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web",
                                                                                          "namespace": "team-a"}})
    request = review["request"]
    assert (review["apiVersion"], review["kind"]) == ("admission.k8s.io/v1", "AdmissionReview")
    assert request["kind"] == {"group": "apps", "version": "v1", "kind": "Deployment"}
    assert request["resource"] == {"group": "apps", "version": "v1", "resource": "deployments"}
    assert (request["operation"], request["namespace"], request["oldObject"]) == ("CREATE", "team-a", None)
    namespace = review_for_object({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-b"}})
    assert namespace["request"]["namespace"] == "team-b"
    existing = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": {"operation": "DELETE"}}
    assert as_admission_review(existing) == existing


@pytest.mark.parametrize(("kind", "resource"), [("Pod", "pods"), ("NetworkPolicy", "networkpolicies"),
                                                ("Ingress", "ingresses"), ("Gateway", "gateways"), ("", "")])
def test_resource_names_are_guessed_as_kubernetes_guesses_them(kind: str, resource: str) -> None:
    assert guess_resource(kind) == resource


def test_compile_errors_get_their_column() -> None:
    message = ('parse_error: 1 error occurred: p.rego:5: rego_parse_error: unexpected assign token\n'
               '\t    msg := 1 2\n\t        ^')
    assert with_columns(message) == "p.rego:5:9: rego_parse_error: unexpected assign token"
    assert with_columns("1 error occurred: p.rego:3: rego_type_error: undefined function countt") == \
        "p.rego:3: rego_type_error: undefined function countt"


def test_a_single_rego_file_is_a_policy(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    tutorial = tmp_path / "registry.rego"
    tutorial.write_text('package kubernetes.admission\n\ndeny contains "x" if input.request.kind.kind == "Pod"\n')
    policy = policy_from_file(tutorial, engine)
    assert (policy.name, policy.module.package_name) == ("registry", "kubernetes.admission")
    no_deny = tmp_path / "allow.rego"
    no_deny.write_text("package x\n\nallow := true\n")
    with pytest.raises(PolicyLoadError, match="does not define 'deny'"):
        policy_from_file(no_deny, engine)
    broken = tmp_path / "broken.rego"
    broken.write_text("package x\n\ndeny contains 1 if {\n")
    with pytest.raises(PolicyCompileError, match=r"broken\.rego:\d+: rego_parse_error"):
        policy_from_file(broken, engine)


def test_an_evaluation_can_be_traced_for_coverage(engine: EmbeddedOpaEngine) -> None:
    engine.load({"c.rego": "package c\n\na if input.x\n\nb if input.y\n"})
    rows, report = engine.evaluate_with_coverage("v := data.c.a", {"x": True}, timeout=5)
    assert rows == ({"v": True},)
    assert report is not None and "c.rego" in report["files"]
