"""`securekube up --audit-webhook-config-file`: events reach an mTLS receiver; /metrics counts them."""
from __future__ import annotations

import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.audit_receiver import Receiver
from tests.integration.certs import issue_client, issue_server, load_ca, make_ca, write_ca
from tests.integration.cluster import Cluster, free_port

pytestmark = pytest.mark.integration


def webhook_kubeconfig(path: Path, server: str, ca: str, cert: str, key: str, extra_cluster: str = "") -> Path:
    """An upstream-style --audit-webhook-config-file: a kubeconfig naming the receiver and our credentials."""
    path.write_text(f"""apiVersion: v1
kind: Config
clusters:
  - name: audit-receiver
    cluster:
      server: {server}
      certificate-authority: {ca}
{extra_cluster}users:
  - name: apiserver
    user:
      client-certificate: {cert}
      client-key: {key}
contexts:
  - name: webhook
    context: {{cluster: audit-receiver, user: apiserver}}
current-context: webhook
""")
    return path


@pytest.fixture(scope="module")
def receiver_pki(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, tuple]:
    """The receiver's own CA: it signs the receiver's serving certificate and the API server's client one."""
    out = tmp_path_factory.mktemp("receiver-pki")
    return out, make_ca("audit-receiver-ca")


@pytest.fixture(scope="module")
def receiver(receiver_pki: tuple[Path, tuple]) -> Iterator[Receiver]:
    out, ca = receiver_pki
    cert, key = issue_server(out, "receiver", ca)
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(cert, key)
    context.load_verify_locations(write_ca(out, "receiver-ca", ca))
    context.verify_mode = ssl.CERT_REQUIRED  # only the API server's client certificate gets in
    server = Receiver(context)
    yield server
    server.stop()


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, receiver: Receiver,
            receiver_pki: tuple[Path, tuple]) -> Iterator[Cluster]:
    out, ca = receiver_pki
    cert, key = issue_client(out, "apiserver-audit", ca, "securekube-apiserver")
    config = webhook_kubeconfig(out / "webhook.kubeconfig", receiver.url, str(out / "receiver-ca.crt"), cert, key)
    c = Cluster(tmp_path_factory.mktemp("webhook") / "data", free_port(),
                args=("--no-node", "--audit-webhook-config-file", str(config))).start()
    yield c
    c.stop()


def received(receiver: Receiver, predicate, seconds: float = 15.0) -> list[dict]:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        with receiver.lock:
            matches = [item for body in receiver.bodies for item in body["items"] if predicate(item)]
        if matches:
            return matches
        time.sleep(0.1)
    return []


def metric(text: str, name: str) -> float:
    values = [float(line.rsplit(" ", 1)[1]) for line in text.splitlines() if line.startswith(name + " ")]
    assert len(values) == 1, f"{name} not exposed once in:\n{text}"
    return values[0]


def test_events_reach_the_receiver_over_mtls(cluster: Cluster, receiver: Receiver) -> None:
    cluster.kubectl("create", "configmap", "webhook-probe", "--from-literal=a=b")
    events = received(receiver, lambda e: e.get("verb") == "create"
                      and (e.get("objectRef") or {}).get("name") == "webhook-probe")
    assert events, "the create never reached the webhook receiver"
    assert events[-1]["apiVersion"] == "audit.k8s.io/v1" and events[-1]["user"]["username"] == "securekube-admin"
    assert events[-1]["responseStatus"]["code"] == 201
    assert "securekube-apiserver" in receiver.client_names  # the webhook kubeconfig's client certificate
    # The webhook is a copy: the durable log has the same event.
    log = (cluster.data_dir / "audit" / "audit.log").read_text()
    assert events[-1]["auditID"] in log


def test_metrics_count_audit_events_and_webhook_delivery(cluster: Cluster, receiver: Receiver) -> None:
    cluster.kubectl("create", "configmap", "metrics-probe", "--from-literal=a=b")
    assert received(receiver, lambda e: (e.get("objectRef") or {}).get("name") == "metrics-probe")
    text = cluster.kubectl("get", "--raw", "/metrics").stdout
    assert metric(text, "apiserver_audit_event_total") >= 2
    assert metric(text, "securekube_audit_webhook_sent_total") >= 2
    assert 'apiserver_audit_error_total{plugin="webhook"} 0' in text.splitlines()
    assert 'apiserver_audit_error_total{plugin="log"} 0' in text.splitlines()
    assert "# TYPE apiserver_audit_event_total counter" in text


def test_metrics_need_the_monitoring_permission(cluster: Cluster, tmp_path: Path) -> None:
    ca = load_ca(cluster.pki)
    nobody = issue_client(tmp_path, "nobody", ca, "nobody")
    scraper = issue_client(tmp_path, "scraper", ca, "scraper", ("system:monitoring",))
    with cluster.client(cert=nobody) as client:
        denied = client.get("/metrics")
    assert denied.status_code == 403
    assert 'cannot get path "/metrics"' in denied.json()["message"]
    with cluster.client(cert=scraper) as client:
        allowed = client.get("/metrics")
    assert allowed.status_code == 200 and "apiserver_audit_event_total" in allowed.text


def test_an_unverified_webhook_config_is_refused_at_start(tmp_path: Path, receiver: Receiver,
                                                          receiver_pki: tuple[Path, tuple]) -> None:
    out, _ = receiver_pki
    config = webhook_kubeconfig(tmp_path / "insecure.kubeconfig", receiver.url, str(out / "receiver-ca.crt"),
                                str(out / "apiserver-audit.crt"), str(out / "apiserver-audit.key"),
                                extra_cluster="      insecure-skip-tls-verify: true\n")
    done = subprocess.run([sys.executable, "-m", "securekube.cli.main", "up", "--data-dir", str(tmp_path / "data"),
                           "--port", str(free_port()), "--no-node", "--audit-webhook-config-file", str(config)],
                          capture_output=True, text=True, timeout=60)
    assert done.returncode != 0
    assert "insecure-skip-tls-verify" in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "data").exists()  # refused before anything was created
