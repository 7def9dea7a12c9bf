"""Shared helpers for the audit review tests: the fixture logs and the commands as a user runs them."""
from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from pathlib import Path

import pytest

from securekube.audit.review.cli import register

FIXTURES = Path(__file__).resolve().parents[4] / "tests" / "fixtures" / "audit"
UPSTREAM = FIXTURES / "upstream-kube-apiserver.log"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def review(capsys: pytest.CaptureFixture[str]) -> Callable[..., tuple[int, str, str]]:
    """Runs `audit <args>` through review.cli.register: (exit code, stdout, stderr)."""

    def run(*args: str) -> tuple[int, str, str]:
        parser = argparse.ArgumentParser(prog="securekube audit")
        register(parser.add_subparsers(dest="audit_command", required=True))
        parsed = parser.parse_args([str(a) for a in args])
        code = parsed.run(parsed)
        out, err = capsys.readouterr()
        return code, out, err

    return run


def event_line(audit_id: str, *, stage: str = "ResponseComplete", verb: str = "get", user: str = "alice",
               resource: str | None = "secrets", namespace: str = "team-a", name: str = "db", code: int | None = 200,
               decision: str | None = "allow", time: str = "2024-05-01T10:00:00.000000Z", ip: str = "10.0.0.1",
               agent: str = "kubectl/v1.30.2", subresource: str = "", group: str = "",
               impersonated: str | None = None, extra: dict | None = None, **dumps_options) -> str:
    """One audit.k8s.io/v1 Event line in kube-apiserver's compact form (or json.dumps options' form)."""
    event: dict = {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": audit_id,
                   "stage": stage, "requestURI": f"/api/v1/namespaces/{namespace}/{resource}/{name}", "verb": verb,
                   "user": {"username": user, "groups": ["system:authenticated"]} if user else {},
                   "sourceIPs": [ip], "userAgent": agent}
    if impersonated:
        event["impersonatedUser"] = {"username": impersonated}
    if resource:
        ref = {"resource": resource, "namespace": namespace, "name": name, "apiGroup": group,
               "subresource": subresource, "apiVersion": "v1"}
        event["objectRef"] = {k: v for k, v in ref.items() if v}
    else:
        event["requestURI"] = "/healthz"
    if code is not None:
        event["responseStatus"] = {"metadata": {}, "code": code}
    event["requestReceivedTimestamp"] = event["stageTimestamp"] = time
    if decision:
        event["annotations"] = {"authorization.k8s.io/decision": decision}
    event.update(extra or {})
    return json.dumps(event, **({"separators": (",", ":")} | dumps_options))


@pytest.fixture
def make_event() -> Callable[..., str]:
    """`event_line`, for tests (conftest modules are not importable by name)."""
    return event_line


@pytest.fixture
def write_log(tmp_path: Path) -> Callable[..., Path]:
    """Writes lines (str or bytes) as a log file in tmp_path and returns its path."""

    def write(name: str, *lines: str | bytes, newline_at_end: bool = True) -> Path:
        data = b"\n".join(line.encode() if isinstance(line, str) else line for line in lines)
        path = tmp_path / name
        path.write_bytes(data + (b"\n" if newline_at_end and lines else b""))
        return path

    return write
