"""`securekube policy test|eval|verify|replay|audit-existing|serve`: write, test, try and serve policies.

- test [DIR]: every policy folder's `test_*` rules (like `opa test`) and samples, pass/fail per
  test, with `--coverage` the lines of policy.rego the tests evaluated.
- eval --policy P --input FILE: the decision for each object or AdmissionReview in FILE.
- verify PATH: Gatekeeper suites (suite.yaml), as `gator verify` runs them.
- replay --audit-log FILE --policy P: which recorded requests the policies would have denied or
  warned about (audit.k8s.io/v1 logs, plain or gzipped, from securekube or any cluster).
- audit-existing --policy P: the objects already stored in a live cluster, judged as if created now.
- serve: OPA's REST API over TLS, backed by the embedded engine (a remote engine for `up --opa-url`).

`--policy` takes, any number of times: a policies directory (folders with policy.rego), one
policy folder, a single .rego file (any package defining `deny`, e.g. from OPA's tutorials), or
YAML files/directories holding Gatekeeper ConstraintTemplates and Constraints.

Exit codes: 0 when everything passes (test, verify) or nothing would be denied (eval, replay,
audit-existing); 1 otherwise, and for errors (one line on stderr, no traceback).
"""
from __future__ import annotations

import argparse
import dataclasses
import json
import re
import sys
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from securekube.admission.gatekeeper import GatekeeperError, is_constraint, is_template
from securekube.admission.gatekeeper_suite import CaseOutcome, SuiteError, find_suites, iter_outcomes
from securekube.admission.judge import ERROR, Judge, Judgement
from securekube.admission.opa import Finding, RegoAdmission, RegoAdmissionConfig
from securekube.admission.podsecurity import LevelVersion, PodSecurityAdmission
from securekube.admission.replay import ReplayReport, read_audit_lines, replay
from securekube.admission.review import request_from_review
from securekube.authz.rbac_model import go_quote
from securekube.cli.errors import CliError
from securekube.policy.admission_input import is_admission_review, review_for_object
from securekube.policy.compile_errors import with_columns
from securekube.policy.embedded import EmbeddedEngineConfig, EmbeddedOpaEngine, embedded_engine_available
from securekube.policy.interfaces import PolicyError
from securekube.policy.loader import POLICY_FILE, Policy, policy_from_file, read_policies, read_policy
from securekube.policy.testing import PolicyReport, check_policies

EXIT_OK, EXIT_FAILED = 0, 1
DEFAULT_POLICY_DIR = "policies"
# Offline tools may wait for a slow policy; the API server's own limit is far lower.
OFFLINE_TIMEOUT = 10.0
YAML_SUFFIXES = (".yaml", ".yml", ".json")
_BINDING_HINT = ("the embedded OPA engine needs opa-golib-python-bindings: "
                 ".venv/bin/pip install --ignore-requires-python opa-golib-python-bindings")
