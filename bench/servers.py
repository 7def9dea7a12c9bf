"""Real `securekube up` API servers in subprocesses, one temporary data directory each, for benchmarks.

A benchmark compares configurations side by side, so each one gets its own process, port and data
directory. The server is started exactly as a user starts it (`securekube up --data-dir ...`); a
configuration differs only by the files placed in the data directory before the first start
(`securekube up` reuses an existing EncryptionConfiguration instead of generating one).
"""
from __future__ import annotations

import os
import signal
import socket
import sqlite3
import subprocess
import sys
import time
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TypeVar

READY_LINE = "securekube: ready"
READY_TIMEOUT_SECONDS = 120.0
T = TypeVar("T")
LOG_TAIL_LINES = 20

# Only provider is identity: secrets are stored as plaintext, the "encryption off" baseline.
IDENTITY_ONLY_CONFIG = """\
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
  - resources:
      - secrets
    providers:
      - identity: {}
"""
# The stored-value prefix of upstream's secretbox provider (k8s:enc:secretbox:v1:<key name>:).
SECRETBOX_PREFIX = b"k8s:enc:secretbox:v1:"


class ServerFailed(RuntimeError):
    """A benchmark server did not start, died, or is not configured as the benchmark assumes."""

    def __init__(self, label: str, message: str) -> None:
        super().__init__(f"server {label!r} {message}")
        self.label = label


@dataclass(frozen=True)
class ServerSpec:
    """One configuration under test: a short label, whether secrets are encrypted, and the audit policy.

    `audit_policy` is the text of an audit.k8s.io/v1 Policy given to `up --audit-policy`; None
    keeps the shipped default policy.
    """

    label: str
    encrypt_secrets: bool = True
    audit_policy: str | None = None


@dataclass(frozen=True)
class ClientFiles:
    """What a client needs to reach a server over mTLS as the cluster admin."""

    host: str
    port: int
    ca_file: str
    cert_file: str
    key_file: str


class ServerProcess:
    """A `securekube up` subprocess with its data directory; its output goes to `<dir>/server.log`."""

    def __init__(self, spec: ServerSpec, data_dir: Path, port: int, process: subprocess.Popen[bytes]) -> None:
        self.spec = spec
        self.data_dir = data_dir
        self.port = port
        self.process = process

    @property
    def log_path(self) -> Path:
        return self.data_dir / "server.log"

    @property
    def audit_log_path(self) -> Path:
        return self.data_dir / "audit" / "audit.log"

    @property
    def client_files(self) -> ClientFiles:
        pki = self.data_dir / "pki"
        return ClientFiles("127.0.0.1", self.port, str(pki / "ca.crt"), str(pki / "admin.crt"),
                           str(pki / "admin.key"))

    def alive(self) -> bool:
        return self.process.poll() is None

    def log_tail(self) -> str:
        try:
            lines = self.log_path.read_text(errors="replace").splitlines()
        except OSError:
            return "(no server log)"
        return "\n".join(lines[-LOG_TAIL_LINES:])

    def wait_ready(self, deadline: float) -> None:
        """Waits for the ready line; raises ServerFailed (with the log's tail) on exit or time-out."""
        while time.monotonic() < deadline:
            if READY_LINE in self.log_path.read_text(errors="replace"):
                return
            if not self.alive():
                raise ServerFailed(self.spec.label, f"exited with code {self.process.returncode} before it was "
                                   f"ready:\n{self.log_tail()}")
            time.sleep(0.1)
        raise ServerFailed(self.spec.label, f"was not ready in time:\n{self.log_tail()}")

    def cpu_seconds(self) -> float:
        """User + system CPU time of the server process (all its threads) so far."""
        with open(f"/proc/{self.process.pid}/stat", encoding="ascii") as stat:
            # Fields after the command name (which may hold spaces) start at field 3; utime/stime are 14/15.
            fields = stat.read().rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self, timeout: float = 15.0) -> int | None:
        """SIGTERM (graceful shutdown), then SIGKILL if it does not exit in time; returns the exit code."""
        if self.alive():
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        return self.process.returncode

    def stored_value(self, key: str) -> bytes:
        """The newest stored bytes of a storage key, read straight from the SQLite file (read-only)."""
        with sqlite3.connect(f"file:{self.data_dir / 'state.db'}?mode=ro", uri=True) as db:
            row = db.execute("SELECT value FROM log WHERE name = ? ORDER BY id DESC LIMIT 1", (key,)).fetchone()
        if row is None:
            raise ServerFailed(self.spec.label, f"has no stored value for {key}")
        return bytes(row[0])

    def check_secret_encryption(self, namespace: str, name: str) -> None:
        """Fails unless a stored secret is encrypted exactly when this configuration says it should be.

        The comparison is only meaningful if "on" really encrypts and "off" really does not, so a
        misconfigured data directory stops the benchmark rather than producing a plausible table.
        """
        encrypted = self.stored_value(f"/registry/secrets/{namespace}/{name}").startswith(SECRETBOX_PREFIX)
        if encrypted != self.spec.encrypt_secrets:
            state = "encrypted with secretbox" if encrypted else "not encrypted with secretbox"
            raise ServerFailed(self.spec.label, f"stores secrets {state}, contrary to its configuration")


