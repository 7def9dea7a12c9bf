"""The audit webhook backend: batches of events POSTed as an audit.k8s.io/v1 EventList over mTLS.

Like kube-apiserver's batching webhook backend, it never makes a request wait for the receiver:
`enqueue` only buffers, and a background thread sends batches of up to `batch_max` events at least
every `flush_seconds`, retrying failed batches with exponential backoff. The buffer is bounded;
when it is full new events are dropped and **counted** (`dropped`, logged once per burst), never
lost without a trace. The log file backend is the durable record; this one feeds live consumers
such as the detection sidecar.

The receiver's certificate is checked against `ssl_context` (which also carries the client
certificate), and only https URLs are accepted.
"""
from __future__ import annotations

import http.client
import json
import logging
import random
import ssl
import threading
import time
from collections import deque
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from securekube.audit.event import API_VERSION

log = logging.getLogger("securekube.audit")

_LIST_HEAD = b'{"kind":"EventList","apiVersion":"' + API_VERSION.encode() + b'","metadata":{},"items":['
_LIST_TAIL = b"]}"


@dataclass(frozen=True)
class WebhookConfig:
    """Batching, buffering and retry limits of a WebhookSink."""

    batch_max: int = 100
    flush_seconds: float = 1.0
    buffer_max: int = 10_000
    timeout_seconds: float = 10.0
    initial_backoff_seconds: float = 0.5
    max_backoff_seconds: float = 30.0


@dataclass(frozen=True)
class WebhookTarget:
    """Where the webhook posts and how it connects (CA and client certificate in the context)."""

    url: str
    ssl_context: ssl.SSLContext = field(repr=False)


@dataclass(frozen=True)
class WebhookStats:
    """Counters for metrics: events delivered, dropped (buffer full, rejected, or unsent at close), buffered."""

    sent: int
    dropped: int
    buffered: int


