"""Writing review results: aligned text tables, an audit.k8s.io/v1 EventList, JSON lines.

Everything shown comes from log lines anyone able to send a request could shape (user agents,
object names): text cells have control characters escaped so a crafted value cannot move the
cursor or recolour a reviewer's terminal.
"""
from __future__ import annotations

import json
from collections.abc import Iterable, Sequence
from itertools import chain, islice
from typing import Any, TextIO

from securekube.audit.review.reader import LogLine

WIDTH_SAMPLE_ROWS = 500  # rows measured for column widths before streaming the rest
MAX_CELL = 80


def safe_text(value: object) -> str:
    """A value for one terminal cell: control and other non-printable characters escaped, length capped."""
    text = value if isinstance(value, str) else ("" if value is None else str(value))
    if not text.isprintable():
        text = "".join(ch if ch.isprintable() else ch.encode("unicode_escape").decode("ascii") for ch in text)
    return text if len(text) <= MAX_CELL else text[:MAX_CELL - 1] + "…"


def write_table(out: TextIO, headers: Sequence[str], rows: Iterable[Sequence[object]]) -> int:
    """An aligned table like kubectl's; widths come from the first rows, so output streams. Returns rows written."""
    rows = iter(rows)
    sample = [[safe_text(cell) for cell in row] for row in islice(rows, WIDTH_SAMPLE_ROWS)]
    widths = [len(h) for h in headers]
    for row in sample:
        for i, cell in enumerate(row):
            widths[i] = max(widths[i], len(cell))
    out.write(_line(headers, widths))
    count = 0
    for row in chain(sample, ([safe_text(cell) for cell in row] for row in rows)):
        out.write(_line(row, widths))
        count += 1
    return count


def _line(cells: Sequence[str], widths: Sequence[int]) -> str:
    padded = [cell.ljust(width) for cell, width in zip(cells[:-1], widths)]
    return "   ".join([*padded, cells[-1]]).rstrip() + "\n"


def write_event_list(out: TextIO, records: Iterable[LogLine]) -> int:
    """An audit.k8s.io/v1 EventList, one item per line, written as it goes. Returns the number of items."""
    out.write('{"kind":"EventList","apiVersion":"audit.k8s.io/v1","metadata":{},"items":[')
    count = 0
    for record in records:
        out.write(",\n" if count else "\n")
        out.write(json.dumps(record.event, ensure_ascii=False, separators=(",", ":")))
        count += 1
    out.write("\n]}\n")
    return count


def write_lines(out: Any, records: Iterable[LogLine]) -> int:
    """The matching log lines exactly as they are in the log (binary `out`). Returns the number written."""
    count = 0
    batch: list[bytes] = []
    for record in records:
        batch.append(record.raw)
        count += 1
        if len(batch) >= 4096:
            out.write(b"\n".join(batch) + b"\n")
            batch.clear()
    if batch:
        out.write(b"\n".join(batch) + b"\n")
    return count


def json_dump(out: TextIO, value: Any) -> None:
    json.dump(value, out, indent=2, ensure_ascii=False, default=str)
    out.write("\n")
