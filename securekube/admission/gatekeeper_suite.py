"""Gatekeeper test suites (`gator verify`): suite.yaml -> template, constraint, cases, assertions.

A suite is a YAML file of `kind: Suite`, `apiVersion: test.gatekeeper.sh/v1alpha1`; paths in it
are relative to it. Each test names a ConstraintTemplate file and a Constraint file; each case
an object file (a Kubernetes object, or an AdmissionReview for other operations and users),
optionally `inventory` files for `data.inventory`, and `assertions`:

    - violations: yes | no | <n>    # at least one / none / exactly n; default yes
      message: <regex>              # only violations whose message matches count (re.search)

Violations are counted whatever the constraint's enforcementAction, as gator does. A plain
object is judged as the CREATE of it by the lab administrator. Tests and cases with
`skip: true` are reported as skipped. Files of other kinds are ignored, so a
gatekeeper-library checkout can be verified as it is (templates must be Rego v1, see
gatekeeper.py).
"""
from __future__ import annotations

import dataclasses
import re
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from securekube.admission.gatekeeper import GatekeeperError, build_inventory
from securekube.admission.opa import RegoAdmission, RegoAdmissionConfig
from securekube.admission.review import request_from_review
from securekube.policy.admission_input import is_admission_review, review_for_object
from securekube.policy.interfaces import PolicyEngine, PolicyError

__all__ = ["CaseOutcome", "SUITE_API_VERSION", "SuiteError", "find_suites", "iter_outcomes", "run_suite"]

SUITE_API_VERSION = "test.gatekeeper.sh/v1alpha1"
SUITE_KIND = "Suite"
# Offline: a slow template should fail its case clearly, not hang the run.
CASE_TIMEOUT = 10.0


class SuiteError(Exception):
    """A suite that cannot be run at all (unreadable, malformed); names the file."""


@dataclass(frozen=True)
class CaseOutcome:
    """One case of one test of one suite."""

    suite: str
    test: str
    case: str
    passed: bool
    skipped: bool = False
    detail: str = ""  # why it failed
    seconds: float = 0.0

    @property
    def name(self) -> str:
        return f"{self.test}/{self.case}"


def _documents(path: Path) -> list[Any]:
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise SuiteError(f"{path}: cannot be read: {exc}") from None
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise SuiteError(f"{path}: not valid YAML{where}") from None


def _is_suite(document: Any) -> bool:
    return isinstance(document, Mapping) and document.get("kind") == SUITE_KIND and \
        document.get("apiVersion") == SUITE_API_VERSION


def find_suites(root: Path) -> list[Path]:
    """The suite files at `root` (a file) or below it (a directory), in path order."""
    if root.is_file():
        return [root]
    if not root.is_dir():
        raise SuiteError(f"{root}: no such file or directory")
    found = []
    for path in sorted(root.rglob("*.y*ml")):
        if any(part.startswith(".") for part in path.relative_to(root).parts):
            continue
        try:
            documents = _documents(path)
        except SuiteError:
            continue  # not a suite we could read; a suite given explicitly reports its error
        if any(_is_suite(d) for d in documents):
            found.append(path)
    return found


def _relative(suite: Path, value: Any, what: str) -> Path:
    if not isinstance(value, str) or not value:
        raise SuiteError(f"{suite}: {what} must name a file")
    if Path(value).is_absolute():
        raise SuiteError(f"{suite}: {what} must be relative to the suite, not {value}")
    return suite.parent / value


def _single(suite: Path, path: Path, what: str) -> Mapping[str, Any]:
    documents = [d for d in _documents(path) if isinstance(d, Mapping)]
    if len(documents) != 1:
        raise SuiteError(f"{suite}: {what} {path.name} must hold exactly one object, not {len(documents)}")
    return documents[0]


def run_suite(path: Path, engine: PolicyEngine, run: re.Pattern[str] | None = None) -> list[CaseOutcome]:
    """Run every test of the suite at `path` in `engine` (its modules are replaced: a scratch engine)."""
    suites = [d for d in _documents(path) if _is_suite(d)]
    if not suites:
        raise SuiteError(f"{path}: not a Suite ({SUITE_API_VERSION})")
    outcomes: list[CaseOutcome] = []
    for suite in suites:
        for index, test in enumerate(suite.get("tests") or []):
            if not isinstance(test, Mapping):
                raise SuiteError(f"{path}: tests[{index}] is not an object")
            outcomes += _run_test(path, test, index, engine, run)
    return outcomes