# Core and RBAC kinds `audit-existing` can list: resource -> (list path, apiVersion, kind).
AUDITABLE: Mapping[str, tuple[str, str, str]] = {
    "pods": ("/api/v1/pods", "v1", "Pod"),
    "namespaces": ("/api/v1/namespaces", "v1", "Namespace"),
    "configmaps": ("/api/v1/configmaps", "v1", "ConfigMap"),
    "serviceaccounts": ("/api/v1/serviceaccounts", "v1", "ServiceAccount"),
    "services": ("/api/v1/services", "v1", "Service"),
    "nodes": ("/api/v1/nodes", "v1", "Node"),
    "roles": ("/apis/rbac.authorization.k8s.io/v1/roles", "rbac.authorization.k8s.io/v1", "Role"),
    "rolebindings": ("/apis/rbac.authorization.k8s.io/v1/rolebindings", "rbac.authorization.k8s.io/v1",
                     "RoleBinding"),
    "clusterroles": ("/apis/rbac.authorization.k8s.io/v1/clusterroles", "rbac.authorization.k8s.io/v1",
                     "ClusterRole"),
    "clusterrolebindings": ("/apis/rbac.authorization.k8s.io/v1/clusterrolebindings",
                            "rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
}


def register(groups: argparse._SubParsersAction) -> None:
    policy = groups.add_parser(
        "policy", help="test, evaluate, verify and replay Rego admission policies",
        description="Author and try policies before enforcing them: Rego unit tests with coverage, one-off "
                    "decisions, Gatekeeper suites, replays of recorded traffic, audits of stored objects.")
    commands = policy.add_subparsers(dest="policy_command", metavar="COMMAND", required=True)

    test = commands.add_parser(
        "test", help="run every policy folder's test_* rules and samples",
        description="Run the test_* rules of each policy folder (like `opa test`) and check its samples: "
                    "samples/allowed must not be denied, samples/disallowed must be. A folder without tests or "
                    "samples fails.")
    test.add_argument("directory", nargs="?", default=DEFAULT_POLICY_DIR, metavar="DIR",
                      help=f"a policies directory or one policy folder (default: {DEFAULT_POLICY_DIR})")
    test.add_argument("--coverage", action="store_true", help="report which lines of policy.rego the tests evaluated")
    test.add_argument("-o", "--output", choices=("text", "json"), default="text")
    test.set_defaults(run=run_test)

    evaluate = commands.add_parser(
        "eval", help="the decision for objects or AdmissionReviews",
        description="Judge each document of FILE (a Kubernetes object, taken as its CREATE by the lab "
                    "administrator, or an AdmissionReview) with the policies; exit code 1 if any is denied.")
    _add_policy_arguments(evaluate)
    evaluate.add_argument("--input", required=True, metavar="FILE", help="YAML or JSON documents ('-' for stdin)")
    evaluate.add_argument("--user", metavar="NAME", help="judge plain objects as created by this user")
    evaluate.add_argument("--group", action="append", default=[], metavar="GROUP",
                          help="a group of --user (repeatable)")
    evaluate.add_argument("-o", "--output", choices=("text", "json"), default="text")
    evaluate.set_defaults(run=run_eval)

    verify = commands.add_parser(
        "verify", help="run Gatekeeper test suites (suite.yaml)",
        description="Run Gatekeeper suites as `gator verify` does: each test's ConstraintTemplate and Constraint "
                    "against its cases' objects, checking `assertions` (violations: yes|no|N, message: regex).")
    verify.add_argument("path", metavar="PATH", help="a suite file, or a directory searched for suites")
    verify.add_argument("--run", dest="run_filter", metavar="REGEX", help="only cases whose TEST/CASE name matches")
    verify.add_argument("-v", "--verbose", action="store_true", help="list passing cases too")
    verify.add_argument("-o", "--output", choices=("text", "json"), default="text")
    verify.set_defaults(run=run_verify)

    replay_cmd = commands.add_parser(
        "replay", help="which recorded requests the policies would have denied or warned about",
        description="Replay the writes and connects recorded in audit logs (audit.k8s.io/v1 JSON lines, plain or "
                    ".gz, RequestResponse or Request level) through the policies. Lists the requests that would "
                    "have been denied, warned about or recorded (dryrun); exit code 1 if any would be denied.")
    replay_cmd.add_argument("--audit-log", action="append", required=True, metavar="FILE",
                            help="an audit log file (repeatable)")
    _add_policy_arguments(replay_cmd)
    replay_cmd.add_argument("--workers", type=int, default=4, help="evaluations at once (default 4)")
    replay_cmd.add_argument("-o", "--output", choices=("table", "json"), default="table")
    replay_cmd.set_defaults(run=run_replay, runs_policy_engine=True)

    audit = commands.add_parser(
        "audit-existing", help="judge the objects stored in a live cluster",
        description="List objects of a live cluster (the kubeconfig kubectl would use) and judge each as if it "
                    "were created now, like Gatekeeper's audit. Pod Security uses each namespace's labels unless "
                    "--pod-security is given. Exit code 1 if any would be denied.")
    _add_policy_arguments(audit)
    audit.add_argument("--kubeconfig", help="path to a kubeconfig (default: KUBECONFIG, then ~/.kube/config)")
    audit.add_argument("--context", help="the kubeconfig context to use")
    audit.add_argument("--resource", action="append", choices=sorted(AUDITABLE), metavar="RESOURCE",
                       help=f"a resource to audit (repeatable; default pods): {', '.join(sorted(AUDITABLE))}")
    audit.add_argument("-o", "--output", choices=("table", "json"), default="table")
    audit.set_defaults(run=run_audit_existing)

    from securekube.policy.opa_server import add_serve_arguments, run_serve

    serve = commands.add_parser(
        "serve", help="serve OPA's REST API (the embedded OPA engine) over TLS",
        description="OPA's REST API as `opa run --server` offers the parts securekube uses, backed by the "
                    "embedded OPA engine: a remote admission engine for `securekube up --opa-url` where no "
                    "`opa` binary is at hand.")
    add_serve_arguments(serve)
    serve.set_defaults(run=run_serve, runs_policy_engine=True)


def _add_policy_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--policy", action="append", required=True, metavar="PATH",
                        help="policies directory, policy folder, .rego file, or Gatekeeper YAML (repeatable)")
    parser.add_argument("--parameters", metavar="FILE",
                        help="YAML mapping of policy name to its parameters (input.parameters)")
    parser.add_argument("--pod-security", metavar="LEVEL",
                        help="also judge with Pod Security at LEVEL (privileged, baseline, restricted, or "
                             "LEVEL:v1.N) in every namespace")


