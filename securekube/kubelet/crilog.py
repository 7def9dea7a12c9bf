"""Reading container log files in the CRI logging format.

The runtime writes one line per chunk of output: `<RFC 3339 time> <stdout|stderr> <P|F> <text>`,
where P marks a partial line (long lines are split) and F the last chunk of a line. This module
turns such a file back into what the container printed, as `kubectl logs` shows it: all at once
(`read_container_log`), or as the kubelet API serves it (`ContainerLogStream`: tail, since,
timestamps, byte limit, and following the file while the container runs).
"""
from __future__ import annotations

import os
import re
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import BinaryIO

STREAMS = ("stdout", "stderr")


@dataclass(frozen=True)
class LogLine:
    """One line the container printed: when, on which stream, and the text (without newline)."""

    timestamp: str
    stream: str
    text: str


def parse_cri_log(content: str) -> list[LogLine]:
    """The lines of a CRI log file, with partial chunks joined back together."""
    lines: list[LogLine] = []
    partial: dict[str, list[str]] = {}
    for raw in content.split("\n"):
        if not raw:
            continue
        fields = raw.split(" ", 3)
        if len(fields) < 3 or fields[1] not in STREAMS:
            continue  # a torn write at the end of a file being written; the runtime rewrites it
        timestamp, stream, tag = fields[0], fields[1], fields[2]
        text = fields[3] if len(fields) == 4 else ""
        if tag == "P":
            partial.setdefault(stream, []).append(text)
            continue
        chunks = partial.pop(stream, [])
        lines.append(LogLine(timestamp, stream, "".join(chunks) + text))
    return lines


def read_container_log(path: Path, tail_lines: int | None = None, stream: str | None = None,
                       max_bytes: int = 10 * 1024 * 1024) -> str:
    """A container's output as text, optionally only the last `tail_lines` lines of one stream.

    At most the last `max_bytes` of the file are read, so a chatty container cannot make the
    kubelet allocate without bound.
    """
    if stream is not None and stream not in STREAMS:
        raise ValueError(f"stream must be one of {STREAMS}, not {stream!r}")
    with open(path, "rb") as log:
        log.seek(0, 2)
        size = log.tell()
        log.seek(max(0, size - max_bytes))
        content = log.read().decode("utf-8", errors="replace")
    if size > max_bytes:
        content = content.split("\n", 1)[-1]  # drop the line the cut went through
    selected = [line for line in parse_cri_log(content) if stream is None or line.stream == stream]
    if tail_lines is not None:
        selected = list(deque(selected, maxlen=max(tail_lines, 0)))
    return "".join(line.text + "\n" for line in selected)


# ---- serving a log file as the kubelet API does: tail, since, timestamps, limit, follow ---------

# A CRI record's time is RFC 3339 with up to nine fraction digits, in whatever zone the runtime uses.
_RECORD_TIME = re.compile(rb"(\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2})(?:\.(\d{1,9}))?(Z|[+-]\d{2}:\d{2})")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)
# Only this much of the end of a file is searched for the start of the last `tailLines` lines.
TAIL_WINDOW_BYTES = 10 * 1024 * 1024
READ_BYTES = 64 * 1024
# The runtime splits output into records of 16 KiB; anything much longer without a newline is not
# a CRI record, and is dropped rather than held in memory without bound.
MAX_RECORD_BYTES = 1024 * 1024


@dataclass(frozen=True)
class CriRecord:
    """One line of a CRI log file: a chunk of output, the last one of its line unless `partial`."""

    timestamp: bytes
    stream: str
    partial: bool
    content: bytes


def parse_cri_record(raw: bytes) -> CriRecord | None:
    """A CRI log line (without its newline), or None if it is not one (upstream skips those)."""
    fields = raw.split(b" ", 3)
    if len(fields) < 3 or not _RECORD_TIME.fullmatch(fields[0]):
        return None
    stream = fields[1].decode("ascii", errors="replace")
    if stream not in STREAMS:
        return None
    # The tag field may carry more tags after a colon; the first says partial (P) or full (F).
    partial = fields[2].split(b":", 1)[0] == b"P"
    return CriRecord(fields[0], stream, partial, fields[3] if len(fields) == 4 else b"")


def nanos_since_epoch(moment: datetime) -> int:
    """An aware datetime as nanoseconds since the Unix epoch (the unit record times are compared in)."""
    return (moment - _EPOCH) // timedelta(microseconds=1) * 1000


def record_nanos(timestamp: bytes) -> int | None:
    """A record's time in nanoseconds since the epoch, or None if it is no valid time."""
    match = _RECORD_TIME.fullmatch(timestamp)
    if match is None:
        return None
    zone = "+00:00" if match[3] == b"Z" else match[3].decode()
    try:
        whole = datetime.fromisoformat(match[1].decode() + zone)
    except ValueError:
        return None
    return (whole - _EPOCH) // timedelta(seconds=1) * 1_000_000_000 + int((match[2] or b"").ljust(9, b"0"))


