"""A cluster's life: restart keeps data, certificates and encryption keys rotate while it serves."""
from __future__ import annotations

import os
import socket
import ssl
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
from cryptography import x509

from securekube.policy import go_runtime
from tests.integration.cluster import Cluster, free_port

pytestmark = pytest.mark.integration


@pytest.fixture()
def fresh(tmp_path):
    running = Cluster(tmp_path / "data", free_port()).start()
    yield running
    running.stop()


def securekube(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "securekube.cli.main", *args], capture_output=True, text=True, timeout=120)


def serving_serial(cluster: Cluster) -> int:
    ctx = ssl.create_default_context(cafile=str(cluster.pki / "ca.crt"))
    with socket.create_connection(("127.0.0.1", cluster.port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="127.0.0.1") as tls:
            return x509.load_der_x509_certificate(tls.getpeercert(binary_form=True)).serial_number


def secret(name: str, value: str) -> dict:
    return {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": name}, "stringData": {"v": value}}


def test_restart_keeps_data_and_pki(fresh):
    ca_before = (fresh.pki / "ca.crt").read_bytes()
    with fresh.client() as api:
        assert api.post("/api/v1/namespaces/default/secrets", json=secret("kept", "across-restarts")).status_code == 201
    assert fresh.stop() == 0
    assert "securekube: stopped" in fresh.log()
    fresh.start()
    assert (fresh.pki / "ca.crt").read_bytes() == ca_before
    assert "pki: reused" in fresh.log()
    with fresh.client() as api:
        assert api.get("/api/v1/namespaces/default/secrets/kept").json()["data"]["v"] == "YWNyb3NzLXJlc3RhcnRz"


def test_pki_rotate_without_downtime(fresh):
    before = serving_serial(fresh)
    with fresh.client() as api:
        assert api.get("/api/v1/namespaces").status_code == 200  # keep-alive connection opened before the rotation
        result = securekube("pki", "rotate", "--dir", str(fresh.pki))
        assert result.returncode == 0, result.stderr
        assert "PRIVATE KEY" not in result.stdout + result.stderr
        assert api.get("/api/v1/namespaces").status_code == 200  # the open connection keeps working
    deadline = time.monotonic() + 15
    while serving_serial(fresh) == before and time.monotonic() < deadline:
        time.sleep(0.5)
    assert serving_serial(fresh) != before
    with fresh.client() as api:  # the rotated admin credential works on a new connection
        assert api.get("/api/v1/namespaces").status_code == 200


def test_encryption_key_rotation_loses_no_concurrent_write(fresh):
    stop = threading.Event()
    written: list[str] = []
    failures: list[int] = []

    def writer() -> None:
        with fresh.client() as api:
            i = 0
            while not stop.is_set():
                response = api.post("/api/v1/namespaces/default/secrets", json=secret(f"w-{i}", f"value-{i}"))
                (written.append(f"w-{i}") if response.status_code == 201 else failures.append(response.status_code))
                i += 1
                time.sleep(0.02)

    thread = threading.Thread(target=writer)
    thread.start()
    try:
        result = securekube("secrets", "encryption", "rotate", "--data-dir", str(fresh.data_dir))
    finally:
        stop.set()
        thread.join()
    assert result.returncode == 0, result.stderr
    assert failures == [] and len(written) > 10
    status = securekube("secrets", "encryption", "status", "--data-dir", str(fresh.data_dir)).stdout
    usage = status.split("stored secrets by key:")[1].split()
    assert len(usage) == 2 and usage[1] == str(len(written))  # one key holds every secret
    with fresh.client() as api:
        for i, name in enumerate(written):
            assert api.get(f"/api/v1/namespaces/default/secrets/{name}").json()["data"]["v"]


def test_value_whose_key_is_gone_is_a_500_naming_the_key(fresh):
    with fresh.client() as api:
        api.post("/api/v1/namespaces/default/secrets", json=secret("orphan", "unreadable-later"))
    config = fresh.data_dir / "encryption-config.yaml"
    old_name = config.read_text().split("name: ")[1].split()[0]
    fresh.stop()
    config.unlink()  # a new default config has a fresh key; the old one is lost
    fresh.start()
    with fresh.client() as api:
        response = api.get("/api/v1/namespaces/default/secrets/orphan")
        assert response.status_code == 500
        status = response.json()
        assert status["reason"] == "InternalError" and old_name in status["message"]
        assert "unreadable-later" not in response.text
        # Other secrets keep working.
        assert api.post("/api/v1/namespaces/default/secrets", json=secret("fresh", "x")).status_code == 201


def _environment(pid: int) -> dict[str, str]:
    raw = Path(f"/proc/{pid}/environ").read_bytes().split(b"\0")
    return dict(item.decode().split("=", 1) for item in raw if b"=" in item)


def test_the_server_runs_its_policy_engine_with_the_tuned_go_collector(fresh):
    # The started process replaced itself (same PID) by one whose environment sets GOGC: the only
    # way the OPA engine's Go runtime sees the setting (securekube/policy/go_runtime.py).
    assert "GOGC" not in _environment(os.getpid())
    assert _environment(fresh.process.pid)["GOGC"] == go_runtime.ENGINE_GOGC
    with fresh.client() as client:
        assert client.get("/readyz").status_code == 200


def test_a_collector_setting_of_the_user_is_kept(tmp_path, monkeypatch):
    monkeypatch.setenv("GOGC", "300")  # inherited by the server the Cluster starts
    running = Cluster(tmp_path / "data", free_port()).start()
    try:
        assert _environment(running.process.pid)["GOGC"] == "300"
    finally:
        running.stop()
