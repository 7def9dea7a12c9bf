"""The policy test runner: Rego tests like `opa test`, samples like gatekeeper-library's CI."""
from __future__ import annotations

from pathlib import Path

from securekube.policy.embedded import EmbeddedOpaEngine
from securekube.policy.loader import read_policies
from securekube.policy.testing import PolicyReport, check_policy, format_reports

POLICY = """package securekube.authz.no_bob

deny contains "no bob" if input.spec.user == "bob"
"""

TESTS = """package securekube.authz.no_bob_test

import data.securekube.authz.no_bob

test_bob_is_denied if {
\tno_bob.deny == {"no bob"} with input as {"spec": {"user": "bob"}}
}

todo_test_not_written_yet if false
"""

ADA = "apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  user: ada\n"
BOB = "apiVersion: authorization.k8s.io/v1\nkind: SubjectAccessReview\nspec:\n  user: bob\n"


def make_folder(root: Path, *, tests: str | None = TESTS, allowed: dict[str, str] | None = None,
                disallowed: dict[str, str] | None = None) -> Path:
    directory = root / "no-bob"
    directory.mkdir()
    (directory / "policy.rego").write_text(POLICY)
    if tests is not None:
        (directory / "policy_test.rego").write_text(tests)
    for kind, samples in (("allowed", {"ada.yaml": ADA} if allowed is None else allowed),
                          ("disallowed", {"bob.yaml": BOB} if disallowed is None else disallowed)):
        (directory / "samples" / kind).mkdir(parents=True)
        for name, text in samples.items():
            (directory / "samples" / kind / name).write_text(text)
    return directory


def check(engine: EmbeddedOpaEngine, root: Path) -> PolicyReport:
    (policy,) = read_policies(root, engine)
    return check_policy(policy, engine)


def test_a_tested_policy_with_good_samples_passes(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    make_folder(tmp_path)
    report = check(engine, tmp_path)
    assert report.passed, report.failures()
    assert [case.name for case in report.cases] == [
        "test_bob_is_denied", "samples/allowed/ada.yaml", "samples/disallowed/bob.yaml",
    ]  # todo_test_* rules are not tests
    assert format_reports([report]) == "PASS: 3/3"


def test_a_policy_without_tests_fails(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    make_folder(tmp_path, tests=None)
    report = check(engine, tmp_path)
    assert not report.passed
    assert "no policy_test.rego: every policy needs tests" in report.problems


def test_a_test_file_without_test_rules_fails(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    make_folder(tmp_path, tests="package securekube.authz.no_bob_test\n\nhelper := 1\n")
    report = check(engine, tmp_path)
    assert report.problems == ("policy_test.rego defines no test_* rule",)


def test_a_policy_without_samples_of_both_kinds_fails(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    make_folder(tmp_path, allowed={}, disallowed={})
    report = check(engine, tmp_path)
    assert report.problems == ("no samples/allowed/*.yaml", "no samples/disallowed/*.yaml")


def test_failing_test_rules_say_why(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    tests = TESTS + "\ntest_undefined if {\n\tno_bob.deny == {\"other\"} with input as {}\n}\n" \
                    "\ntest_not_true := 1\n" \
                    "\ntest_error if {\n\t1 / count(no_bob.deny) == 1 with input as {}\n}\n"
    make_folder(tmp_path, tests=tests)
    report = check(engine, tmp_path)
    failures = {case.name: case.detail for case in report.cases if not case.passed}
    assert failures.keys() == {"test_undefined", "test_not_true", "test_error"}
    assert failures["test_undefined"].startswith("undefined")
    assert failures["test_not_true"] == "value is 1, not true"
    assert "divide by zero" in failures["test_error"]
    assert format_reports([report]).splitlines()[-1] == "FAIL: 3/6"


def test_samples_that_misbehave_fail(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    make_folder(tmp_path, allowed={"bob.yaml": BOB}, disallowed={"ada.yaml": ADA})
    report = check(engine, tmp_path)
    failures = {case.name: case.detail for case in report.cases if not case.passed}
    assert failures == {
        "samples/allowed/bob.yaml": 'expected no denial, got ["no bob"]',
        "samples/disallowed/ada.yaml": "expected a denial, got none",
    }


def test_an_authorization_policy_sample_must_be_a_subject_access_review(engine: EmbeddedOpaEngine,
                                                                         tmp_path: Path) -> None:
    make_folder(tmp_path, disallowed={"bob.yaml": "spec:\n  user: bob\n", "list.yaml": "- a\n"})
    report = check(engine, tmp_path)
    failures = {case.name: case.detail for case in report.cases if not case.passed}
    assert failures == {
        "samples/disallowed/bob.yaml":
            "an authorization policy's samples must be authorization.k8s.io/v1 SubjectAccessReview objects",
        "samples/disallowed/list.yaml": "is not a YAML object",
    }


def test_tests_that_do_not_compile_fail_the_policy(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    make_folder(tmp_path, tests="package t\n\ntest_typo if {\n\tcountt([]) == 0\n}\n")
    report = check(engine, tmp_path)
    assert not report.passed
    (problem,) = report.problems
    assert "does not compile" in problem and "policy_test.rego:4: rego_type_error: undefined function countt" in problem
