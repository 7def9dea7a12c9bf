"""Replay of recorded audit events through the policies: findings, skips and bad lines, never a crash."""
from __future__ import annotations

import gzip
import json
from pathlib import Path

import pytest

from securekube.admission.interfaces import CONNECT, UPDATE
from securekube.admission.judge import Judge, Judgement
from securekube.admission.opa import RegoAdmission, RegoAdmissionConfig
from securekube.admission.podsecurity import LevelVersion, PodSecurityAdmission
from securekube.admission.replay import ReplayProblem, ReplayReport, read_audit_lines, replay, request_from_event
from securekube.policy.embedded import EmbeddedOpaEngine
from securekube.policy.loader import read_policies

ROOT = Path(__file__).resolve().parents[3]
LOG = ROOT / "tests" / "fixtures" / "audit-replay" / "cluster-audit.log"


@pytest.fixture
def judge(engine: EmbeddedOpaEngine) -> Judge:
    rego = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5))
    rego.set_policies([p for p in read_policies(ROOT / "policies", engine) if p.is_admission])
    return Judge(rego)


def run(paths: list[Path], judge: Judge) -> ReplayReport:
    report = ReplayReport()
    return replay(read_audit_lines(paths, report.problems), judge.judge, report, workers=2)


def test_the_fixture_log_replays_with_the_expected_findings(judge: Judge) -> None:
    report = run([LOG], judge)
    outcomes = {r.line: (r.operation, r.resource, r.judgement.outcome,
                         sorted({f.name for f in r.judgement.findings})) for r in report.results}
    assert outcomes == {
        2: ("CREATE", "pods", "deny", ["allowed-image-registries", "no-latest-tag", "resource-limits-required",
                                       "run-as-non-root"]),
        5: ("CONNECT", "pods/exec", "deny", ["no-exec-in-protected-namespaces"]),
        9: ("UPDATE", "pods", "deny", ["no-latest-tag"]),
        10: ("DELETE", "secrets", "deny", ["protect-audit-namespace"]),
        11: ("CREATE", "configmaps", "deny", ["protect-audit-namespace"]),
        12: ("CREATE", "pods", "deny", ["no-latest-tag", "resource-limits-required", "run-as-non-root"]),
    }
    assert (report.events, report.replayed) == (12, 8)
    assert report.skipped == {"stage RequestReceived": 1, "verb list is not replayed": 1,
                              "no request body recorded (Metadata level)": 1, "not a resource request": 1}
    assert report.problems == [ReplayProblem(str(LOG), 6, "not JSON"), ReplayProblem(str(LOG), 7, "not JSON"),
                               ReplayProblem(str(LOG), 14, "not an audit.k8s.io/v1 Event")]
    first = report.results[0]
    assert (first.user, first.namespace, first.name, first.original_code) == ("alice", "team-a", "web", 201)


def test_impersonated_requests_are_judged_as_the_impersonated_user(judge: Judge) -> None:
    (line_11,) = [r for r in run([LOG], judge).results if r.line == 11]
    assert line_11.user == "alice"


def test_gzipped_logs_read_the_same(judge: Judge, tmp_path: Path) -> None:
    compressed = tmp_path / "audit.log.gz"
    compressed.write_bytes(gzip.compress(LOG.read_bytes()))
    plain, packed = run([LOG], judge), run([compressed], judge)
    assert [(r.line, r.judgement.outcome) for r in packed.results] == [(r.line, r.judgement.outcome)
                                                                       for r in plain.results]