class WebhookSink:
    """Sends audit events to an HTTPS receiver in the background. Thread-safe."""

    def __init__(self, url: str, ssl_context: ssl.SSLContext, *, batch_max: int = 100,
                 flush_seconds: float = 1.0, buffer_max: int = 10_000, timeout_seconds: float = 10.0,
                 initial_backoff_seconds: float = 0.5, max_backoff_seconds: float = 30.0) -> None:
        parts = urlsplit(url)
        if parts.scheme != "https" or not parts.hostname:
            raise ValueError("the audit webhook URL must be https://HOST[:PORT]/PATH")
        if batch_max < 1 or buffer_max < 1 or flush_seconds <= 0 or timeout_seconds <= 0:
            raise ValueError("batch_max and buffer_max must be >= 1, flush_seconds and timeout_seconds > 0")
        self.config = WebhookConfig(batch_max, flush_seconds, buffer_max, timeout_seconds,
                                    initial_backoff_seconds, max_backoff_seconds)
        self._host, self._port = parts.hostname, parts.port or 443
        self._target = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        self._context = ssl_context
        self._connection: http.client.HTTPSConnection | None = None
        self._cond = threading.Condition()
        self._buffer: deque[tuple[float, bytes]] = deque()
        self._sent = self._dropped = 0
        self._burst_dropped = 0  # dropped since the buffer last had room; logged when it ends
        self._closing = False
        self._closed_warned = False
        self._deadline = float("inf")
        self._thread = threading.Thread(target=self._run, name="audit-webhook", daemon=True)
        self._thread.start()

    @property
    def dropped(self) -> int:
        with self._cond:
            return self._dropped

    @property
    def sent(self) -> int:
        with self._cond:
            return self._sent

    def stats(self) -> WebhookStats:
        with self._cond:
            return WebhookStats(self._sent, self._dropped, len(self._buffer))

    def enqueue(self, events: Iterable[dict[str, Any]]) -> None:
        """Buffers events for sending; never blocks on the network. Full buffer: dropped and counted."""
        encoded = []
        for event in events:
            try:
                encoded.append(json.dumps(event, separators=(",", ":"), allow_nan=False).encode())
            except (TypeError, ValueError) as exc:
                log.error("audit webhook: dropping an event that is not JSON (%s)", type(exc).__name__)
                with self._cond:
                    self._dropped += 1
        now = time.monotonic()
        with self._cond:
            if self._closing:
                self._dropped += len(encoded)
                if not self._closed_warned:
                    self._closed_warned = True
                    log.warning("audit webhook: events dropped: the sink is closed")
                return
            room = self.config.buffer_max - len(self._buffer)
            for item in encoded[:max(room, 0)]:
                self._buffer.append((now, item))
            lost = len(encoded) - max(room, 0)
            if lost > 0:
                if self._burst_dropped == 0:
                    log.warning("audit webhook: buffer full (%d events); dropping events until it drains",
                                self.config.buffer_max)
                self._burst_dropped += lost
                self._dropped += lost
            elif encoded and self._burst_dropped:
                log.warning("audit webhook: buffer has room again; %d event(s) were dropped", self._burst_dropped)
                self._burst_dropped = 0
            self._cond.notify()

    def close(self, timeout_seconds: float = 5.0) -> None:
        """Sends what is buffered until the deadline, then counts whatever is left as dropped."""
        with self._cond:
            if not self._closing:
                self._closing = True
                self._deadline = time.monotonic() + timeout_seconds
            self._cond.notify_all()
        self._thread.join()

    # --- sender thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while True:
                batch = self._next_batch()
                if batch is None:
                    break
                self._deliver(batch)
        except Exception as exc:  # never die silently: whatever is left is counted as dropped
            log.error("audit webhook sender stopped: %s", type(exc).__name__)
        finally:
            self._disconnect()
            with self._cond:
                left = len(self._buffer)
                self._buffer.clear()
                self._dropped += left
                self._closing = True
            if left:
                log.warning("audit webhook: %d buffered event(s) dropped at close (not delivered in time)", left)

    def _next_batch(self) -> list[bytes] | None:
        with self._cond:
            while True:
                if self._closing and (not self._buffer or time.monotonic() >= self._deadline):
                    return None
                if self._buffer:
                    oldest = self._buffer[0][0]
                    due = oldest + self.config.flush_seconds
                    if self._closing or len(self._buffer) >= self.config.batch_max or time.monotonic() >= due:
                        count = min(len(self._buffer), self.config.batch_max)
                        return [self._buffer.popleft()[1] for _ in range(count)]
                    self._cond.wait(max(0.0, due - time.monotonic()))
                else:
                    self._cond.wait()

    def _deliver(self, batch: list[bytes]) -> None:
        body = _LIST_HEAD + b",".join(batch) + _LIST_TAIL
        attempt = 0
        while True:
            outcome = self._post(body)
            if outcome == "ok":
                with self._cond:
                    self._sent += len(batch)
                return
            if outcome == "rejected":
                with self._cond:
                    self._dropped += len(batch)
                return
            attempt += 1
            backoff = min(self.config.max_backoff_seconds,
                          self.config.initial_backoff_seconds * 2 ** (attempt - 1))
            backoff *= random.uniform(0.8, 1.2)  # receivers recovering from an outage are not hit in step
            if attempt == 1:
                log.warning("audit webhook: delivery failed; retrying with backoff")
            with self._cond:
                wait = min(backoff, self._deadline - time.monotonic())
                if wait <= 0:
                    self._dropped += len(batch)
                    log.warning("audit webhook: %d event(s) dropped: not delivered before close", len(batch))
                    return
                self._cond.wait(wait)

    def _post(self, body: bytes) -> str:
        """Sends one EventList: "ok", "retry" (network, 429, 5xx) or "rejected" (other 4xx: retrying cannot help)."""
        with self._cond:
            timeout = min(self.config.timeout_seconds, max(0.1, self._deadline - time.monotonic()))
        try:
            connection = self._connect(timeout)
            connection.request("POST", self._target, body=body,
                               headers={"Content-Type": "application/json", "Accept": "application/json"})
            response = connection.getresponse()
            response.read()
        except (OSError, http.client.HTTPException) as exc:
            log.debug("audit webhook: POST failed: %s", type(exc).__name__)
            self._disconnect()
            return "retry"
        if response.will_close:
            self._disconnect()
        if 200 <= response.status < 300:
            return "ok"
        if response.status == 429 or response.status >= 500:
            return "retry"
        log.error("audit webhook: receiver rejected a batch of events with HTTP %d; batch dropped", response.status)
        return "rejected"

    def _connect(self, timeout: float) -> http.client.HTTPSConnection:
        if self._connection is None:
            self._connection = http.client.HTTPSConnection(self._host, self._port, timeout=timeout,
                                                           context=self._context)
        elif self._connection.sock is not None:
            self._connection.sock.settimeout(timeout)
        self._connection.timeout = timeout
        return self._connection

    def _disconnect(self) -> None:
        if self._connection is not None:
            self._connection.close()
            self._connection = None
