"""Reading container log files in the CRI logging format.

The runtime writes one line per chunk of output: `<RFC 3339 time> <stdout|stderr> <P|F> <text>`,
where P marks a partial line (long lines are split) and F the last chunk of a line. This module
turns such a file back into what the container printed, as `kubectl logs` shows it.
"""
from __future__ import annotations

from collections import deque
from dataclasses import dataclass
from pathlib import Path

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
