"""Audit on a running cluster: complete events, failed authentication, no secret values, tamper evidence,
and no acknowledged write without its event, even after kill -9."""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import threading
import time

import pytest

from tests.integration.certs import issue_client, load_ca
from tests.integration.cluster import Cluster, free_port

pytestmark = pytest.mark.integration
CM = "/api/v1/namespaces/default/configmaps"


def events(cluster: Cluster) -> list[dict]:
    return [json.loads(line) for line in (cluster.data_dir / "audit" / "audit.log").read_text().splitlines() if line]


def by_audit_id(cluster: Cluster, audit_id: str) -> list[dict]:
    """The request's events once its ResponseComplete is there (reads are recorded just after the response)."""
    deadline = time.monotonic() + 10
    while True:
        found = [e for e in events(cluster) if e["auditID"] == audit_id]
        if any(e["stage"] == "ResponseComplete" for e in found) or time.monotonic() > deadline:
            return found
        time.sleep(0.05)


def verify(cluster: Cluster, *files: str) -> subprocess.CompletedProcess:
    logs = files or [str(p) for p in sorted((cluster.data_dir / "audit").glob("audit.log*"))
                     if not p.name.endswith((".lock", ".checkpoint"))]
    return subprocess.run([sys.executable, "-m", "securekube.cli.main", "audit", "verify", "--data-dir",
                           str(cluster.data_dir), *logs], capture_output=True, text=True, timeout=60)


def test_a_write_has_request_and_response_events_with_the_audit_id(cluster):
    with cluster.client(headers={"User-Agent": "audit-test/1"}) as api:
        response = api.post(CM, json={"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "audited"}})
    audit_id = response.headers["Audit-Id"]
    recorded = by_audit_id(cluster, audit_id)
    assert [e["stage"] for e in recorded] == ["RequestReceived", "ResponseComplete"]
    done = recorded[-1]
    assert done["verb"] == "create" and done["user"]["username"] == "securekube-admin"
    assert done["objectRef"]["resource"] == "configmaps" and done["objectRef"]["namespace"] == "default"
    assert done["responseStatus"]["code"] == 201 and done["userAgent"] == "audit-test/1"
    assert done["sourceIPs"] == ["127.0.0.1"]
    assert done["annotations"]["authorization.k8s.io/decision"] == "allow"


def test_failed_authentication_is_audited_with_its_reason(cluster):
    with cluster.client(cert=None, headers={"Authorization": "Bearer forged.token.value"}) as anonymous:
        response = anonymous.get("/api/v1/namespaces")
    assert response.status_code == 401
    [event] = by_audit_id(cluster, response.headers["Audit-Id"])
    assert event["responseStatus"]["code"] == 401
    assert event["annotations"]["authentication.securekube.io/failure"]
    assert "forged.token.value" not in json.dumps(event)


def test_denial_and_impersonation_are_recorded(cluster, tmp_path):
    with cluster.client(cert=issue_client(tmp_path, "mallory", load_ca(cluster.pki), "mallory")) as mallory:
        denied = mallory.get("/api/v1/namespaces/default/secrets")
    [event] = [e for e in by_audit_id(cluster, denied.headers["Audit-Id"]) if e["stage"] == "ResponseComplete"]
    assert event["responseStatus"]["code"] == 403 and event["responseStatus"]["reason"] == "Forbidden"
    assert event["annotations"]["authorization.k8s.io/decision"] == "forbid"
    with cluster.client(headers={"Impersonate-User": "jane"}) as admin:
        response = admin.get("/api/v1/namespaces/default/configmaps")
    [event] = [e for e in by_audit_id(cluster, response.headers["Audit-Id"]) if e["stage"] == "ResponseComplete"]
    assert event["user"]["username"] == "securekube-admin" and event["impersonatedUser"]["username"] == "jane"


def test_secret_values_never_reach_the_audit_log(cluster):
    value = "audit-must-not-see-this-9d1c"
    with cluster.client() as api:
        api.post("/api/v1/namespaces/default/secrets",
                 json={"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "hidden"}, "stringData": {"v": value}})
        api.get("/api/v1/namespaces/default/secrets/hidden")
    text = (cluster.data_dir / "audit" / "audit.log").read_text()
    assert value not in text and "YXVkaXQtbXVzdC1ub3Qtc2VlLXRoaXMtOWQxYw" not in text


def test_verify_finds_an_edited_event(cluster, tmp_path):
    assert verify(cluster).returncode == 0
    log = cluster.data_dir / "audit" / "audit.log"
    copy = tmp_path / "audit.log"
    lines = log.read_text().splitlines()
    edited = json.loads(lines[3])
    edited["user"]["username"] = "someone-else"
    lines[3] = json.dumps(edited, separators=(",", ":"))
    copy.write_text("\n".join(lines) + "\n")
    result = verify(cluster, str(copy))
    assert result.returncode == 1 and ":4" in result.stdout + result.stderr


def test_kill_9_leaves_no_acknowledged_write_without_its_event(tmp_path):
    cluster = Cluster(tmp_path / "data", free_port()).start()
    acknowledged: list[str] = []
    stop = threading.Event()

    def writer(worker: int) -> None:
        with cluster.client() as api:
            i = 0
            while not stop.is_set():
                try:
                    response = api.post(CM, json={"apiVersion": "v1", "kind": "ConfigMap",
                                                  "metadata": {"name": f"burst-{worker}-{i}"}})
                except Exception:
                    return  # the server is gone
                if response.status_code == 201:
                    acknowledged.append(response.headers["Audit-Id"])
                i += 1

    threads = [threading.Thread(target=writer, args=(w,)) for w in range(8)]
    for t in threads:
        t.start()
    time.sleep(2.0)
    cluster.process.send_signal(signal.SIGKILL)
    cluster.process.wait()
    stop.set()
    for t in threads:
        t.join()
    assert len(acknowledged) > 20
    completed = {e["auditID"] for e in events(cluster) if e["stage"] == "ResponseComplete"}
    missing = [a for a in acknowledged if a not in completed]
    assert missing == []
    assert verify(cluster).returncode == 0  # the chain is intact up to the crash


def test_a_read_records_its_outcome_as_upstream(cluster):
    with cluster.client() as api:
        missing = api.get(f"{CM}/no-such-configmap")
        found = api.get("/api/v1/namespaces/default")
    assert missing.status_code == 404 and found.status_code == 200
    [event] = [e for e in by_audit_id(cluster, missing.headers["Audit-Id"]) if e["stage"] == "ResponseComplete"]
    assert event["responseStatus"] == {"metadata": {}, "status": "Failure", "reason": "NotFound",
                                       "message": 'configmaps "no-such-configmap" not found', "code": 404}
    [event] = [e for e in by_audit_id(cluster, found.headers["Audit-Id"]) if e["stage"] == "ResponseComplete"]
    assert event["responseStatus"] == {"metadata": {}, "code": 200}