def _run_test(suite: Path, test: Mapping[str, Any], index: int, engine: PolicyEngine,
              run: re.Pattern[str] | None) -> list[CaseOutcome]:
    name = str(test.get("name") or f"test-{index}")
    cases = [c for c in test.get("cases") or [] if isinstance(c, Mapping)]
    case_names = [str(c.get("name") or f"case-{i}") for i, c in enumerate(cases)]
    selected = [(c, n) for c, n in zip(cases, case_names) if run is None or run.search(f"{name}/{n}")]
    if not selected:
        return []
    if test.get("skip"):
        return [CaseOutcome(str(suite), name, n, True, skipped=True) for _, n in selected]
    inventory: list[Mapping[str, Any]] = [{}]
    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=CASE_TIMEOUT), inventory=lambda: inventory[0])
    try:
        template = _single(suite, _relative(suite, test.get("template"), f"test {name}: template"), "template")
        constraint = _single(suite, _relative(suite, test.get("constraint"), f"test {name}: constraint"),
                             "constraint")
        admission.replace(templates=[template], constraints=[constraint])
    except (SuiteError, GatekeeperError, PolicyError) as exc:
        return [CaseOutcome(str(suite), name, n, False, detail=f"the test cannot run: {exc}") for _, n in selected]
    outcomes = []
    for case, case_name in selected:
        started = time.monotonic()
        if case.get("skip"):
            outcomes.append(CaseOutcome(str(suite), name, case_name, True, skipped=True))
            continue
        try:
            detail = _run_case(suite, case, admission, inventory)
        except (SuiteError, ValueError, PolicyError) as exc:
            detail = str(exc)
        outcomes.append(CaseOutcome(str(suite), name, case_name, not detail, detail=detail,
                                    seconds=time.monotonic() - started))
    return outcomes


def _run_case(suite: Path, case: Mapping[str, Any], admission: RegoAdmission,
              inventory: list[Mapping[str, Any]]) -> str:
    """"" when the case passes, else why not."""
    obj = _single(suite, _relative(suite, case.get("object"), "case object"), "object")
    inventory_objects = [d for file in case.get("inventory") or []
                         for d in _documents(_relative(suite, file, "inventory"))
                         if isinstance(d, Mapping)]
    inventory[0] = build_inventory(inventory_objects)
    review = dict(obj) if is_admission_review(obj) else review_for_object(obj)
    request = request_from_review(review)
    if request.namespace:
        namespace = next((d for d in inventory_objects if d.get("kind") == "Namespace"
                          and (d.get("metadata") or {}).get("name") == request.namespace), None)
        request = dataclasses.replace(request, namespace_object=dict(namespace) if namespace else {
            "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": request.namespace}})
    decision = admission.decide(request)
    messages = [f.message for f in decision.findings if f.source == "constraint"]
    assertions = case.get("assertions")
    if not isinstance(assertions, list) or not assertions:
        raise SuiteError(f"{suite}: a case needs assertions")
    problems = [p for a in assertions if (p := _check_assertion(a, messages))]
    return "; ".join(problems)


def _check_assertion(assertion: Any, messages: Sequence[str]) -> str:
    if not isinstance(assertion, Mapping):
        return "an assertion is not an object"
    pattern = assertion.get("message") or ""
    try:
        matching = [m for m in messages if re.search(str(pattern), m)] if pattern else list(messages)
    except re.error as exc:
        return f"assertion message {pattern!r} is not a regular expression: {exc}"
    expected = assertion.get("violations", "yes")
    about = f" matching {pattern!r}" if pattern else ""
    # YAML 1.1 reads yes/no as booleans.
    if expected is True or expected == "yes":
        return "" if matching else f"got no violations{about}, want at least 1"
    if expected is False or expected == "no":
        return "" if not matching else f"got {len(matching)} violations{about}, want none: {_show(matching)}"
    if isinstance(expected, int) and expected >= 0:
        return "" if len(matching) == expected else \
            f"got {len(matching)} violations{about}, want {expected}: {_show(matching)}"
    return f"assertion violations must be yes, no or a non-negative integer, not {expected!r}"


def _show(messages: Sequence[str]) -> str:
    return "; ".join(repr(m) for m in messages[:5]) + (" ..." if len(messages) > 5 else "")


def iter_outcomes(paths: Sequence[Path], engine: PolicyEngine,
                  run: re.Pattern[str] | None = None) -> Iterator[tuple[Path, list[CaseOutcome] | SuiteError]]:
    """Each suite with its outcomes, or the error that stopped it."""
    for path in paths:
        try:
            yield path, run_suite(path, engine, run)
        except SuiteError as exc:
            yield path, exc
