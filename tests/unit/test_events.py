"""The event recorder: upstream's Event shape, repeats counted on one Event, and never blocking or failing its caller."""
from __future__ import annotations

import datetime as dt
import logging
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from securekube.api.errors import ApiError
from securekube.events import (NORMAL, WARNING, EventRecorder, EventSource, RecorderConfig, StoreEventSink,
                               object_reference)
from securekube.registry.registry import Registry
from securekube.storage.sqlite import SqliteStorage
from securekube.storage.transform.identity import IdentityTransformer
from tests.helpers import FakeClock

START = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
POD = {"apiVersion": "v1", "kind": "Pod",
       "metadata": {"name": "web", "namespace": "shop", "uid": "uid-1", "resourceVersion": "41"}}
NODE = {"metadata": {"name": "node-a", "uid": "uid-n"}}


class MemorySink:
    """Keeps events like a server would: created by name, patched by merge; can forget or fail."""

    def __init__(self) -> None:
        self.events: dict[tuple[str, str], dict] = {}
        self.creates = 0
        self.fail_with: Exception | None = None
        self.gate: threading.Event | None = None  # when set, every call waits for it
        self.entered = threading.Event()

    def _enter(self) -> None:
        self.entered.set()
        if self.gate is not None:
            self.gate.wait(5)
        if self.fail_with is not None:
            raise self.fail_with

    def create(self, namespace: str, event: dict[str, Any]) -> None:
        self._enter()
        self.creates += 1
        self.events[(namespace, event["metadata"]["name"])] = event

    def patch(self, namespace: str, name: str, changes: dict[str, Any]) -> bool:
        self._enter()
        if (namespace, name) not in self.events:
            return False
        self.events[(namespace, name)] = {**self.events[(namespace, name)], **changes}
        return True

    def only(self) -> dict:
        assert len(self.events) == 1, self.events
        return next(iter(self.events.values()))


@pytest.fixture
def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
def sink() -> MemorySink:
    return MemorySink()


@pytest.fixture
def recorder(sink: MemorySink, clock: FakeClock) -> Iterator[EventRecorder]:
    running = EventRecorder(sink, EventSource("kubelet", host="node-a"), clock=clock)
    running.start()
    yield running
    running.close()


def test_an_event_has_upstreams_fields(recorder: EventRecorder, sink: MemorySink) -> None:
    recorder.record(object_reference(POD, "Pod", field_path="spec.containers{app}"), NORMAL, "Pulled",
                    'Container image "busybox" already present on machine')
    assert recorder.flush(5)
    event = sink.only()
    name = event["metadata"].pop("name")
    assert name == f"web.{int(START.timestamp() * 1e9):x}"
    assert event == {
        "apiVersion": "v1", "kind": "Event", "metadata": {"namespace": "shop"},
        "involvedObject": {"kind": "Pod", "namespace": "shop", "name": "web", "uid": "uid-1", "apiVersion": "v1",
                           "resourceVersion": "41", "fieldPath": "spec.containers{app}"},
        "reason": "Pulled", "message": 'Container image "busybox" already present on machine', "type": "Normal",
        "source": {"component": "kubelet", "host": "node-a"},
        "firstTimestamp": "2025-03-01T12:00:00Z", "lastTimestamp": "2025-03-01T12:00:00Z", "count": 1,
        "reportingComponent": "kubelet", "reportingInstance": "node-a",
    }


def test_an_event_about_a_cluster_scoped_object_goes_to_the_default_namespace(recorder: EventRecorder,
                                                                             sink: MemorySink) -> None:
    recorder.record(object_reference(NODE, "Node"), NORMAL, "NodeNotReady", "Node node-a status is now: NodeNotReady")
    assert recorder.flush(5)
    event = sink.only()
    assert event["metadata"]["namespace"] == "default"
    assert event["involvedObject"] == {"kind": "Node", "name": "node-a", "uid": "uid-n", "apiVersion": "v1"}


def test_events_recorded_in_one_clock_tick_get_distinct_names(recorder: EventRecorder, sink: MemorySink) -> None:
    for reason in ("Created", "Started"):
        recorder.record(object_reference(POD, "Pod"), NORMAL, reason, reason)
    assert recorder.flush(5)
    assert len(sink.events) == 2


def test_a_repeated_event_counts_up_on_the_event_already_sent(recorder: EventRecorder, sink: MemorySink,
                                                               clock: FakeClock) -> None:
    for _ in range(3):
        # A newer resourceVersion of the pod is still the same story.
        pod = {**POD, "metadata": {**POD["metadata"], "resourceVersion": str(clock.now.second)}}
        recorder.record(object_reference(pod, "Pod"), WARNING, "BackOff", "Back-off restarting failed container")
        clock.advance(10)
    assert recorder.flush(5)
    event = sink.only()
    assert sink.creates == 1
    assert (event["count"], event["firstTimestamp"], event["lastTimestamp"]) == (
        3, "2025-03-01T12:00:00Z", "2025-03-01T12:00:20Z")
    assert recorder.stats().sent == 3


def test_a_different_message_is_a_new_event(recorder: EventRecorder, sink: MemorySink) -> None:
    recorder.record(object_reference(POD, "Pod"), WARNING, "FailedScheduling", "0/1 nodes are available: a")
    recorder.record(object_reference(POD, "Pod"), WARNING, "FailedScheduling", "0/2 nodes are available: b")
    assert recorder.flush(5)
    assert sorted(e["message"] for e in sink.events.values()) == ["0/1 nodes are available: a",
                                                                  "0/2 nodes are available: b"]


