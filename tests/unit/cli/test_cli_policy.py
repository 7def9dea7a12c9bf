"""`securekube policy ...`: test, eval, verify, replay and audit-existing from the command line."""
from __future__ import annotations

import gzip
import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securekube.cli import kubeconfig
from securekube.cli.main import main
from securekube.policy.embedded import embedded_engine_available
from tests.conftest import require

ROOT = Path(__file__).resolve().parents[3]
POLICIES = ROOT / "policies"
GATEKEEPER = ROOT / "tests" / "fixtures" / "gatekeeper"
AUDIT_LOG = ROOT / "tests" / "fixtures" / "audit-replay" / "cluster-audit.log"


@pytest.fixture(autouse=True)
def opa_available() -> None:
    require(embedded_engine_available(), "the embedded OPA engine needs opa-golib-python-bindings")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["policy", *argv])
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------------------- test


def test_test_reports_every_case_and_coverage(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "test", str(POLICIES / "no-latest-tag"), "--coverage")
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "no-latest-tag:"
    assert "  PASS test_latest_is_denied" in lines
    assert "  PASS samples/disallowed/no-tag.yaml" in lines
    assert "  coverage 100.0% of policy.rego" in lines
    assert lines[-1].startswith("PASS: ")


def test_test_fails_with_the_reason(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = Path(shutil.copytree(POLICIES / "no-latest-tag", tmp_path / "no-latest-tag"))
    (folder / "samples" / "allowed" / "latest.yaml").write_text(
        (folder / "samples" / "disallowed" / "latest-tag.yaml").read_text())
    code, out, _ = run(capsys, "test", str(tmp_path), "-o", "json")
    assert code == 1
    (report,) = json.loads(out)
    failed = [c for c in report["cases"] if not c["passed"]]
    assert [c["name"] for c in failed] == ["samples/allowed/latest.yaml"]
    assert failed[0]["detail"].startswith("expected no denial, got")


def test_broken_rego_is_one_line_with_its_location(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    folder = tmp_path / "broken"
    folder.mkdir()
    (folder / "policy.rego").write_text(
        "package securekube.admission.broken\n\ndeny contains msg if {\n\tmsg := 1 2\n}\n")
    code, _, err = run(capsys, "test", str(tmp_path))
    assert code == 1
    assert err.startswith("securekube: error: ")
    assert "broken/policy.rego:4:" in err and "rego_parse_error" in err
    assert "Traceback" not in err


# --------------------------------------------------------------------------------------- eval


def test_eval_allows_and_denies_with_exit_codes(capsys: pytest.CaptureFixture[str]) -> None:
    allowed = POLICIES / "allowed-image-registries" / "samples" / "allowed" / "pod-from-localhost.yaml"
    code, out, _ = run(capsys, "eval", "--policy", str(POLICIES / "allowed-image-registries"), "--input", str(allowed))
    assert (code, out.strip()) == (0, "CREATE pods team-a/web by admin: allowed")
    denied = POLICIES / "no-exec-in-protected-namespaces" / "samples" / "disallowed" / "exec-into-audit-system.yaml"
    code, out, _ = run(capsys, "eval", "--policy", str(POLICIES), "--input", str(denied))
    assert code == 1
    assert out.splitlines() == [
        "CONNECT pods/exec audit-system/detection-sidecar-0 by admin: denied",
        "  deny   no-exec-in-protected-namespaces: exec into pods of namespace audit-system is not allowed",
    ]


def test_eval_adds_pod_security_and_reports_json(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    pod = tmp_path / "pod.yaml"
    pod.write_text("apiVersion: v1\nkind: Pod\nmetadata: {name: web, namespace: team-a}\n"
                   "spec: {containers: [{name: web, image: localhost/web:1}]}\n")
    code, out, _ = run(capsys, "eval", "--policy", str(POLICIES / "no-latest-tag"), "--input", str(pod),
                       "--pod-security", "baseline")
    assert code == 0
    code, out, _ = run(capsys, "eval", "--policy", str(POLICIES / "no-latest-tag"), "--input", str(pod),
                       "--pod-security", "restricted", "-o", "json")
    assert code == 1
    (result,) = json.loads(out)
    assert result["allowed"] is False
    assert [(f["name"], f["action"]) for f in result["findings"]] == [("PodSecurity", "deny")]
    assert result["findings"][0]["message"].startswith('violates PodSecurity "restricted:latest"')


def test_eval_takes_a_tutorial_policy_and_gatekeeper_yaml(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    tutorial = tmp_path / "registry.rego"
    tutorial.write_text("""package kubernetes.admission

deny contains msg if {
	input.request.kind.kind == "Pod"
	some container in input.request.object.spec.containers
	not startswith(container.image, "hooli.com/")
	msg := sprintf("image '%v' comes from untrusted registry", [container.image])
}
""")
    pod = GATEKEEPER / "allowedrepos" / "samples" / "disallowed-both.yaml"
    code, out, _ = run(capsys, "eval", "--policy", str(tutorial), "--policy", str(GATEKEEPER / "allowedrepos"),
                       "--input", str(pod))
    assert code == 1
    assert "  deny   registry: image 'quay.io/web/web:2' comes from untrusted registry" in out.splitlines()
    assert any(line.startswith("  warn   [repo-is-localhost] container <web> has an invalid image repo")
               for line in out.splitlines())


def test_eval_uses_parameters(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    parameters = tmp_path / "parameters.yaml"
    parameters.write_text("allowed-image-registries:\n  registries: [docker.io/library/]\n")
    pod = POLICIES / "allowed-image-registries" / "samples" / "disallowed" / "pod-from-docker-hub.yaml"
    code, _, _ = run(capsys, "eval", "--policy", str(POLICIES / "allowed-image-registries"), "--input", str(pod),
                     "--parameters", str(parameters))
    assert code == 0


def test_eval_refuses_input_that_is_not_an_object(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("- just\n- a list\n")
    code, _, err = run(capsys, "eval", "--policy", str(POLICIES / "no-latest-tag"), "--input", str(bad))
    assert code == 1 and "document 1 is not a Kubernetes object or AdmissionReview" in err


# ------------------------------------------------------------------------------------- verify


def test_verify_runs_gatekeeper_suites(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "verify", str(GATEKEEPER))
    assert code == 0
    assert [line.split()[0] for line in out.splitlines()] == ["ok", "ok", "ok"]


def test_verify_shows_failing_cases(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    library = Path(shutil.copytree(GATEKEEPER / "serviceaccountexists", tmp_path / "sa"))
    suite = library / "suite.yaml"
    suite.write_text(suite.read_text().replace("- violations: yes", "- violations: 3"))
    code, out, _ = run(capsys, "verify", str(suite), "--run", "no-inventory")
    assert code == 1
    assert "--- FAIL: service-account-must-exist/no-inventory" in out
    assert "got 1 violations, want 3" in out


# ------------------------------------------------------------------------------------- replay


def test_replay_lists_what_would_have_been_denied(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "replay", "--audit-log", str(AUDIT_LOG), "--policy", str(POLICIES))
    assert code == 1
    lines = out.splitlines()
    assert lines[0].split() == ["LINE", "USER", "OP", "RESOURCE", "OBJECT", "WAS", "WOULD", "BY", "MESSAGE"]
    assert lines[2].split()[:7] == ["cluster-audit.log:5", "admin", "CONNECT", "pods/exec", "kube-system/coredns-0",
                                    "101", "deny"]
    assert ("12 events read, 8 replayed: 6 would be denied, 0 warned, 0 recorded (dryrun), "
            "0 could not be judged") in lines
    assert "3 unusable lines:" in lines
    assert f"  {AUDIT_LOG}:6: not JSON" in lines


def test_replay_json_and_gzip(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    compressed = tmp_path / "audit.log.gz"
    compressed.write_bytes(gzip.compress(AUDIT_LOG.read_bytes()))
    code, out, _ = run(capsys, "replay", "--audit-log", str(compressed), "--policy", str(POLICIES), "-o", "json",
                       "--workers", "2")
    assert code == 1
    document = json.loads(out)
    assert document["summary"]["denied"] == 6 and document["summary"]["malformed"] == 3
    assert [r["line"] for r in document["results"]] == [2, 5, 9, 10, 11, 12]
    assert [m["line"] for m in document["malformed"]] == [6, 7, 14]


def test_replay_of_a_clean_log_exits_zero(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    log = tmp_path / "clean.log"
    log.write_text("\n".join(line for line in AUDIT_LOG.read_text().splitlines()
                             if '"auditID": "00000000-0000-4000-8000-000000000008"' in line) + "\n")
    code, out, _ = run(capsys, "replay", "--audit-log", str(log), "--policy", str(POLICIES))
    assert code == 0
    assert "1 events read, 1 replayed: 0 would be denied" in out


# ----------------------------------------------------------------------------- audit-existing


class FakeClient:
    """Stands in for kubeconfig.ApiClient: lists from memory."""

    lists: dict[str, list[dict[str, Any]]] = {}

    def __init__(self, access: Any) -> None:
        self.access = access

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(self, *exc_info: object) -> None:
        return None

    def list_all(self, path: str) -> list[dict[str, Any]]:
        return self.lists.get(path, [])


@pytest.fixture
def cluster(monkeypatch: pytest.MonkeyPatch) -> Iterator[type[FakeClient]]:
    monkeypatch.setattr(kubeconfig, "load_kubeconfig", lambda explicit=None, context=None: "access")
    monkeypatch.setattr(kubeconfig, "ApiClient", FakeClient)
    FakeClient.lists = {
        "/api/v1/namespaces": [
            {"metadata": {"name": "team-a", "labels": {"pod-security.kubernetes.io/enforce": "baseline"}}},
            {"metadata": {"name": "team-b"}}],
        "/api/v1/pods": [
            {"metadata": {"name": "sniffer", "namespace": "team-a"},
             "spec": {"hostNetwork": True, "containers": [{"name": "s", "image": "localhost/s:1"}]}},
            {"metadata": {"name": "plain", "namespace": "team-b"},
             "spec": {"containers": [{"name": "p", "image": "localhost/p:1"}]}},
        ],
    }
    yield FakeClient


def test_audit_existing_judges_stored_objects_with_their_namespace_labels(
        capsys: pytest.CaptureFixture[str], cluster: type[FakeClient]) -> None:
    code, out, _ = run(capsys, "audit-existing", "--policy", str(POLICIES / "no-latest-tag"), "-o", "json")
    assert code == 1
    results = {r["name"]: r for r in json.loads(out)}
    assert set(results) == {"sniffer"}  # team-b enforces nothing, and its pod's image is pinned
    assert results["sniffer"]["findings"][0]["message"].startswith(
        'violates PodSecurity "baseline:latest": host namespaces (hostNetwork=true)')


def test_audit_existing_can_judge_everything_at_one_level(capsys: pytest.CaptureFixture[str],
                                                          cluster: type[FakeClient]) -> None:
    code, out, _ = run(capsys, "audit-existing", "--policy", str(POLICIES / "no-latest-tag"),
                       "--pod-security", "restricted")
    assert code == 1
    assert out.splitlines()[-1] == ("2 of the audited objects would be denied if created now; "
                                    "0 have warnings or dryrun findings")
