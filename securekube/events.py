"""The event recorder: core/v1 Events about objects, sent in the background as upstream's components send them.

Components (the kubelet, the scheduler, the node lifecycle controller) tell the story of an object
with `EventRecorder.record(reference, type, reason, message)`, and `kubectl describe` / `kubectl get
events` show it. Recording never blocks and never raises: the event goes on a bounded queue and
one background thread hands it to an `EventSink` (the API for the kubelet, the registry for the
components inside the API server). A full queue or a failing sink drops events and counts them;
the first failure of a run of failures is logged once, naming the error's kind only, never its
content.

As upstream's client-go recorder does: an Event is named `<object name>.<hex nanoseconds>`, lives
in the object's namespace ("default" for cluster-scoped objects), carries `source` and
`reportingComponent`/`reportingInstance`, and a repeat of the same event (same object and field,
type, reason, message and source) patches `count` and `lastTimestamp` of the Event already sent
instead of creating another one.

This module sits at the bottom of the layering: it imports only securekube.api.
"""
from __future__ import annotations

import datetime as dt
import logging
import threading
from collections import OrderedDict, deque
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from securekube.api.errors import ApiError

log = logging.getLogger("securekube.events")

NORMAL = "Normal"
WARNING = "Warning"
EVENT_TYPES = (NORMAL, WARNING)
# Upstream's broadcaster queue length and correlator cache size.
DEFAULT_QUEUE_SIZE = 1000
DEFAULT_REMEMBERED_EVENTS = 4096
# Long runtime errors make unreadable events; events.k8s.io caps its note at 1 kB too.
MAX_MESSAGE_LENGTH = 1024
MAX_NAME_LENGTH = 253
_HEX_SUFFIX_LENGTH = 17  # "." and up to 16 hex digits of nanoseconds
_REFERENCE_FIELDS = ("kind", "namespace", "name", "uid", "apiVersion", "resourceVersion", "fieldPath")

Clock = Callable[[], dt.datetime]


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.timezone.utc)


def rfc3339(moment: dt.datetime) -> str:
    """metav1.Time as JSON: RFC 3339 in UTC, whole seconds."""
    return moment.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")


def object_reference(obj: Mapping[str, Any], kind: str, api_version: str = "v1",
                     field_path: str = "") -> dict[str, str]:
    """The involvedObject of an event about `obj` (kind and apiVersion given: list items may lack them)."""
    meta = obj.get("metadata") or {}
    reference = {"kind": kind, "namespace": str(meta.get("namespace") or ""), "name": str(meta.get("name") or ""),
                 "uid": str(meta.get("uid") or ""), "apiVersion": api_version,
                 "resourceVersion": str(meta.get("resourceVersion") or ""), "fieldPath": field_path}
    return {key: value for key, value in reference.items() if value}


@dataclass(frozen=True)
class EventSource:
    """Who reports: `component` (e.g. kubelet, default-scheduler), the `host` it runs on, and its instance."""

    component: str
    host: str = ""
    instance: str = ""  # reportingInstance; the host when empty, as upstream's recorder fills it

    @property
    def reporting_instance(self) -> str:
        return self.instance or self.host


@dataclass(frozen=True)
class RecorderConfig:
    """How many events may wait to be sent, and how many sent events are remembered for counting repeats."""

    queue_size: int = DEFAULT_QUEUE_SIZE
    remembered_events: int = DEFAULT_REMEMBERED_EVENTS


@dataclass(frozen=True)
class RecorderStats:
    """What happened to the events recorded so far."""

    sent: int  # created or counted on the server
    dropped: int  # never reached the server: queue full, recorder closed, or the sink failed


class EventSink(Protocol):
    """Where events go. Both calls may raise anything; the recorder contains it."""

    def create(self, namespace: str, event: dict[str, Any]) -> None:
        """Creates the Event."""

    def patch(self, namespace: str, name: str, changes: dict[str, Any]) -> bool:
        """Merges `changes` into Event `name`; False when it no longer exists."""


