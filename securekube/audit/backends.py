"""The API server's audit backends together: the durable log, and optionally the webhook.

Every event goes to the log file (blocking: the caller waits for durability) and, when a webhook
is configured, is also queued for it (batched: never waits on the network), as kube-apiserver
runs its log and webhook backends side by side. The counters behind /metrics live here, because
this is the one place every event passes: events accepted, and events that failed per backend.
"""
from __future__ import annotations

import threading
from concurrent.futures import Future
from typing import Any

from securekube.audit.log import AuditLog
from securekube.audit.webhook import WebhookSink
from securekube.metrics import Metric

LOG_PLUGIN = "log"
WEBHOOK_PLUGIN = "webhook"


class AuditBackends:
    """Fans events out to the log and the webhook; `submit` is the handler chain's audit sink."""

    def __init__(self, log: AuditLog, webhook: WebhookSink | None = None) -> None:
        self.log, self.webhook = log, webhook
        self._lock = threading.Lock()
        self._events = 0
        self._log_errors = 0

    def submit(self, events: list[dict[str, Any]], durable: bool = True) -> Future[None]:
        """Queues events on every backend; the future completes once the log has them (durably,
        unless `durable` is False: see AuditLog.submit)."""
        with self._lock:
            self._events += len(events)
        try:
            done = self.log.submit(events, durable)
        except Exception:
            self._count_log_errors(len(events))
            raise

        def count_failure(finished: Future[None]) -> None:
            if finished.cancelled() or finished.exception() is not None:
                self._count_log_errors(len(events))

        done.add_done_callback(count_failure)
        if self.webhook is not None:
            self.webhook.enqueue(events)
        return done

    def _count_log_errors(self, count: int) -> None:
        with self._lock:
            self._log_errors += count

    def close(self) -> None:
        """Seals the log, then gives the webhook its deadline to deliver what is buffered."""
        self.log.close()
        if self.webhook is not None:
            self.webhook.close()

    def metrics(self) -> list[Metric]:
        """Upstream's audit metric names, plus the webhook buffer as securekube's own gauge."""
        with self._lock:
            events, log_errors = self._events, self._log_errors
        errors = [({"plugin": LOG_PLUGIN}, log_errors)]
        result = [Metric("apiserver_audit_event_total", "counter",
                         "Audit events generated and sent to the audit backends.", (({}, events),))]
        if self.webhook is not None:
            stats = self.webhook.stats()
            errors.append(({"plugin": WEBHOOK_PLUGIN}, stats.dropped))
            result += [Metric("securekube_audit_webhook_sent_total", "counter",
                              "Audit events the webhook receiver accepted.", (({}, stats.sent),)),
                       Metric("securekube_audit_webhook_buffered_events", "gauge",
                              "Audit events waiting in the webhook buffer.", (({}, stats.buffered),))]
        result.insert(1, Metric("apiserver_audit_error_total", "counter",
                                "Audit events that a backend failed to record (the webhook's are dropped "
                                "events: buffer full, refused by the receiver, or undelivered at shutdown).",
                                tuple(errors)))
        return result