# ------------------------------------------------------------------------------- shared setup


def _engine(concurrency: int = 1) -> EmbeddedOpaEngine:
    if not embedded_engine_available():
        raise CliError(_BINDING_HINT)
    try:
        return EmbeddedOpaEngine(EmbeddedEngineConfig(max_concurrent_evaluations=max(1, concurrency)))
    except PolicyError as exc:
        raise CliError(f"the embedded OPA engine cannot start: {exc}") from None


def _read_documents(path: Path) -> list[Any]:
    try:
        text = sys.stdin.read() if str(path) == "-" else path.read_text(encoding="utf-8")
    except OSError as exc:
        raise CliError(f"cannot read {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError:
        raise CliError(f"{path}: not UTF-8 text") from None
    try:
        return [d for d in yaml.safe_load_all(text) if d is not None]
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f" (line {mark.line + 1}, column {mark.column + 1})" if mark is not None else ""
        raise CliError(f"{path}: not valid YAML or JSON{where}") from None


@dataclass
class _PolicySet:
    policies: list[Policy] = dataclasses.field(default_factory=list)
    templates: list[Mapping[str, Any]] = dataclasses.field(default_factory=list)
    constraints: list[Mapping[str, Any]] = dataclasses.field(default_factory=list)
    skipped_authorization: list[str] = dataclasses.field(default_factory=list)


def _gatekeeper_objects(path: Path, found: _PolicySet) -> None:
    for document in _read_documents(path):
        if isinstance(document, Mapping):
            if is_template(document):
                found.templates.append(document)
            elif is_constraint(document):
                found.constraints.append(document)


def _collect(paths: Sequence[str], engine: EmbeddedOpaEngine) -> _PolicySet:
    found = _PolicySet()
    for text in paths:
        path = Path(text)
        if path.is_file() and path.suffix == ".rego":
            found.policies.append(policy_from_file(path, engine))
        elif path.is_file() and path.suffix in YAML_SUFFIXES:
            _gatekeeper_objects(path, found)
        elif path.is_dir():
            if (path / POLICY_FILE).is_file():
                found.policies.append(read_policy(path, engine))
            elif any((child / POLICY_FILE).is_file() for child in path.iterdir() if child.is_dir()):
                found.policies.extend(read_policies(path, engine))
            for file in sorted(path.rglob("*")):
                relative = file.relative_to(path).parts
                if file.is_file() and file.suffix in YAML_SUFFIXES and not any(p.startswith(".") for p in relative):
                    _gatekeeper_objects(file, found)
        else:
            raise CliError(f"{path}: no such policy file or directory")
    found.skipped_authorization = [p.name for p in found.policies if p.is_authorization]
    found.policies = [p for p in found.policies if not p.is_authorization]
    return found


def read_parameters(path: str | None) -> dict[str, Mapping[str, Any]]:
    """A --parameters / --admission-parameters file: policy name -> that policy's input.parameters."""
    if not path:
        return {}
    documents = _read_documents(Path(path))
    if len(documents) != 1 or not isinstance(documents[0], Mapping) or \
            not all(isinstance(v, Mapping) for v in documents[0].values()):
        raise CliError(f"{path}: parameters must be one mapping of policy name to a mapping of parameters")
    return {str(k): v for k, v in documents[0].items()}


def _level(text: str | None) -> LevelVersion | None:
    if not text:
        return None
    try:
        return LevelVersion.parse(text)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def _judge(args: argparse.Namespace, engine: EmbeddedOpaEngine, *, pod_security_always: bool = False) -> Judge:
    """The Judge for --policy/--parameters/--pod-security; tells on stderr what was skipped."""
    try:
        found = _collect(args.policy, engine)
    except PolicyError as exc:
        raise CliError(with_columns(str(exc))) from None
    # Authorization policies (securekube.authz.*) judge requests, not objects: they are left out.
    if not (found.policies or found.templates or pod_security_always or args.pod_security):
        raise CliError(f"no admission policies or Gatekeeper templates found in {', '.join(args.policy)}")
    rego = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=OFFLINE_TIMEOUT))
    try:
        rego.replace(policies=found.policies, parameters=read_parameters(args.parameters), templates=found.templates,
                     constraints=found.constraints)
    except PolicyError as exc:
        raise CliError(with_columns(str(exc))) from None
    except (GatekeeperError, ValueError) as exc:
        raise CliError(str(exc)) from None
    level = _level(args.pod_security)
    pod_security = PodSecurityAdmission() if level is not None or pod_security_always else None
    return Judge(rego, pod_security, level)