class EventStore(Protocol):
    """The part of the registry's Event store the StoreEventSink uses."""

    def create(self, namespace: str, obj: dict) -> dict: ...

    def guaranteed_update(self, namespace: str, name: str, mutate: Callable[[dict], dict]) -> dict: ...


class StoreEventSink:
    """Writes events into the registry directly: for components that run inside the API server process."""

    def __init__(self, store: EventStore) -> None:
        self._store = store

    def create(self, namespace: str, event: dict[str, Any]) -> None:
        self._store.create(namespace, event)

    def patch(self, namespace: str, name: str, changes: dict[str, Any]) -> bool:
        try:
            self._store.guaranteed_update(namespace, name, lambda current: {**current, **changes})
        except ApiError as exc:
            if exc.code == 404:
                return False
            raise
        return True


@dataclass(frozen=True)
class _Recorded:
    """One event as recorded, waiting in the queue."""

    reference: tuple[tuple[str, str], ...]
    event_type: str
    reason: str
    message: str
    when: dt.datetime

    @property
    def namespace(self) -> str:
        return dict(self.reference).get("namespace") or "default"


@dataclass
class _Sent:
    """An event already on the server, so a repeat only counts up."""

    namespace: str
    name: str
    count: int


@dataclass
class _Counters:
    """The recorder's tallies and log-once state, guarded by its condition's lock."""

    sent: int = 0
    dropped: int = 0
    failing: bool = False  # inside a run of sink failures (logged once)
    queue_full: bool = False  # inside a run of overflows (logged once)
    failed_since_logged: int = 0  # failures since that log line


def describe_failure(exc: BaseException) -> str:
    """An exception named by its kind (and HTTP code/reason if it has one): its message could quote content."""
    code, reason = getattr(exc, "code", None), getattr(exc, "reason", None)
    detail = " ".join(str(part) for part in (code, reason) if isinstance(part, (int, str)) and part != "")
    return f"{exc.__class__.__name__}" + (f" ({detail})" if detail else "")


