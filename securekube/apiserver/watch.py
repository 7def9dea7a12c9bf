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
DEFAULT_TIMEOUT_SECONDS = 1800  # upstream picks 30-60 min; clients re-watch from the last resourceVersion


def _line(event_type: str, obj: dict) -> bytes:
    return json.dumps({"type": event_type, "object": obj}, separators=(",", ":")).encode() + b"\n"


async def stream_watch(store: Store, namespace: str, resource_version: str, opts: ListOptions, *,
                       timeout_seconds: int, bookmarks: bool, table: bool, include_object: str) -> AsyncIterator[bytes]:
    """Yields watch events until the timeout; the caller has already authorized the watch."""
    try:
        watch = await run_in_threadpool(store.watch, namespace, resource_version, opts)
    except ApiError as exc:
        yield _line("ERROR", exc.status())
        return
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
                yield _line("BOOKMARK", {"kind": store.type.kind, "apiVersion": store.type.api_version,
                                         "metadata": {"resourceVersion": str(watch.revision)}})
    finally:
        await run_in_threadpool(watch.close)
