"""Gatekeeper suites (gator verify): the fixture library passes, and wrong expectations fail with a reason."""
from __future__ import annotations

import re
import shutil
from pathlib import Path

import pytest

from securekube.admission.gatekeeper_suite import SuiteError, find_suites, run_suite
from securekube.policy.embedded import EmbeddedOpaEngine

LIBRARY = Path(__file__).resolve().parents[2] / "fixtures" / "gatekeeper"


def test_every_suite_is_found() -> None:
    assert [p.parent.name for p in find_suites(LIBRARY)] == ["allowedrepos", "requiredlabels", "serviceaccountexists"]


@pytest.mark.parametrize("suite", ["allowedrepos", "requiredlabels", "serviceaccountexists"])
def test_the_fixture_library_passes(engine: EmbeddedOpaEngine, suite: str) -> None:
    outcomes = run_suite(LIBRARY / suite / "suite.yaml", engine)
    assert outcomes, "a suite without cases proves nothing"
    assert [o.name for o in outcomes if not o.passed] == []


def test_a_skipped_case_is_reported_as_skipped(engine: EmbeddedOpaEngine) -> None:
    outcomes = {o.case: o for o in run_suite(LIBRARY / "allowedrepos" / "suite.yaml", engine)}
    assert outcomes["skipped-case"].skipped


def copy_library(tmp_path: Path) -> Path:
    return Path(shutil.copytree(LIBRARY, tmp_path / "library"))


def test_wrong_expectations_fail_with_the_count_and_messages(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    library = copy_library(tmp_path)
    suite = library / "requiredlabels" / "suite.yaml"
    text = suite.read_text()
    text = text.replace("- violations: no\n      - name: example-disallowed-missing",
                        "- violations: yes\n      - name: example-disallowed-missing")
    text = text.replace('- violations: 1\n            message: "you must provide labels"',
                        '- violations: 2\n            message: "you must provide labels"')
    suite.write_text(text)
    failures = {o.case: o.detail for o in run_suite(suite, engine) if not o.passed}
    assert failures == {
        "example-allowed": "got no violations, want at least 1",
        "example-disallowed-missing": "got 1 violations matching 'you must provide labels', want 2: "
                                      "'you must provide labels: {\"owner\"}'",
    }


def test_a_broken_template_fails_every_case_of_its_test(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    library = copy_library(tmp_path)
    template = library / "allowedrepos" / "template.yaml"
    template.write_text(template.read_text().replace("violation contains {\"msg\": msg} if {",
                                                     "violation[{\"msg\": msg}] {"))
    outcomes = run_suite(library / "allowedrepos" / "suite.yaml", engine)
    assert {o.passed for o in outcomes if not o.skipped} == {False}
    assert all("opa fmt --v0-v1" in o.detail for o in outcomes if not o.skipped)


def test_run_filters_cases(engine: EmbeddedOpaEngine) -> None:
    outcomes = run_suite(LIBRARY / "requiredlabels" / "suite.yaml", engine, re.compile("regex"))
    assert [o.case for o in outcomes] == ["example-disallowed-regex"]


def test_a_file_that_is_no_suite_is_an_error(engine: EmbeddedOpaEngine) -> None:
    with pytest.raises(SuiteError, match="not a Suite"):
        run_suite(LIBRARY / "allowedrepos" / "template.yaml", engine)


def test_absolute_paths_are_refused(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    suite = tmp_path / "suite.yaml"
    suite.write_text("kind: Suite\napiVersion: test.gatekeeper.sh/v1alpha1\ntests:\n"
                     "- name: t\n  template: /etc/passwd\n  constraint: c.yaml\n  cases:\n"
                     "  - name: c\n    object: o.yaml\n    assertions: [{violations: no}]\n")
    (outcome,) = run_suite(suite, engine)
    assert not outcome.passed and "must be relative to the suite" in outcome.detail