class EventRecorder:
    """Records events without blocking; a background thread sends them. `start()` it, `close()` it."""

    def __init__(self, sink: EventSink, source: EventSource, config: RecorderConfig = RecorderConfig(),
                 clock: Clock = _utc_now) -> None:
        self._sink = sink
        self._source = source
        self._config = config
        self._clock = clock
        self._cond = threading.Condition()
        self._pending: deque[_Recorded] = deque()
        self._sending = False
        self._closed = False
        self._abandoned = False
        self._counters = _Counters()
        # Touched only by the sender thread: no lock needed.
        self._remembered: OrderedDict[tuple, _Sent] = OrderedDict()
        self._last_nanos = 0
        self._thread = threading.Thread(target=self._run, name=f"events-{source.component}", daemon=True)

    @property
    def source(self) -> EventSource:
        return self._source

    def start(self) -> None:
        self._thread.start()

    def stats(self) -> RecorderStats:
        with self._cond:
            return RecorderStats(self._counters.sent, self._counters.dropped)

    def record(self, reference: Mapping[str, str], event_type: str, reason: str, message: str) -> None:
        """Queues an event about the object `reference` names (see `object_reference`). Never blocks or raises."""
        if event_type not in EVENT_TYPES or not reason or not reference.get("name"):
            # A component's mistake must not fail the work the event is about: drop it, loudly.
            log.error("event dropped: type %r, reason %r, object %r is not a valid event", event_type, reason,
                      reference.get("name"))
            with self._cond:
                self._counters.dropped += 1
            return
        item = _Recorded(tuple((key, str(reference[key])) for key in _REFERENCE_FIELDS if reference.get(key)),
                         event_type, reason, message[:MAX_MESSAGE_LENGTH], self._clock())
        with self._cond:
            if not self._closed and len(self._pending) < self._config.queue_size:
                self._pending.append(item)
                self._counters.queue_full = False
                self._cond.notify_all()
                return
            self._counters.dropped += 1
            first_overflow = not self._closed and not self._counters.queue_full
            if not self._closed:
                self._counters.queue_full = True
        if first_overflow:
            log.warning("%s: event queue full (%d waiting); dropping events until it drains",
                        self._source.component, self._config.queue_size)

    def flush(self, timeout: float) -> bool:
        """Waits until every queued event was handled (sent or dropped); False on timeout."""
        with self._cond:
            return self._cond.wait_for(lambda: not self._pending and not self._sending, timeout)

    def close(self, timeout: float = 2.0) -> None:
        """Stops taking events, sends what is queued for up to `timeout` seconds, drops the rest."""
        with self._cond:
            self._closed = True
            self._cond.notify_all()
        if not self._thread.is_alive():
            with self._cond:
                self._counters.dropped += len(self._pending)
                self._pending.clear()
            return
        self._thread.join(timeout)
        with self._cond:
            self._abandoned = True
            self._cond.notify_all()
        self._thread.join(1.0)

    # ---- the sender thread ---------------------------------------------------------------------

    def _next(self) -> _Recorded | None:
        with self._cond:
            self._sending = False
            self._cond.notify_all()
            self._cond.wait_for(lambda: self._pending or self._closed)
            if self._abandoned or (self._closed and not self._pending):
                self._counters.dropped += len(self._pending)
                self._pending.clear()
                self._cond.notify_all()
                return None
            self._sending = True
            return self._pending.popleft()

    def _run(self) -> None:
        while (item := self._next()) is not None:
            try:
                self._send(item)
            except Exception as exc:  # a sink's failure must never end the recorder
                self._failed(exc)
            else:
                self._succeeded()

    def _send(self, item: _Recorded) -> None:
        # Upstream's correlation key: the object's resourceVersion is not part of it (a pod changes often).
        identity = tuple(pair for pair in item.reference if pair[0] != "resourceVersion")
        key = (identity, item.event_type, item.reason, item.message)
        sent = self._remembered.get(key)
        stamp = rfc3339(item.when)
        if sent is not None:
            if self._sink.patch(sent.namespace, sent.name, {"count": sent.count + 1, "lastTimestamp": stamp}):
                sent.count += 1
                self._remembered.move_to_end(key)
                return
            del self._remembered[key]  # expired or deleted on the server: start a new one
        event = self._event(item, stamp)
        self._sink.create(item.namespace, event)
        self._remembered[key] = _Sent(item.namespace, event["metadata"]["name"], 1)
        while len(self._remembered) > self._config.remembered_events:
            self._remembered.popitem(last=False)

    def _event(self, item: _Recorded, stamp: str) -> dict[str, Any]:
        reference = dict(item.reference)
        # Upstream names an event after its object and the time in nanoseconds; strictly increasing
        # here, so two events recorded in one clock tick do not collide.
        nanos = int(item.when.timestamp() * 1_000_000_000)
        self._last_nanos = max(nanos, self._last_nanos + 1)
        prefix = reference["name"][:MAX_NAME_LENGTH - _HEX_SUFFIX_LENGTH]
        source = {"component": self._source.component}
        if self._source.host:
            source["host"] = self._source.host
        return {
            "apiVersion": "v1", "kind": "Event",
            "metadata": {"name": f"{prefix}.{self._last_nanos:x}", "namespace": item.namespace},
            "involvedObject": reference,
            "reason": item.reason, "message": item.message, "type": item.event_type,
            "source": source,
            "firstTimestamp": stamp, "lastTimestamp": stamp, "count": 1,
            "reportingComponent": self._source.component,
            "reportingInstance": self._source.reporting_instance,
        }

    def _succeeded(self) -> None:
        with self._cond:
            self._counters.sent += 1
            recovered = self._counters.failing
            dropped_meanwhile = self._counters.failed_since_logged
            self._counters.failing = False
            self._counters.failed_since_logged = 0
        if recovered:
            log.info("%s: events are accepted again (%d dropped meanwhile)", self._source.component,
                     dropped_meanwhile)

    def _failed(self, exc: Exception) -> None:
        with self._cond:
            self._counters.dropped += 1
            self._counters.failed_since_logged += 1
            first = not self._counters.failing
            self._counters.failing = True
        if first:
            log.warning("%s: cannot post events (%s); dropping them until they are accepted again",
                        self._source.component, describe_failure(exc))
