"""Streaming a watch: newline-delimited watch events, bookmarks, and a bounded lifetime."""
from __future__ import annotations

import json
import time
from typing import AsyncIterator

from starlette.concurrency import run_in_threadpool

from securekube.api.errors import ApiError
from securekube.apiserver.negotiation import to_table
from securekube.registry.store import ListOptions, Store

POLL_SECONDS = 1.0
BOOKMARK_INTERVAL_SECONDS = 10.0
DEFAULT_TIMEOUT_SECONDS = 1800
INITIAL_EVENTS_END = "k8s.io/initial-events-end"  # upstream picks 30-60 min; clients re-watch from the last resourceVersion


def _line(event_type: str, obj: dict) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


def _bookmark(store: Store, revision: int, initial_events_end: bool = False) -> bytes:
    meta: dict = {"resourceVersion": str(revision)}
    if initial_events_end:
        meta["annotations"] = {INITIAL_EVENTS_END: "true"}
    return _line("BOOKMARK", {"kind": store.type.kind, "apiVersion": store.type.api_version, "metadata": meta})


async def stream_watch(store: Store, namespace: str, resource_version: str, opts: ListOptions, *,
                       timeout_seconds: int, bookmarks: bool, table: bool, include_object: str,
                       send_initial_events: bool = False) -> AsyncIterator[bytes]:
    """Yields watch events until the timeout; the caller has already authorized the watch.

    With `send_initial_events` (client-go's watch-list), the current objects come first as
    ADDED, then a bookmark annotated `k8s.io/initial-events-end` says the replay is complete.
    """
    try:
        watch = await run_in_threadpool(store.watch, namespace, resource_version, opts, send_initial_events)
    except ApiError as exc:
        yield _line("ERROR", exc.status())
        return
    if send_initial_events:
        for event in watch.take_initial():
            yield _line(event.type, event.object)
        yield _bookmark(store, watch.initial_revision, initial_events_end=True)
    deadline = time.monotonic() + (timeout_seconds or DEFAULT_TIMEOUT_SECONDS)
    last_bookmark = time.monotonic()
    first_table = True
    try:
        while time.monotonic() < deadline:
            try:
                events = await run_in_threadpool(watch.next, min(POLL_SECONDS, max(deadline - time.monotonic(), 0.01)))
            except ApiError as exc:
                yield _line("ERROR", exc.status())
                return
            for event in events:
                obj = event.object
                if table:
                    obj = to_table(store.strategy, [obj], {"resourceVersion": obj["metadata"]["resourceVersion"]},
                                   include_object, with_headers=first_table)
                    first_table = False
                yield _line(event.type, obj)
            if bookmarks and time.monotonic() - last_bookmark >= BOOKMARK_INTERVAL_SECONDS:
                last_bookmark = time.monotonic()
                yield _bookmark(store, watch.revision)
    finally:
        await run_in_threadpool(watch.close)
