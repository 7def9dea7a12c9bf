"""Admission on a remote OPA server: `securekube policy serve` over mTLS, `securekube up --opa-url`, real kubectl.

No `opa` binary can be installed on these machines (no Go toolchain, only package registries), so
the server is securekube's own implementation of OPA's REST API around the real OPA engine; the
client side is the same opa-python-client a user would point at `opa run --server`.
"""
from __future__ import annotations

import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.integration.cluster import Cluster, free_port, restricted_pod_yaml
from tests.unit.policy.opa_tls import TlsFiles, make_tls_files

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def tls(tmp_path_factory: pytest.TempPathFactory) -> TlsFiles:
    return make_tls_files(tmp_path_factory.mktemp("opa-tls"))


@pytest.fixture(scope="module")
def opa_server(tls: TlsFiles, tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, subprocess.Popen]]:
    port = free_port()
    log = tmp_path_factory.mktemp("opa-server") / "serve.log"
    with open(log, "wb") as out:
        process = subprocess.Popen(
            [sys.executable, "-m", "securekube.cli.main", "policy", "serve", "--addr", f"127.0.0.1:{port}",
             "--tls-cert-file", str(tls.server_cert), "--tls-private-key-file", str(tls.server_key),
             "--tls-ca-cert-file", str(tls.ca)], stdout=out, stderr=subprocess.STDOUT)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                break
        except OSError:
            assert process.poll() is None, log.read_text()
            time.sleep(0.1)
    yield f"https://127.0.0.1:{port}", process
    process.terminate()
    process.wait(15)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory, tls: TlsFiles,
            opa_server: tuple[str, subprocess.Popen]) -> Iterator[Cluster]:
    url, _ = opa_server
    c = Cluster(tmp_path_factory.mktemp("remote-opa") / "data", free_port(),
                args=("--no-node", "--opa-url", url, "--opa-ca-file", str(tls.ca),
                      "--opa-client-cert-file", str(tls.client_cert),
                      "--opa-client-key-file", str(tls.client_key))).start()
    yield c
    c.stop()


def test_the_remote_engine_enforces_the_shipped_policies(cluster: Cluster) -> None:
    assert "admission policies: evaluated by the OPA server at https://127.0.0.1:" in cluster.log()
    latest = restricted_pod_yaml("latest", "default", image="localhost/securekube/busybox:latest")
    denied = cluster.kubectl("apply", "-f", "-", input=latest, check=False)
    assert denied.returncode != 0 and ":latest" in denied.stderr
    allowed = cluster.kubectl("apply", "-f", "-", input=restricted_pod_yaml("pinned", "default"))
    assert "created" in allowed.stdout


def test_an_unreachable_opa_server_denies(cluster: Cluster, opa_server: tuple[str, subprocess.Popen]) -> None:
    _, process = opa_server
    process.terminate()
    process.wait(15)
    denied = cluster.kubectl("apply", "-f", "-", input=restricted_pod_yaml("while-down", "default"), check=False)
    assert denied.returncode != 0
    assert "could not decide (policy evaluation error); the request is denied" in denied.stderr
    assert "NotFound" in cluster.kubectl("get", "pod", "while-down", check=False).stderr


def test_opa_url_without_a_ca_is_refused(tmp_path: Path) -> None:
    done = subprocess.run([sys.executable, "-m", "securekube.cli.main", "up", "--data-dir", str(tmp_path / "d"),
                           "--no-node", "--opa-url", "https://127.0.0.1:8181"], capture_output=True, text=True,
                          timeout=60)
    assert done.returncode != 0
    assert "--opa-url needs --opa-ca-file" in done.stderr and len(done.stderr.strip().splitlines()) == 1