def fixed_timestamp(timestamp: bytes) -> bytes:
    """A record's time as upstream's kubelet prints it (RFC3339NanoFixed): nine digits, "Z" for UTC."""
    match = _RECORD_TIME.fullmatch(timestamp)
    if match is None:
        return timestamp
    zone = b"Z" if match[3] in (b"Z", b"+00:00", b"-00:00") else match[3]
    return match[1] + b"." + (match[2] or b"").ljust(9, b"0") + zone


@dataclass(frozen=True)
class LogReadOptions:
    """Which part of a log file to serve, and how (upstream's PodLogOptions as the kubelet applies them)."""

    follow: bool = False
    timestamps: bool = False
    since_nanos: int | None = None  # records stamped earlier are left out
    tail_lines: int | None = None  # counted in lines the container printed, not in records
    limit_bytes: int | None = None  # of output, timestamps included; the last line may be cut


@dataclass(frozen=True)
class FollowPace:
    """How often a follow looks for new output, and how often it asks whether the container still runs."""

    poll_seconds: float = 0.1
    status_seconds: float = 0.5


def _never() -> bool:
    return False


def tail_start(log: BinaryIO, lines: int) -> int:
    """The offset in an open log file where its last `lines` lines begin (within TAIL_WINDOW_BYTES)."""
    end = log.seek(0, os.SEEK_END)
    start = max(0, end - TAIL_WINDOW_BYTES)
    log.seek(start)
    window = log.read(end - start)
    skip = window.find(b"\n") + 1 if start > 0 else 0  # the record the window cuts through is not counted
    complete = window.rfind(b"\n") + 1  # a torn record at the very end is read later, when it is whole
    line_starts: list[int] = []
    at_line_start = True
    position = skip
    for raw in window[skip:complete].split(b"\n")[:-1]:
        record = parse_cri_record(raw)
        if record is not None:
            if at_line_start:
                line_starts.append(start + position)
            at_line_start = not record.partial
        position += len(raw) + 1
    if lines == 0:
        return start + max(skip, complete)
    if lines >= len(line_starts):
        return start + skip
    return line_starts[-lines]


class _Renderer:
    """Turns complete CRI records into output: since filter, timestamps, byte limit."""

    def __init__(self, options: LogReadOptions) -> None:
        self._options = options
        self._at_line_start = dict.fromkeys(STREAMS, True)
        self._remaining = options.limit_bytes

    @property
    def exhausted(self) -> bool:
        return self._remaining is not None and self._remaining <= 0

    def render(self, records: bytes) -> bytes:
        output = bytearray()
        for raw in records.split(b"\n"):
            record = parse_cri_record(raw)
            if record is None:
                continue
            if self._options.since_nanos is not None:
                stamped = record_nanos(record.timestamp)
                if stamped is None or stamped < self._options.since_nanos:
                    continue
            piece = record.content if record.partial else record.content + b"\n"
            # A line split into partial records gets one timestamp, at its start (as upstream).
            if self._options.timestamps and self._at_line_start[record.stream]:
                piece = fixed_timestamp(record.timestamp) + b" " + piece
            self._at_line_start[record.stream] = not record.partial
            output += piece
            if self._remaining is not None and len(output) >= self._remaining:
                del output[self._remaining:]
                break
        if self._remaining is not None:
            self._remaining -= len(output)
        return bytes(output)


class ContainerLogStream:
    """A container's CRI log file, served as chunks of output; iterate `chunks()`, then `close()`.

    With `follow`, the chunks go on as the runtime appends to the file, and end once
    `still_running()` has said no and what the container wrote before it stopped has been read
    (upstream: the stream ends when the container is no longer running and the file is drained).
    A file that does not exist is a container that has printed nothing yet: no chunks.
    """

    def __init__(self, path: Path, options: LogReadOptions, still_running: Callable[[], bool] = _never,
                 pace: FollowPace = FollowPace()) -> None:
        self._options = options
        self._still_running = still_running
        self._pace = pace
        self._file: BinaryIO | None = None
        try:
            self._file = open(path, "rb")
        except FileNotFoundError:
            return
        try:
            self._file.seek(0 if options.tail_lines is None else tail_start(self._file, options.tail_lines))
        except BaseException:
            self.close()
            raise

    def __enter__(self) -> ContainerLogStream:
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.close()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()

    def chunks(self, cancelled: Callable[[], bool] = _never) -> Iterator[bytes]:
        """The output, one chunk per read of the file; a follow also ends once `cancelled()` says so."""
        if self._file is None:
            return
        renderer = _Renderer(self._options)
        pending = b""
        stopped_seen = False
        next_status_check = 0.0
        while not renderer.exhausted:
            data = self._file.read(READ_BYTES)
            if data:
                pending += data
                complete = pending.rfind(b"\n") + 1
                if complete:
                    output = renderer.render(pending[:complete])
                    pending = pending[complete:]
                    if output:
                        yield output
                elif len(pending) > MAX_RECORD_BYTES:
                    pending = b""
                continue
            if not self._options.follow or stopped_seen or cancelled():
                return
            now = time.monotonic()
            if now >= next_status_check:
                next_status_check = now + self._pace.status_seconds
                if not self._still_running():
                    # The runtime may have appended its last records just before it stopped: one more pass.
                    stopped_seen = True
                    continue
            time.sleep(self._pace.poll_seconds)