def _cell(value: Any) -> str:
    # Recorded names and messages are someone else's text: a control character must not reach the terminal.
    text = "" if value is None else str(value)
    return text if text.isprintable() else go_quote(text)


def _table(header: Sequence[str], rows: Sequence[Sequence[Any]]) -> str:
    cells = [[_cell(c) for c in row] for row in rows]
    widths = [max([len(header[i])] + [len(row[i]) for row in cells]) for i in range(len(header) - 1)]
    lines = []
    for row in [list(header), *cells]:
        lines.append("  ".join(c.ljust(w) for c, w in zip(row, widths)) + "  " + row[-1])
    return "\n".join(line.rstrip() for line in lines)


def _finding_json(finding: Finding) -> dict[str, Any]:
    document = {"source": finding.source, "name": finding.name, "action": finding.action,
                "message": finding.message}
    if finding.details is not None:
        document["details"] = finding.details
    return document


def _summary_of(judgement: Judgement) -> tuple[str, str, str]:
    """(outcome, by, messages) for a table row."""
    shown = [f for f in judgement.findings if f.action == judgement.outcome] or list(judgement.findings)
    names = sorted({f.name.split("/", 1)[1] if f.source == "constraint" else f.name for f in shown})
    return judgement.outcome or "allow", ", ".join(names), "; ".join(f.message for f in shown)


# --------------------------------------------------------------------------------------- test


def run_test(args: argparse.Namespace) -> int:
    directory = Path(args.directory)
    engine = _engine()
    try:
        if (directory / POLICY_FILE).is_file():
            policies: Sequence[Policy] = (read_policy(directory, engine),)
        else:
            policies = read_policies(directory, engine)
    except PolicyError as exc:
        raise CliError(with_columns(str(exc))) from None
    if not policies:
        raise CliError(f"{directory}: no policy folders")
    reports = check_policies(policies, engine, coverage=args.coverage)
    if args.output == "json":
        print(json.dumps([_report_json(r) for r in reports], indent=2))
    else:
        print(_format_test_reports(reports))
    return EXIT_OK if all(r.passed for r in reports) else EXIT_FAILED