def test_a_truncated_gzip_file_is_reported_and_the_next_file_still_read(judge: Judge, tmp_path: Path) -> None:
    damaged = tmp_path / "damaged.log.gz"
    data = gzip.compress(LOG.read_bytes())
    damaged.write_bytes(data[: len(data) // 2])
    report = run([damaged, LOG], judge)
    assert any(p.file == str(damaged) and "compressed data is damaged" in p.reason for p in report.problems)
    assert {r.line for r in report.results if r.file == str(LOG)} == {2, 5, 9, 10, 11, 12}


def test_missing_files_and_binary_garbage_are_problems_not_crashes(judge: Judge, tmp_path: Path) -> None:
    garbage = tmp_path / "garbage.log"
    garbage.write_bytes(b"\xff\xfe\x00binary\n[1, 2]\n\n" + json.dumps({"kind": "EventList", "items": [3]}).encode())
    report = run([tmp_path / "missing.log", garbage], judge)
    assert [(Path(p.file).name, p.line, p.reason) for p in report.problems] == [
        ("missing.log", 0, "cannot be read: No such file or directory"),
        ("garbage.log", 1, "not JSON"),
        ("garbage.log", 2, "not a JSON object"),
        ("garbage.log", 4, "not an audit.k8s.io/v1 Event"),
    ]
    assert report.events == 0


def event(verb: str, **fields: object) -> dict[str, object]:
    base: dict[str, object] = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "stage": "ResponseComplete",
                               "verb": verb, "auditID": "id-1", "user": {"username": "ada"},
                               "objectRef": {"resource": "pods", "namespace": "team-a", "name": "web",
                                             "apiVersion": "v1"}}
    base.update(fields)
    return base


def test_exec_options_come_from_the_request_uri() -> None:
    converted = request_from_event(event(
        "create", requestURI="/api/v1/namespaces/team-a/pods/web/exec?command=cat&command=%2Fetc%2Fshadow&tty=true",
        objectRef={"resource": "pods", "namespace": "team-a", "name": "web", "subresource": "exec"}))
    assert not isinstance(converted, str)
    assert converted.operation == CONNECT
    assert converted.object == {"apiVersion": "v1", "kind": "PodExecOptions", "command": ["cat", "/etc/shadow"],
                                "tty": True}


def test_an_update_remembers_the_object_the_log_last_recorded(judge: Judge, tmp_path: Path) -> None:
    old = {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": "web", "namespace": "team-a"},
           "spec": {"containers": [{"name": "web", "image": "localhost/web:latest"}]}}
    relabelled = {**old, "metadata": {**old["metadata"], "labels": {"a": "b"}}}
    log = tmp_path / "audit.log"
    log.write_text(json.dumps(event("create", requestObject=old, responseObject=old)) + "\n" +
                   json.dumps(event("update", requestObject=relabelled, responseObject=relabelled)) + "\n")
    report = run([log], judge)
    # The create with :latest is denied; the label change on the same pod is not judged again.
    assert [r.line for r in report.results if r.judgement.outcome == "deny"] == [1]
    converted = request_from_event(event("update", requestObject=relabelled), lambda key: old)
    assert not isinstance(converted, str) and converted.operation == UPDATE and converted.old_object == old


def test_pod_security_can_judge_every_namespace_at_one_level(engine: EmbeddedOpaEngine) -> None:
    judge = Judge(None, PodSecurityAdmission(), LevelVersion("restricted"))
    report = ReplayReport()
    replay(read_audit_lines([LOG], report.problems), judge.judge, report)
    denied = {r.line: r.judgement.findings[0].message for r in report.results if r.judgement.outcome == "deny"}
    # Every pod write: none of these pods drops its capabilities. Lines 9 and 13 are updates whose
    # image differs from the object the log last recorded, so they are judged too.
    assert set(denied) == {2, 8, 9, 12, 13}
    assert denied[2].startswith('violates PodSecurity "restricted:latest": allowPrivilegeEscalation != false')


def test_a_request_that_breaks_the_judge_is_reported_and_the_replay_goes_on() -> None:
    def judge(request: object) -> Judgement:
        raise KeyError("boom")

    report = ReplayReport()
    replay(read_audit_lines([LOG], report.problems), judge, report)
    assert report.replayed == 8
    assert {r.judgement.outcome for r in report.results} == {"error"}
    assert report.results[0].judgement.findings[0].message == "could not be judged (KeyError)"