def free_loopback_port() -> int:
    """A TCP port that was free on 127.0.0.1 a moment ago (the server reports clearly if it was taken since)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _write_identity_config(data_dir: Path) -> None:
    # Created with mode 0600 from the start (never world-readable, even briefly), like the default config.
    fd = os.open(data_dir / "encryption-config.yaml", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
    with os.fdopen(fd, "w", encoding="utf-8") as config:
        config.write(IDENTITY_ONLY_CONFIG)


DEFAULT_LAUNCHER = ("-m", "securekube.cli.main")


def start_server(spec: ServerSpec, data_dir: Path, launcher: tuple[str, ...] = DEFAULT_LAUNCHER) -> ServerProcess:
    """Starts `securekube up` on a free loopback port; call `wait_ready` before sending requests.

    `launcher` is what follows the Python interpreter on the command line: the securekube CLI by
    default, or a script taking the same arguments (to measure an experimental change side by side).
    """
    data_dir.mkdir(mode=0o700)
    if not spec.encrypt_secrets:
        _write_identity_config(data_dir)
    port = free_loopback_port()
    command = [sys.executable, *launcher, "up", "--data-dir", str(data_dir), "--port", str(port), "--no-node"]
    if spec.audit_policy is not None:
        policy = data_dir / "audit-policy.yaml"
        policy.write_text(spec.audit_policy, encoding="utf-8")
        command += ["--audit-policy", str(policy)]
    with open(data_dir / "server.log", "wb") as log:
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT)
    return ServerProcess(spec, data_dir, port, process)


def stop_all(servers: dict[str, ServerProcess], reported: set[str]) -> list[str]:
    """Stops every server; returns a problem for each not already `reported` that did not exit cleanly."""
    problems = []
    for label, server in servers.items():
        code = server.stop()
        if label in reported:
            continue
        # A server that lets uvicorn re-raise the SIGTERM it handled dies by it after a graceful
        # shutdown: that counts as clean too.
        if code not in (0, -signal.SIGTERM):
            problems.append(f"server {label!r} exited with code {code}:\n{server.log_tail()}")
    return problems


def with_servers(specs: Sequence[ServerSpec], data_root: Path, work: Callable[[dict[str, ServerProcess]], T], *,
                 launcher: tuple[str, ...] = DEFAULT_LAUNCHER, keep_data: bool = False) -> tuple[T | None, list[str]]:
    """Starts a server per spec, waits until all are ready, runs `work(servers by label)`, stops them all.

    Returns work's result and the problems met (a server that failed, load that could not run, an
    interruption, an unclean exit); the result is None when there are problems. The data
    directories hold the clusters' private keys, so they are removed unless `keep_data`.
    """
    servers: dict[str, ServerProcess] = {}
    problems: list[str] = []
    failed: set[str] = set()  # labels of servers whose failure is already in `problems`
    result = None
    try:
        for spec in specs:
            servers[spec.label] = start_server(spec, data_root / spec.label, launcher)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        for server in servers.values():
            server.wait_ready(deadline)
        result = work(servers)
    except ServerFailed as exc:
        problems.append(str(exc))
        failed.add(exc.label)
    except RuntimeError as exc:  # the load generator could not run (LoadFailed)
        problems.append(str(exc))
    except KeyboardInterrupt:
        problems.append("interrupted")
    finally:
        problems += stop_all(servers, failed)
        if keep_data:
            print(f"data directories kept in {data_root}", file=sys.stderr)
        else:
            shutil.rmtree(data_root, ignore_errors=True)
    return (None if problems else result), problems