def _report_json(report: PolicyReport) -> dict[str, Any]:
    document: dict[str, Any] = {
        "policy": report.policy, "passed": report.passed, "problems": list(report.problems),
        "cases": [{"name": c.name, "passed": c.passed, **({"detail": c.detail} if c.detail else {})}
                  for c in report.cases],
    }
    if report.coverage is not None:
        document["coverage"] = {"file": report.coverage.path, "percent": round(report.coverage.percent, 1),
                                "covered_lines": sorted(report.coverage.covered),
                                "not_covered_lines": sorted(report.coverage.not_covered)}
    return document


def _format_test_reports(reports: Sequence[PolicyReport]) -> str:
    lines = []
    for report in reports:
        lines.append(f"{report.policy}:")
        lines += [f"  FAIL {problem}" for problem in report.problems]
        for case in report.cases:
            lines.append(f"  PASS {case.name}" if case.passed else f"  FAIL {case.name}: {case.detail}")
        if report.coverage is not None:
            uncovered = report.coverage.uncovered_ranges()
            lines.append(f"  coverage {report.coverage.percent:.1f}% of {POLICY_FILE}"
                         + (f" (not covered: lines {uncovered})" if uncovered else ""))
    total = sum(len(r.cases) for r in reports)
    passed = sum(c.passed for r in reports for c in r.cases)
    verdict = "PASS" if all(r.passed for r in reports) else "FAIL"
    lines.append(f"{verdict}: {passed}/{total}")
    return "\n".join(lines)


# --------------------------------------------------------------------------------------- eval


def run_eval(args: argparse.Namespace) -> int:
    engine = _engine()
    judge = _judge(args, engine)
    documents = _read_documents(Path(args.input))
    if not documents:
        raise CliError(f"{args.input}: no documents")
    user = {"username": args.user, "groups": [*args.group, "system:authenticated"]} if args.user else None
    results = []
    for index, document in enumerate(documents):
        if not isinstance(document, Mapping) or not document.get("kind"):
            raise CliError(f"{args.input}: document {index + 1} is not a Kubernetes object or AdmissionReview")
        if is_admission_review(document):
            review = dict(document)
        else:
            review = review_for_object(document, user=user) if user else review_for_object(document)
        try:
            request = request_from_review(review)
        except ValueError as exc:
            raise CliError(f"{args.input}: document {index + 1}: {exc}") from None
        if request.namespace:
            request = dataclasses.replace(request, namespace_object={
                "apiVersion": "v1", "kind": "Namespace", "metadata": {"name": request.namespace}})
        results.append((request, judge.judge(request)))
    if args.output == "json":
        print(json.dumps([_eval_json(request, judgement) for request, judgement in results], indent=2,
                         sort_keys=True))
    else:
        print(_format_eval(results))
    denied = any(j.outcome in ("deny", ERROR) for _, j in results)
    return EXIT_FAILED if denied else EXIT_OK


def _describe_request(request: Any) -> str:
    group, resource = request.group_resource
    target = f"{resource}.{group}" if group else resource
    if request.sub_resource:
        target += f"/{request.sub_resource}"
    name = f"{request.namespace}/{request.name}" if request.namespace else request.name
    return f"{request.operation} {target} {name or '(no name)'} by {request.user_info.username or '(no user)'}"


def _eval_json(request: Any, judgement: Judgement) -> dict[str, Any]:
    return {
        "request": _describe_request(request),
        "allowed": judgement.outcome not in ("deny", ERROR),
        "findings": [_finding_json(f) for f in judgement.findings],
        "patchedBy": list(judgement.patched_by),
        "object": judgement.object,
    }