def test_a_repeat_of_an_event_the_server_no_longer_has_starts_a_new_one(recorder: EventRecorder,
                                                                        sink: MemorySink) -> None:
    recorder.record(object_reference(POD, "Pod"), NORMAL, "Pulled", "present")
    assert recorder.flush(5)
    sink.events.clear()  # expired on the server
    recorder.record(object_reference(POD, "Pod"), NORMAL, "Pulled", "present")
    assert recorder.flush(5)
    assert sink.only()["count"] == 1


def test_a_failing_sink_neither_reaches_the_caller_nor_leaks_into_the_log(
        recorder: EventRecorder, sink: MemorySink, caplog: pytest.LogCaptureFixture) -> None:
    sink.fail_with = ApiError(403, "Forbidden", "token s3cr3t-value was refused")
    with caplog.at_level(logging.INFO, logger="securekube.events"):
        for index in range(3):
            recorder.record(object_reference(POD, "Pod"), NORMAL, "Started", f"Started container c{index}")
        assert recorder.flush(5)
        warnings = [r for r in caplog.records if r.levelno == logging.WARNING]
        assert len(warnings) == 1  # once per run of failures, not once per event
        assert "403 Forbidden" in caplog.text and "s3cr3t" not in caplog.text
        assert recorder.stats().dropped == 3
        sink.fail_with = None
        recorder.record(object_reference(POD, "Pod"), NORMAL, "Started", "Started container again")
        assert recorder.flush(5)
    assert "accepted again (3 dropped meanwhile)" in caplog.text
    assert sink.only()["message"] == "Started container again"


def test_recording_never_blocks_when_the_sink_hangs(sink: MemorySink, clock: FakeClock,
                                                    caplog: pytest.LogCaptureFixture) -> None:
    sink.gate = threading.Event()
    recorder = EventRecorder(sink, EventSource("kubelet"), RecorderConfig(queue_size=3), clock=clock)
    recorder.start()
    try:
        began = time.monotonic()
        with caplog.at_level(logging.WARNING, logger="securekube.events"):
            for index in range(20):
                recorder.record(object_reference(POD, "Pod"), NORMAL, "Started", f"event {index}")
                if index == 0:
                    assert sink.entered.wait(5)  # the sender took the first one and hangs in the sink
        assert time.monotonic() - began < 1.0
        assert recorder.stats().dropped == 16  # 1 in the sink, 3 queued, the rest dropped
        assert caplog.text.count("event queue full") == 1
        sink.gate.set()
        assert recorder.flush(5)
        assert recorder.stats() == type(recorder.stats())(sent=4, dropped=16)
    finally:
        sink.gate.set()
        recorder.close()


def test_an_invalid_event_is_dropped_not_raised(recorder: EventRecorder, sink: MemorySink) -> None:
    recorder.record(object_reference(POD, "Pod"), "Critical", "Oops", "not a type events have")
    recorder.record({"kind": "Pod"}, NORMAL, "Started", "no object name")
    assert recorder.flush(5)
    assert sink.events == {}
    assert recorder.stats().dropped == 2


def test_close_sends_what_is_queued_and_refuses_more(sink: MemorySink, clock: FakeClock) -> None:
    recorder = EventRecorder(sink, EventSource("kubelet"), clock=clock)
    recorder.record(object_reference(POD, "Pod"), NORMAL, "Killing", "Stopping container app")
    recorder.start()
    recorder.close()
    recorder.record(object_reference(POD, "Pod"), NORMAL, "Killing", "after close")
    assert [e["message"] for e in sink.events.values()] == ["Stopping container app"]
    assert recorder.stats().dropped == 1


def test_a_long_message_is_cut_to_one_kilobyte(recorder: EventRecorder, sink: MemorySink) -> None:
    recorder.record(object_reference(POD, "Pod"), WARNING, "Failed", "x" * 5000)
    assert recorder.flush(5)
    assert len(sink.only()["message"]) == 1024


@pytest.fixture
def registry(tmp_path: Path) -> Iterator[Registry]:
    storage = SqliteStorage(tmp_path / "state.db")
    yield Registry(storage, lambda resource, group: IdentityTransformer())
    storage.close()


def test_the_store_sink_writes_events_the_api_serves_and_counts_repeats(registry: Registry, clock: FakeClock) -> None:
    store = registry.store_for_kind("", "Event")
    recorder = EventRecorder(StoreEventSink(store), EventSource("default-scheduler"), clock=clock)
    recorder.start()
    try:
        for _ in range(2):
            recorder.record(object_reference(POD, "Pod"), WARNING, "FailedScheduling", "0/0 nodes are available")
            clock.advance(5)
        assert recorder.flush(5)
    finally:
        recorder.close()
    [event] = store.list("shop").items
    assert (event["involvedObject"]["name"], event["count"], event["lastTimestamp"]) == (
        "web", 2, "2025-03-01T12:00:05Z")
    assert recorder.stats().dropped == 0


def test_the_store_sink_reports_a_missing_event_as_gone(registry: Registry) -> None:
    assert StoreEventSink(registry.store_for_kind("", "Event")).patch("shop", "web.1", {"count": 2}) is False
