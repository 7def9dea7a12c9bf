"""The audit webhook backend against a real local HTTPS server that requires a client certificate."""
from __future__ import annotations

import logging
import socket
import ssl
import time
from collections.abc import Iterator
from typing import Any

import pytest

from securekube.audit.webhook import WebhookSink
from securekube.pki.layout import PkiPaths, bootstrap
from securekube.pki.profiles import load_profiles
from tests.audit_receiver import Receiver
from tests.helpers import wait_for


def event(n: int) -> dict[str, Any]:
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": f"id-{n}",
            "stage": "ResponseComplete", "requestURI": "/api/v1/pods", "verb": "list",
            "user": {"username": "alice"}}


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> PkiPaths:
    return bootstrap(tmp_path_factory.mktemp("pki"), load_profiles())


@pytest.fixture
def receiver(pki: PkiPaths) -> Iterator[Receiver]:
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    context.load_cert_chain(pki.cert("apiserver"), pki.key("apiserver"))
    context.load_verify_locations(pki.cert("ca"))
    context.verify_mode = ssl.CERT_REQUIRED
    server = Receiver(context)
    yield server
    server.stop()


def client_context(pki: PkiPaths, *, with_certificate: bool = True) -> ssl.SSLContext:
    context = ssl.create_default_context(cafile=str(pki.cert("ca")))
    if with_certificate:
        context.load_cert_chain(pki.cert("admin"), pki.key("admin"))
    return context


def test_batches_are_event_lists_sent_over_mtls(pki: PkiPaths, receiver: Receiver) -> None:
    sink = WebhookSink(receiver.url, client_context(pki), batch_max=3, flush_seconds=0.05)
    try:
        sink.enqueue([event(n) for n in range(7)])
        wait_for(lambda: len(receiver.items()) == 7)
    finally:
        sink.close()
    assert receiver.items() == [f"id-{n}" for n in range(7)]
    body = receiver.bodies[0]
    assert (body["kind"], body["apiVersion"]) == ("EventList", "audit.k8s.io/v1")
    assert body["items"][0] == event(0)
    assert all(len(b["items"]) <= 3 for b in receiver.bodies)
    assert set(receiver.client_names) == {"securekube-admin"}
    assert (sink.sent, sink.dropped) == (7, 0)


def test_failed_deliveries_are_retried_with_backoff(pki: PkiPaths, receiver: Receiver) -> None:
    receiver.statuses = [503, 429, 500]
    sink = WebhookSink(receiver.url, client_context(pki), flush_seconds=0.01, initial_backoff_seconds=0.02)
    try:
        sink.enqueue([event(1), event(2)])
        wait_for(lambda: receiver.items() == ["id-1", "id-2"])
    finally:
        sink.close()
    assert sink.stats().sent == 2 and sink.dropped == 0


def test_a_rejected_batch_is_dropped_and_counted(pki: PkiPaths, receiver: Receiver) -> None:
    receiver.statuses = [400]
    sink = WebhookSink(receiver.url, client_context(pki), flush_seconds=0.01)
    try:
        sink.enqueue([event(1), event(2)])
        wait_for(lambda: sink.dropped == 2)
        sink.enqueue([event(3)])
        wait_for(lambda: receiver.items() == ["id-3"])
    finally:
        sink.close()


def test_a_full_buffer_drops_and_counts_and_logs_once_per_burst(
        pki: PkiPaths, caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as unused:  # a port nobody listens on
        unused.bind(("127.0.0.1", 0))
        port = unused.getsockname()[1]
    sink = WebhookSink(f"https://127.0.0.1:{port}/audit", client_context(pki), buffer_max=5, batch_max=100,
                       flush_seconds=60)
    with caplog.at_level(logging.WARNING, logger="securekube.audit"):
        for n in range(20):
            sink.enqueue([event(n)])
        assert sink.stats().buffered == 5 and sink.dropped == 15
        sink.close(timeout_seconds=0.2)
    assert sink.dropped == 20 and sink.sent == 0  # nothing delivered, all of it counted
    assert sum("buffer full" in r.getMessage() for r in caplog.records) == 1
    assert any("dropped" in r.getMessage() and "not delivered" in r.getMessage() for r in caplog.records)


def test_close_flushes_what_is_buffered(pki: PkiPaths, receiver: Receiver) -> None:
    sink = WebhookSink(receiver.url, client_context(pki), flush_seconds=60)
    sink.enqueue([event(1), event(2), event(3)])
    started = time.monotonic()
    sink.close(timeout_seconds=5)
    assert time.monotonic() - started < 2
    assert receiver.items() == ["id-1", "id-2", "id-3"]
    sink.enqueue([event(4)])  # after close: counted, not lost silently
    assert sink.dropped == 1


def test_a_client_without_a_certificate_is_refused_and_nothing_is_lost_silently(
        pki: PkiPaths, receiver: Receiver) -> None:
    sink = WebhookSink(receiver.url, client_context(pki, with_certificate=False), flush_seconds=0.01,
                       initial_backoff_seconds=0.02)
    sink.enqueue([event(1)])
    time.sleep(0.2)
    sink.close(timeout_seconds=0.2)
    assert receiver.items() == []
    assert (sink.sent, sink.dropped) == (0, 1)


def test_only_https_urls(pki: PkiPaths) -> None:
    with pytest.raises(ValueError, match="must be https"):
        WebhookSink("http://127.0.0.1:1/audit", client_context(pki))