def _format_eval(results: Sequence[tuple[Any, Judgement]]) -> str:
    lines = []
    for request, judgement in results:
        verdict = "denied" if judgement.outcome in ("deny", ERROR) else "allowed"
        lines.append(f"{_describe_request(request)}: {verdict}")
        for finding in judgement.findings:
            lines.append(f"  {finding.action:<6} {finding.display}")
        if judgement.patched_by:
            lines.append(f"  patch  {', '.join(judgement.patched_by)} changed the object (see -o json)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- verify


def run_verify(args: argparse.Namespace) -> int:
    try:
        pattern = re.compile(args.run_filter) if args.run_filter else None
    except re.error as exc:
        raise CliError(f"--run is not a regular expression: {exc}") from None
    try:
        suites = find_suites(Path(args.path))
    except SuiteError as exc:
        raise CliError(str(exc)) from None
    if not suites:
        raise CliError(f"{args.path}: no Gatekeeper suites (kind: Suite, apiVersion: test.gatekeeper.sh/v1alpha1)")
    engine = _engine()
    results: list[tuple[Path, list[CaseOutcome] | SuiteError, float]] = []
    for path, outcome in _timed(iter_outcomes(suites, engine, pattern)):
        results.append((path, *outcome))
    if args.output == "json":
        print(json.dumps([_suite_json(path, outcomes) for path, outcomes, _ in results], indent=2))
    else:
        print(_format_verify(results, args.verbose))
    failed = any(isinstance(o, SuiteError) or any(not c.passed for c in o) for _, o, _ in results)
    return EXIT_FAILED if failed else EXIT_OK


def _timed(items: Iterable[tuple[Path, list[CaseOutcome] | SuiteError]]
           ) -> Iterable[tuple[Path, tuple[list[CaseOutcome] | SuiteError, float]]]:
    started = time.monotonic()
    for path, outcome in items:
        now = time.monotonic()
        yield path, (outcome, now - started)
        started = now


def _suite_json(path: Path, outcomes: list[CaseOutcome] | SuiteError) -> dict[str, Any]:
    if isinstance(outcomes, SuiteError):
        return {"suite": str(path), "error": str(outcomes)}
    return {"suite": str(path), "cases": [
        {"test": c.test, "case": c.case, "passed": c.passed, "skipped": c.skipped,
         **({"detail": c.detail} if c.detail else {})} for c in outcomes]}


def _format_verify(results: Sequence[tuple[Path, list[CaseOutcome] | SuiteError, float]], verbose: bool) -> str:
    lines = []
    for path, outcomes, seconds in results:
        if isinstance(outcomes, SuiteError):
            lines.append(f"FAIL  {path}\n    {outcomes}")
            continue
        for case in outcomes:
            if not case.passed:
                lines.append(f"--- FAIL: {case.name}\n    {case.detail}")
            elif verbose:
                lines.append(f"--- {'SKIP' if case.skipped else 'PASS'}: {case.name}")
        ok = all(c.passed for c in outcomes)
        lines.append(f"{'ok  ' if ok else 'FAIL'}  {path}  {seconds:.3f}s  ({len(outcomes)} cases)")
    return "\n".join(lines)


# ------------------------------------------------------------------------------------- replay


def run_replay(args: argparse.Namespace) -> int:
    if args.workers < 1:
        raise CliError("--workers must be at least 1")
    engine = _engine(args.workers)
    judge = _judge(args, engine)
    report = ReplayReport()
    lines = read_audit_lines([Path(p) for p in args.audit_log], report.problems)
    replay(lines, judge.judge, report, workers=args.workers)
    if args.output == "json":
        print(json.dumps(_replay_json(report), indent=2, sort_keys=True))
    else:
        print(_format_replay(report))
    would_deny = report.count("deny") + report.count(ERROR)
    return EXIT_FAILED if would_deny else EXIT_OK


def _replay_json(report: ReplayReport) -> dict[str, Any]:
    return {
        "summary": {"events": report.events, "replayed": report.replayed, "denied": report.count("deny"),
                    "warned": report.count("warn"), "dryrun": report.count("dryrun"), "errors": report.count(ERROR),
                    "skipped": dict(sorted(report.skipped.items())), "malformed": len(report.problems)},
        "results": [{
            "file": r.file, "line": r.line, "auditID": r.audit_id, "time": r.time, "user": r.user,
            "operation": r.operation, "resource": r.resource, "namespace": r.namespace, "name": r.name,
            "originalCode": r.original_code, "outcome": r.judgement.outcome,
            "findings": [_finding_json(f) for f in r.judgement.findings],
        } for r in report.results],
        "malformed": [{"file": p.file, "line": p.line, "reason": p.reason} for p in report.problems],
    }


def _format_replay(report: ReplayReport) -> str:
    rows = []
    for r in report.results:
        outcome, by, messages = _summary_of(r.judgement)
        target = f"{r.namespace}/{r.name}" if r.namespace else r.name
        rows.append([f"{Path(r.file).name}:{r.line}", r.user, r.operation, r.resource, target,
                     "" if r.original_code is None else r.original_code, outcome, by, messages])
    parts = []
    if rows:
        parts.append(_table(["LINE", "USER", "OP", "RESOURCE", "OBJECT", "WAS", "WOULD", "BY", "MESSAGE"], rows))
    parts.append(f"{report.events} events read, {report.replayed} replayed: {report.count('deny')} would be denied, "
                 f"{report.count('warn')} warned, {report.count('dryrun')} recorded (dryrun), "
                 f"{report.count(ERROR)} could not be judged")
    if report.skipped:
        parts.append("skipped: " + ", ".join(f"{reason} ({count})" for reason, count in sorted(report.skipped.items())))
    if report.problems:
        parts.append(f"{len(report.problems)} unusable lines:")
        parts += [f"  {p.file}:{p.line}: {p.reason}" for p in report.problems[:50]]
        if len(report.problems) > 50:
            parts.append(f"  ... and {len(report.problems) - 50} more (see -o json)")
    return "\n".join(parts)


# ----------------------------------------------------------------------------- audit-existing


def run_audit_existing(args: argparse.Namespace) -> int:
    from securekube.cli.kubeconfig import ApiClient, load_kubeconfig

    engine = _engine()
    judge = _judge(args, engine, pod_security_always=True)
    access = load_kubeconfig(args.kubeconfig, args.context)
    resources = args.resource or ["pods"]
    results: list[tuple[str, Mapping[str, Any], Judgement]] = []
    with ApiClient(access) as client:
        namespaces = {str((n.get("metadata") or {}).get("name", "")): {**n, "apiVersion": "v1", "kind": "Namespace"}
                      for n in client.list_all(AUDITABLE["namespaces"][0])}
        for resource in resources:
            path, api_version, kind = AUDITABLE[resource]
            for item in client.list_all(path):
                obj = {**item, "apiVersion": api_version, "kind": kind}
                request = request_from_review(review_for_object(obj))
                namespace = namespaces.get(request.namespace) if request.namespace else None
                request = dataclasses.replace(request, namespace_object=namespace)
                judgement = judge.judge(request)
                if judgement.findings:
                    results.append((kind, obj, judgement))
    if args.output == "json":
        print(json.dumps([{"kind": kind, "namespace": (obj.get("metadata") or {}).get("namespace", ""),
                           "name": (obj.get("metadata") or {}).get("name", ""), "outcome": j.outcome,
                           "findings": [_finding_json(f) for f in j.findings]} for kind, obj, j in results],
                         indent=2, sort_keys=True))
    else:
        rows = []
        for kind, obj, judgement in results:
            metadata = obj.get("metadata") or {}
            target = f"{metadata.get('namespace')}/{metadata.get('name')}" if metadata.get("namespace") \
                else metadata.get("name")
            rows.append([kind, target, *_summary_of(judgement)])
        if rows:
            print(_table(["KIND", "OBJECT", "WOULD", "BY", "MESSAGE"], rows))
        denied = sum(1 for *_, j in results if j.outcome in ("deny", ERROR))
        print(f"{denied} of the audited objects would be denied if created now; "
              f"{len(results) - denied} have warnings or dryrun findings")
    return EXIT_FAILED if any(j.outcome in ("deny", ERROR) for *_, j in results) else EXIT_OK
