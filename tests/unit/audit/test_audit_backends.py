"""AuditBackends: every event is counted; a log that cannot take events is counted as an error and refuses."""
from __future__ import annotations

import asyncio
import os
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securekube.audit.backends import AuditBackends
from securekube.audit.errors import AuditError
from securekube.audit.log import AuditLog
from securekube.metrics import Metric, render


def event(n: int) -> dict:
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": f"id-{n}",
            "stage": "ResponseComplete", "requestURI": "/api/v1/pods", "verb": "list", "user": {"username": "a"}}


def samples(backends: AuditBackends) -> dict[str, list]:
    return {m.name: [(dict(labels), value) for labels, value in m.samples] for m in backends.metrics()}


def test_events_are_durable_and_counted(tmp_path: Path) -> None:
    backends = AuditBackends(AuditLog(tmp_path / "audit.log", signing_key=Ed25519PrivateKey.generate()))
    backends.submit([event(1), event(2)]).result(timeout=5)
    backends.submit([event(3)]).result(timeout=5)
    assert samples(backends) == {"apiserver_audit_event_total": [({}, 3)],
                                 "apiserver_audit_error_total": [({"plugin": "log"}, 0)]}
    assert (tmp_path / "audit.log").read_text().count('"auditID":"id-') == 3
    backends.close()


def test_a_closed_log_refuses_and_counts_the_error(tmp_path: Path) -> None:
    backends = AuditBackends(AuditLog(tmp_path / "audit.log", signing_key=Ed25519PrivateKey.generate()))
    backends.close()
    with pytest.raises(AuditError):
        backends.submit([event(1)])
    assert samples(backends)["apiserver_audit_error_total"] == [({"plugin": "log"}, 1)]


def test_exposition_format() -> None:
    text = render([Metric("x_total", "counter", "Help with \\ and\nnewline.", (({"plugin": 'we"b'}, 2), ({}, 0.5)))])
    assert text == ('# HELP x_total Help with \\\\ and\\nnewline.\n# TYPE x_total counter\n'
                    'x_total{plugin="we\\"b"} 2\nx_total 0.5\n')
    with pytest.raises(ValueError):
        Metric("x", "histogram", "h", ())


def test_a_caller_that_stops_waiting_neither_loses_the_event_nor_breaks_the_log(tmp_path: Path) -> None:
    """A client that disconnects cancels the API server's wait; the write must go on regardless."""
    backends = AuditBackends(AuditLog(tmp_path / "audit.log", signing_key=Ed25519PrivateKey.generate()))

    async def abandon() -> None:
        waiting = asyncio.ensure_future(asyncio.wrap_future(backends.submit([event(1)])))
        await asyncio.sleep(0)
        waiting.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiting

    asyncio.run(abandon())
    backends.submit([event(2)]).result(timeout=5)  # the writer still works
    backends.close()
    text = (tmp_path / "audit.log").read_text()
    assert '"auditID":"id-1"' in text and '"auditID":"id-2"' in text
    assert samples(backends)["apiserver_audit_error_total"] == [({"plugin": "log"}, 0)]


def test_reads_are_written_at_once_and_synced_with_the_next_write(tmp_path: Path,
                                                                   monkeypatch: pytest.MonkeyPatch) -> None:
    """Events nobody waits for skip the fsync; the next durable commit covers them (they precede it)."""
    backends = AuditBackends(AuditLog(tmp_path / "audit.log", signing_key=Ed25519PrivateKey.generate()))
    syncs: list[int] = []
    real_fdatasync = os.fdatasync
    monkeypatch.setattr(os, "fdatasync", lambda fd: (syncs.append(fd), real_fdatasync(fd))[1])
    backends.submit([event(1)], durable=False).result(timeout=5)
    assert syncs == [] and '"auditID":"id-1"' in (tmp_path / "audit.log").read_text()
    backends.submit([event(2)]).result(timeout=5)
    assert len(syncs) == 1
    backends.close()
