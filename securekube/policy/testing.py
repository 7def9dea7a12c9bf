"""The test runner for policy folders: each policy's Rego tests and its samples, through a real engine.

Rego tests, as `opa test` runs them: every `test_*` rule of policy_test.rego is evaluated with
policy.rego loaded beside it and passes only when its value is `true`; undefined, any other
value, or an evaluation error fails it. (`todo_test_*` rules are not tests, as in OPA.)

Samples, as gatekeeper-library's CI checks them: the policy's `deny` is evaluated with each
sample as `input`; every samples/allowed/*.yaml must give no message and every
samples/disallowed/*.yaml at least one. For authorization policies the samples are
SubjectAccessReview objects (authorization.k8s.io/v1). For admission policies a sample is either
a Kubernetes object, evaluated as the AdmissionReview of its creation, or an AdmissionReview
(for other operations, users and subresources).

Coverage, as `opa test --coverage` reports it, when asked for and the engine can trace
(`evaluate_with_coverage`): which lines of policy.rego the test rules evaluated.

A policy without a policy_test.rego, without a `test_*` rule, or without samples of both kinds
fails: an untested policy is not shipped.
"""
from __future__ import annotations

import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from securekube.policy.admission_input import as_admission_review
from securekube.policy.coverage import CoverageAccumulator, FileCoverage
from securekube.policy.interfaces import PolicyEngine, PolicyError, QueryResult
from securekube.policy.loader import TEST_FILE, TEST_RULE_PREFIX, Policy, RegoModule

__all__ = ["DEFAULT_TEST_TIMEOUT", "CaseResult", "PolicyReport", "check_policies", "check_policy", "format_reports"]

# Per test rule or sample; generous, because a test may build large inputs.
DEFAULT_TEST_TIMEOUT = 5.0

SAR_API_VERSION = "authorization.k8s.io/v1"
SAR_KIND = "SubjectAccessReview"


@dataclass(frozen=True)
class CaseResult:
    """One Rego test rule or one sample, and whether it passed."""

    name: str  # the test rule (`test_x`) or the sample's path inside the policy folder
    passed: bool
    detail: str = ""  # why it failed


@dataclass(frozen=True)
class PolicyReport:
    """The outcome of checking one policy folder."""

    policy: str
    cases: tuple[CaseResult, ...]
    problems: tuple[str, ...]  # what is wrong with the folder as a whole (no tests, no samples, ...)
    coverage: FileCoverage | None = None  # of policy.rego by the test rules, when asked for

    @property
    def passed(self) -> bool:
        return not self.problems and all(case.passed for case in self.cases)

    def failures(self) -> tuple[str, ...]:
        """Every reason this policy fails, one line each."""
        return self.problems + tuple(f"{case.name}: {case.detail}" for case in self.cases if not case.passed)


def check_policies(
    policies: Iterable[Policy], engine: PolicyEngine, *, timeout: float = DEFAULT_TEST_TIMEOUT,
    coverage: bool = False,
) -> tuple[PolicyReport, ...]:
    """`check_policy` for each policy, one after the other in the same engine."""
    return tuple(check_policy(policy, engine, timeout=timeout, coverage=coverage) for policy in policies)


def check_policy(
    policy: Policy, engine: PolicyEngine, *, timeout: float = DEFAULT_TEST_TIMEOUT, coverage: bool = False
) -> PolicyReport:
    """Run the Rego tests and the samples of `policy`.

    The engine's modules are replaced by the policy and its tests: pass a scratch engine, never
    the one that serves requests. With `coverage`, the test rules are traced (when the engine
    can) and the report says which lines of policy.rego they evaluated.
    """
    problems = list(_folder_problems(policy))
    modules = {policy.module.module_name: policy.module.source}
    if policy.tests is not None:
        modules[policy.tests.module_name] = policy.tests.source
    try:
        engine.load(modules)
    except PolicyError as exc:
        return PolicyReport(policy.name, (), (*problems, f"does not compile: {exc}"))
    accumulator = CoverageAccumulator() if coverage and hasattr(engine, "evaluate_with_coverage") else None
    cases = [_run_test(policy.tests, rule, engine, timeout, accumulator)
             for rule in _test_rules(policy)] if policy.tests else []
    cases += [_run_sample(policy, path, False, engine, timeout) for path in policy.allowed_samples]
    cases += [_run_sample(policy, path, True, engine, timeout) for path in policy.disallowed_samples]
    file_coverage = accumulator.file(policy.module.module_name) if accumulator is not None else None
    return PolicyReport(policy.name, tuple(cases), tuple(problems), file_coverage)


