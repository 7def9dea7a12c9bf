"""Reading the end of an existing audit log, so that a restarted writer continues its chain.

The writer needs only the last record (its seq and hash) and the last checkpoint (its retention
statement), so the active file is read backwards from its end. A final line without its newline
was cut short by a crash before it was acknowledged; `read_active_tail` removes it.
"""
from __future__ import annotations

import gzip
import json
import os
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from securekube.audit import chain
from securekube.audit.errors import AuditLogError
from securekube.audit.rotation import Backup, plain_and_compressed

_CHECKPOINT_MARK = b'"' + chain.CHECKPOINT.encode() + b'"'
_TAIL_CHUNK = 1 << 16


def read_active_tail(path: Path) -> tuple[bytes | None, bytes | None, int]:
    """The last record and last checkpoint of the active file, after cutting an unfinished line."""
    fd = os.open(path, os.O_RDWR | os.O_NOFOLLOW)
    try:
        size = os.fstat(fd).st_size
        end = _end_of_last_line(fd, size)
        if end < size:
            os.ftruncate(fd, end)
            os.fsync(fd)
        last = checkpoint = None
        for line in _lines_backward(fd, end):
            if last is None:
                last = line
            if _is_checkpoint_line(line):
                checkpoint = line
                break
        return last, checkpoint, size - end
    finally:
        os.close(fd)


def read_backup_tail(backup: Backup) -> tuple[bytes | None, bytes | None]:
    """The last record and last checkpoint of a rotated file (plain or .gz), read from the start."""
    last_line = checkpoint_line = None
    opener = gzip.open if backup.path.name.endswith(".gz") else open
    try:
        with opener(backup.path, "rb") as handle:
            for line in handle:
                if not line.endswith(b"\n"):
                    break
                last_line = line
                if _is_checkpoint_line(line):
                    checkpoint_line = line
    except (OSError, EOFError, zlib.error) as exc:
        raise AuditLogError(f"cannot read {backup.path} to continue its chain ({type(exc).__name__})") from None
    return last_line, checkpoint_line


def _is_checkpoint_line(line: bytes) -> bool:
    # The cheap test first; then parse, because a request body logged in an event may contain the
    # same text without the event being a checkpoint.
    if _CHECKPOINT_MARK not in line:
        return False
    try:
        return chain.is_checkpoint(json.loads(line))
    except (ValueError, RecursionError):
        return False


def first_seq(backup: Backup) -> int | None:
    """The seq of a rotated file's first record; None when it cannot be read."""
    # The mill may be swapping the plain file for its .gz right now: one of them exists.
    for path in plain_and_compressed(backup.path):
        opener = gzip.open if path.name.endswith(".gz") else open
        try:
            with opener(path, "rb") as handle:
                first = handle.readline()
            return chain.chain_link(json.loads(first)).seq
        except FileNotFoundError:
            continue
        except (OSError, EOFError, zlib.error, ValueError, chain.ChainError):
            return None
    return None


def _end_of_last_line(fd: int, size: int) -> int:
    position = size
    while position > 0:
        start = max(0, position - _TAIL_CHUNK)
        chunk = os.pread(fd, position - start, start)
        newline = chunk.rfind(b"\n")
        if newline >= 0:
            return start + newline + 1
        position = start
    return 0


def _lines_backward(fd: int, end: int) -> Iterator[bytes]:
    """Complete lines of the file before `end`, last first (without their newlines)."""
    position, carry = end, b""
    while position > 0:
        start = max(0, position - _TAIL_CHUNK)
        chunk = os.pread(fd, position - start, start) + carry
        position = start
        parts = chunk.split(b"\n")
        carry = parts[0]
        for part in reversed(parts[1:]):
            if part:
                yield part
    if carry:
        yield carry


def parse_last(line: bytes, path: Path) -> dict[str, Any]:
    """A line from the end of a log as a JSON object, or AuditLogError saying the log cannot be continued."""
    try:
        value = json.loads(line)
    except ValueError:
        raise AuditLogError(f"{path} ends with a line that is not JSON; run `securekube audit verify` on it, "
                            "then move it aside to start a new chain") from None
    if not isinstance(value, dict):
        raise AuditLogError(f"{path} ends with a line that is not an audit event; move it aside to start a new chain")
    return value