def format_reports(reports: Iterable[PolicyReport]) -> str:
    """A report in the manner of `opa test`: failures first, then PASS: n/total or FAIL: n/total."""
    reports = tuple(reports)
    lines = [f"{report.policy}: {failure}" for report in reports for failure in report.failures()]
    total = sum(len(report.cases) for report in reports)
    passed = sum(case.passed for report in reports for case in report.cases)
    verdict = "PASS" if all(report.passed for report in reports) else "FAIL"
    lines.append(f"{verdict}: {passed}/{total}")
    return "\n".join(lines)


def _folder_problems(policy: Policy) -> Iterable[str]:
    if policy.tests is None:
        yield f"no {TEST_FILE}: every policy needs tests"
    elif not _test_rules(policy):
        yield f"{TEST_FILE} defines no {TEST_RULE_PREFIX}* rule"
    if not policy.allowed_samples:
        yield "no samples/allowed/*.yaml"
    if not policy.disallowed_samples:
        yield "no samples/disallowed/*.yaml"


def _test_rules(policy: Policy) -> tuple[str, ...]:
    if policy.tests is None:
        return ()
    return tuple(rule for rule in policy.tests.rules if rule.startswith(TEST_RULE_PREFIX))


def _run_test(tests: RegoModule, rule: str, engine: PolicyEngine, timeout: float,
              accumulator: CoverageAccumulator | None = None) -> CaseResult:
    query = f"result := {tests.rule_ref(rule)}"
    try:
        rows: QueryResult
        if accumulator is not None:
            rows, report = engine.evaluate_with_coverage(query, timeout=timeout)  # type: ignore[attr-defined]
            accumulator.add(report)
        else:
            rows = engine.evaluate(query, timeout=timeout)
    except PolicyError as exc:
        return CaseResult(rule, False, f"error: {exc}")
    if not rows:
        return CaseResult(rule, False, "undefined (a condition in the test was not met)")
    value = rows[0].get("result")
    if value is not True:
        return CaseResult(rule, False, f"value is {json.dumps(value)}, not true")
    return CaseResult(rule, True)


def _run_sample(policy: Policy, path: Path, expect_denied: bool, engine: PolicyEngine, timeout: float) -> CaseResult:
    name = str(path.relative_to(policy.directory))
    try:
        sample = _read_sample(policy, path)
    except ValueError as exc:
        return CaseResult(name, False, str(exc))
    try:
        rows = engine.evaluate(f"deny := {policy.deny_ref}", sample, timeout=timeout)
    except PolicyError as exc:
        return CaseResult(name, False, f"error: {exc}")
    if not rows:
        return CaseResult(name, False, "deny is undefined")
    messages = rows[0].get("deny")
    if not isinstance(messages, list):
        return CaseResult(name, False, f"deny is {json.dumps(messages)}, not a set of messages")
    if expect_denied and not messages:
        return CaseResult(name, False, "expected a denial, got none")
    if not expect_denied and messages:
        return CaseResult(name, False, f"expected no denial, got {json.dumps(messages)}")
    return CaseResult(name, True)


def _read_sample(policy: Policy, path: Path) -> dict[str, Any]:
    try:
        sample = yaml.safe_load(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, yaml.YAMLError) as exc:
        raise ValueError(f"cannot be read: {exc}") from None
    if not isinstance(sample, dict):
        raise ValueError("is not a YAML object")
    if policy.is_authorization and (sample.get("apiVersion"), sample.get("kind")) != (SAR_API_VERSION, SAR_KIND):
        raise ValueError(f"an authorization policy's samples must be {SAR_API_VERSION} {SAR_KIND} objects")
    if policy.is_admission:
        if not sample.get("kind") or not sample.get("apiVersion"):
            raise ValueError("an admission policy's samples must be Kubernetes objects (apiVersion, kind) "
                             "or AdmissionReviews")
        return as_admission_review(sample)
    return sample
