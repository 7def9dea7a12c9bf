"""The audit log reader: Events from plain and gzipped files, rotated sets and stdin, one per line.

This is the hot path of every review command, so it reads in large chunks, splits lines in C
(`bytes.split`) and, when the caller knows what it is looking for, skips lines with a cheap
substring test (`LineFilter`) before paying for `json.loads`. The test is built so that it never
skips a line the exact check on the parsed event would accept (see `LineFilter`).

Bad input never stops a review: malformed lines, non-object JSON, events of other API versions,
over-long lines and truncated or corrupt gzip data are recorded in `ReadProblems` with the file
and line number, and reading goes on with the next line or file.
"""
from __future__ import annotations

import json
import os
import stat
import sys
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime, timezone
from typing import Any, BinaryIO, NamedTuple

from securekube.audit.review import problems as kinds
from securekube.audit.review.event_fields import parse_time, timestamp_text
from securekube.audit.review.problems import ReadProblems

STDIN = "-"
CHUNK_BYTES = 8 << 20  # large reads: the per-read cost vanishes, memory stays small
MAX_LINE_BYTES = 64 << 20  # far above any event (request bodies are limited to 3 MiB); stops a newline-free file
GZIP_MAGIC = b"\x1f\x8b"
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # gzip header and trailer (CRC, length) are checked by zlib
AUDIT_V1 = "audit.k8s.io/v1"
OLDER_AUDIT_VERSIONS = frozenset({"audit.k8s.io/v1beta1", "audit.k8s.io/v1alpha1"})
CHECKPOINT_ANNOTATION = "audit.securekube.io/checkpoint"  # = securekube.audit.chain.CHECKPOINT (not imported: crypto)
# Present in every v1 event line as written by kube-apiserver, securekube and json.dumps alike.
_V1_MARK = b'"audit.k8s.io/v1"'
_PEEK_BYTES = 1 << 20  # how far into a file to look for its first event's time
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


class InputError(Exception):
    """An input that cannot be read at all (missing file, directory, permission); worded for the user."""


class LogLine(NamedTuple):
    """One usable event and its line exactly as it was in the log (without the newline)."""

    event: dict[str, Any]
    raw: bytes


class PendingLine(NamedTuple):
    """A RequestReceived line not parsed yet.

    Most requests' final stage follows and makes the intermediate one irrelevant (stages.py), so
    parsing it — about half of an upstream log's lines — is put off until it turns out to be needed.
    """

    audit_id: str
    raw: bytes
    source: str
    number: int

    def resolve(self, problems: ReadProblems) -> "LogLine | None":
        return _EventDecoder()(self.raw, self.source, self.number, problems)


@dataclass(frozen=True)
class LineFilter:
    """A cheap test on a raw line that never rejects a line whose event the exact check would accept.

    `groups`: for each filter, the JSON-quoted values any one of which a matching line must contain
    (e.g. (b'"alice"',) for --user alice). A JSON string is written literally unless it holds an
    escape; if a value has none of the characters with a short escape (quote, backslash, slash,
    control characters), the only way a matching event's line can lack the literal value is a
    \\uXXXX escape (\\u00XX for an ASCII character). So a line that contains one of `escape_markers`
    is always parsed: \\u00 (\\u for a non-ASCII value), \\/ when a value has a slash, and any
    backslash at all when a value has a quote, backslash or control character.
    """

    groups: tuple[tuple[bytes, ...], ...]
    escape_markers: tuple[bytes, ...]

    @classmethod
    def for_values(cls, groups: Iterable[Iterable[str]], quoted: bool = True) -> "LineFilter | None":
        """The filter for these value groups; None when there is nothing to test (read everything).

        quoted=True: the values are whole JSON strings (equality); False: substrings of one.
        """
        needle_groups: list[tuple[bytes, ...]] = []
        markers: set[bytes] = set()
        for values in groups:
            values = tuple(values)
            if not values:
                continue
            needles = []
            for value in values:
                encoded = value.encode("utf-8")
                needles.append(b'"' + encoded + b'"' if quoted else encoded)
                markers.update(_escape_markers(value))
            needle_groups.append(tuple(needles))
        if not needle_groups:
            return None
        return cls(tuple(needle_groups), tuple(sorted(markers)))

    def merged(self, other: "LineFilter | None") -> "LineFilter":
        if other is None:
            return self
        markers = set(self.escape_markers) | set(other.escape_markers)
        return LineFilter(self.groups + other.groups, tuple(sorted(markers)))

    def compile(self) -> Callable[[bytes], bool]:
        groups, markers = self.groups, self.escape_markers

        def admits(line: bytes) -> bool:
            for needles in groups:
                for needle in needles:
                    if needle in line:
                        break
                else:
                    for marker in markers:
                        if marker in line:
                            return True
                    return False
            return True

        return admits


def _escape_markers(value: str) -> set[bytes]:
    if any(ch in '"\\' or ord(ch) < 0x20 for ch in value):
        return {b"\\"}  # any escape could be part of the value: parse every line with a backslash
    # An ASCII character can only be \u-escaped as \u00XX; the longer marker is rarer and faster to find.
    unicode_escape = b"\\u00" if value.isascii() else b"\\u"
    return {unicode_escape, b"\\/"} if "/" in value else {unicode_escape}


class _InputEnded(Exception):
    """Raised by a chunk source when its data stops early; carries the problem kind and a detail."""

    def __init__(self, kind: str, detail: str = "") -> None:
        super().__init__(kind)
        self.kind, self.detail = kind, detail


# ----------------------------------------------------------------------------- inputs


def check_inputs(paths: Sequence[str]) -> list[str]:
    """The inputs, each readable, without repeats; raises InputError for one that cannot be read."""
    if not paths:
        raise InputError("no audit log given (pass one or more files, or - for stdin)")
    if STDIN in paths and len(paths) > 1:
        raise InputError("- (stdin) cannot be combined with files")
    unique: list[str] = []
    seen: set[str] = set()
    for path in paths:
        if path == STDIN:
            return [STDIN]
        try:
            info = os.stat(path)
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}") from None
        if stat.S_ISDIR(info.st_mode):
            raise InputError(f"{path} is a directory; pass the log files in it (e.g. {path.rstrip('/')}/*audit*)")
        if not os.access(path, os.R_OK):
            raise InputError(f"cannot read {path}: permission denied")
        key = os.path.realpath(path)
        if key not in seen:  # a file named twice (overlapping globs) would count its events twice
            seen.add(key)
            unique.append(path)
    return unique


def in_time_order(paths: Sequence[str]) -> list[str]:
    """Rotated files in the order their events happened: by the time of each file's first event.

    Names differ between writers (upstream's audit-<time>.log[.gz], securekube's own), so content
    decides. Files without a readable event keep their place after the others. Pipes and other
    non-regular inputs cannot be read twice, so with one of them the given order is kept.
    """
    if len(paths) < 2 or any(p == STDIN or not os.path.isfile(p) for p in paths):
        return list(paths)
    keyed = []
    for index, path in enumerate(paths):
        first = _first_event_time(path)
        keyed.append((first is None, first or _EPOCH, index, path))
    keyed.sort()
    return [path for *_, path in keyed]


def _first_event_time(path: str) -> datetime | None:
    ignored = ReadProblems(examples_kept=0)
    seen = 0
    try:
        with open(path, "rb", buffering=0) as stream:
            for _, _, block in _line_blocks(path, _decoded_chunks(stream), ignored):
                for raw in block.split(b"\n"):
                    seen += len(raw) + 1
                    try:
                        event = json.loads(raw)
                    except (ValueError, RecursionError):
                        continue
                    if type(event) is dict and (moment := parse_time(timestamp_text(event))) is not None:
                        return moment
                if seen > _PEEK_BYTES:
                    return None
    except OSError:
        return None
    return None


# ----------------------------------------------------------------------------- bytes


def _raw_chunks(stream: BinaryIO) -> Iterator[bytes]:
    while True:
        try:
            chunk = stream.read(CHUNK_BYTES)
        except OSError as exc:
            raise _InputEnded(kinds.UNREADABLE, exc.strerror or type(exc).__name__) from None
        if not chunk:
            return
        yield chunk


def _gunzipped(chunks: Iterator[bytes]) -> Iterator[bytes]:
    """Decompressed gzip data, member after member (logrotate and `cat a.gz b.gz` make several)."""
    decompressor = None
    for chunk in chunks:
        while chunk:
            if decompressor is None:
                decompressor = zlib.decompressobj(_GZIP_WBITS)
            try:
                # Bounded output per call: a small compressed chunk can expand enormously.
                out = decompressor.decompress(chunk, CHUNK_BYTES)
            except zlib.error as exc:
                raise _InputEnded(kinds.CORRUPT_GZIP, str(exc)) from None
            if out:
                yield out
            if decompressor.eof:
                chunk, decompressor = decompressor.unused_data, None
            else:
                chunk = decompressor.unconsumed_tail
    if decompressor is not None:
        try:
            tail = decompressor.flush()
        except zlib.error:
            tail = b""
        if tail:
            yield tail
        raise _InputEnded(kinds.TRUNCATED_GZIP)


def _decoded_chunks(stream: BinaryIO) -> Iterator[bytes]:
    """The stream's content, gunzipped when it starts with the gzip magic bytes (whatever its name)."""
    chunks = _raw_chunks(stream)
    first = next(chunks, b"")
    if not first:
        return
    if first[:2] == GZIP_MAGIC:
        yield from _gunzipped(_prepend(first, chunks))
    else:
        yield first
        yield from chunks


def _prepend(first: bytes, rest: Iterator[bytes]) -> Iterator[bytes]:
    yield first
    yield from rest


def _line_blocks(source: str, chunks: Iterator[bytes], problems: ReadProblems) -> Iterator[tuple[int, int, bytes]]:
    """Runs of complete lines joined by newlines (no trailing one): (number before the first, lines, block).

    When the data ends early (truncated gzip, read error) the lines read so far, including a last
    partial one, are still given, and the problem is recorded at the line where the data stopped.
    """
    leftover = b""
    number = 0
    skipping = False  # inside an over-long line: discard until its newline
    ended: _InputEnded | None = None
    try:
        for chunk in chunks:
            if skipping:
                end = chunk.find(b"\n")
                if end < 0:
                    continue
                number += 1
                problems.add(source, number, kinds.LINE_TOO_LONG, f"over {MAX_LINE_BYTES} bytes")
                chunk, skipping = chunk[end + 1:], False
            data = leftover + chunk if leftover else chunk
            cut = data.rfind(b"\n")
            if cut < 0:
                leftover = data
            else:
                block, leftover = data[:cut], data[cut + 1:]
                lines = block.count(b"\n") + 1
                yield number, lines, block
                number += lines
            if len(leftover) > MAX_LINE_BYTES:
                leftover, skipping = b"", True
    except _InputEnded as exc:
        ended = exc
    if skipping:
        number += 1
        problems.add(source, number, kinds.LINE_TOO_LONG, f"over {MAX_LINE_BYTES} bytes")
    elif leftover:
        yield number, 1, leftover
        number += 1
    if ended is not None:
        problems.add(source, number + (0 if leftover else 1), ended.kind, ended.detail)


# ----------------------------------------------------------------------------- events


def read_events(paths: Sequence[str], problems: ReadProblems, line_filter: LineFilter | None = None,
                stdin: BinaryIO | None = None) -> Iterator[LogLine]:
    """Every usable event of the inputs, files in the order their events happened.

    With a `line_filter`, only lines that contain the values it looks for (or an escape that could
    hide one) are parsed; the other lines are still checked for the cheap signs of damage (a line
    that is not `{...}`, or has no audit.k8s.io/v1 marker), so a cut-off or foreign line is
    reported even though it is not parsed. Subtler damage inside a line that cannot match goes
    unnoticed; a run without filters (e.g. `audit summary`) checks every line.
    """
    return _read(paths, problems, line_filter, stdin, defer_request_received=False)


def read_deferring(paths: Sequence[str], problems: ReadProblems,
                   stdin: BinaryIO | None = None) -> Iterator[LogLine | PendingLine]:
    """Like read_events without a filter, but RequestReceived lines come as PendingLine, unparsed.

    For `stages.one_per_request`, which parses the few it needs. Recognition is conservative (see
    _intermediate_audit_id): any line in an unusual form is parsed as usual.
    """
    return _read(paths, problems, None, stdin, defer_request_received=True)


def _read(paths: Sequence[str], problems: ReadProblems, line_filter: LineFilter | None, stdin: BinaryIO | None,
          defer_request_received: bool) -> Iterator[Any]:
    for path in in_time_order(check_inputs(paths)):
        if path == STDIN:
            yield from _events_in("<stdin>", _decoded_chunks(stdin or sys.stdin.buffer), problems, line_filter,
                                  defer_request_received)
            continue
        try:
            stream = open(path, "rb", buffering=0)
        except OSError as exc:  # removed or locked between the check and now
            problems.add(path, 0, kinds.UNREADABLE, exc.strerror or type(exc).__name__)
            continue
        with stream:
            yield from _events_in(path, _decoded_chunks(stream), problems, line_filter, defer_request_received)


def _events_in(source: str, chunks: Iterator[bytes], problems: ReadProblems,
               line_filter: LineFilter | None, defer_request_received: bool) -> Iterator[Any]:
    decode = _EventDecoder()
    blocks = _line_blocks(source, chunks, problems)
    if line_filter is None:
        for before, _, block in blocks:
            for number, raw in enumerate(block.split(b"\n"), before + 1):
                if not raw:
                    continue
                if defer_request_received and (audit_id := _intermediate_audit_id(raw)) is not None:
                    yield PendingLine(audit_id, raw, source, number)
                    continue
                record = decode(raw, source, number, problems)
                if record is not None:
                    yield record
        return
    search = _CandidateSearch(line_filter)
    for before, lines, block in blocks:
        if search.block_is_intact(block, lines):
            for start, raw in search.candidates(block):
                if search.admits(raw):
                    # The line number costs a scan of the block so far: only counted when needed.
                    record = decode(raw, source, lambda: before + block.count(b"\n", 0, start) + 1, problems)
                    if record is not None:
                        yield record
            continue
        # Something in this block is not an intact v1 event line: look at each line to report it.
        admits, v1_mark = search.admits, _V1_MARK
        for number, raw in enumerate(block.split(b"\n"), before + 1):
            if not raw or (not admits(raw) and raw[0] == 123 and raw[-1] == 125 and v1_mark in raw):
                continue
            record = decode(raw, source, number, problems)
            if record is not None:
                yield record


_STAGE_KEY = b'"stage":"'
_AUDIT_ID_KEY = b'"auditID":"'
# Only RequestReceived: a ResponseStarted line can be a request's last (failed authentication, a watch
# still open), and parsing those few keeps them in order.
_INTERMEDIATE_STAGES = (b'RequestReceived"',)


def _intermediate_audit_id(raw: bytes) -> str | None:
    """The auditID of an intact v1 RequestReceived line, read without parsing; else None.

    Only the compact form kube-apiserver writes qualifies, and only when the line has exactly one
    stage key, one auditID key and one v1 marker, so a value nested in a request body cannot be
    mistaken for the event's own; every other line is parsed as usual.
    """
    at = raw.find(_STAGE_KEY)
    if at < 0:
        return None
    value_at = at + len(_STAGE_KEY)
    if not raw.startswith(_INTERMEDIATE_STAGES, value_at) or raw.find(_STAGE_KEY, value_at) >= 0:
        return None
    id_key = raw.find(_AUDIT_ID_KEY)
    if id_key < 0 or raw.find(_AUDIT_ID_KEY, id_key + 1) >= 0:
        return None
    start = id_key + len(_AUDIT_ID_KEY)
    end = raw.find(b'"', start)
    if end <= start or raw.find(b"\\", start, end) >= 0:
        return None
    if raw[0] != 123 or raw[-1] != 125 or raw.count(_V1_MARK) != 1:
        return None
    try:
        return raw[start:end].decode()
    except UnicodeDecodeError:
        return None


class _CandidateSearch:
    """Finds the lines of a block that a LineFilter could admit, with whole-block searches (C speed).

    Searching a multi-megabyte block for the rarest value, and for the escape markers, touches a
    few lines instead of testing a million; `admits` then applies the whole filter to each.
    """

    SAMPLE_BYTES = 256 << 10  # where the rarest value is measured, per block

    def __init__(self, line_filter: LineFilter) -> None:
        self.groups = line_filter.groups
        self.markers = line_filter.escape_markers
        self.admits = line_filter.compile()

    def block_is_intact(self, block: bytes, lines: int) -> bool:
        """Whether each line seems to hold one v1 event: one v1 marker per line, `{` first, `}` last.

        One count over the block; a file's last line (where a crash leaves a cut-off event) comes
        as a block of its own, so its end is checked too.
        """
        return block[:1] == b"{" and block[-1:] == b"}" and block.count(_V1_MARK) == lines

    def candidates(self, block: bytes) -> Iterator[tuple[int, bytes]]:
        """(offset, line) of every line holding a value of the rarest group or an escape marker."""
        sample = block[:self.SAMPLE_BYTES]
        rarest = min(self.groups, key=lambda needles: sum(sample.count(n) for n in needles))
        spans: dict[int, int] = {}
        find, rfind, size = block.find, block.rfind, len(block)
        for needle in (*rarest, *self.markers):
            at = find(needle)
            while at >= 0:
                start = rfind(b"\n", 0, at) + 1
                end = find(b"\n", at)
                if end < 0:
                    end = size
                spans[start] = end
                at = find(needle, end)
        for start in sorted(spans):
            yield start, block[start:spans[start]]


class _EventDecoder:
    """Turns one raw line into a LogLine, or records why it cannot (and returns None)."""

    def __init__(self) -> None:
        # raw_decode on str skips json.loads' encoding sniffing and whitespace regexes (~30 % faster);
        # anything unusual falls back to json.loads for the exact behaviour and error message.
        self._raw_decode = json.JSONDecoder().raw_decode

    def __call__(self, raw: bytes, source: str, number: int | Callable[[], int],
                 problems: ReadProblems) -> LogLine | None:
        try:
            text = raw.decode()
            event, end = self._raw_decode(text)
            if end != len(text) and not text[end:].isspace():
                raise ValueError("extra data")
        except (ValueError, RecursionError):
            event, kind, detail = _slow_decode(raw)
            if kind:
                problems.add(source, number if isinstance(number, int) else number(), kind, detail)
            if event is None:
                return None
        if type(event) is not dict:
            problems.add(source, number if isinstance(number, int) else number(), kinds.NOT_AN_OBJECT,
                         type(event).__name__)
            return None
        if event.get("apiVersion") != AUDIT_V1 or event.get("kind") != "Event":
            kind, detail, usable = _version_problem(event)
            problems.add(source, number if isinstance(number, int) else number(), kind, detail)
            if not usable:
                return None
        annotations = event.get("annotations")
        if type(annotations) is dict and CHECKPOINT_ANNOTATION in annotations:
            return None  # securekube's signed checkpoint record: not a request
        return LogLine(event, raw[:-1] if raw[-1] == 13 else raw)


def _slow_decode(raw: bytes) -> tuple[Any, str, str]:
    """json.loads with its exact semantics: (value, "", "") or (None, problem kind, detail)."""
    try:
        return json.loads(raw), "", ""
    except UnicodeDecodeError:
        return None, kinds.MALFORMED_JSON, "not valid UTF-8"
    except ValueError as exc:
        if not raw.strip():
            return None, "", ""  # a blank line (also a CRLF one) is not a problem
        if isinstance(exc, json.JSONDecodeError):  # e.g. "Expecting value", "Unterminated string starting at"
            detail = f"{exc.msg}{'' if exc.msg.endswith(' at') else ' at'} column {exc.colno}"
        else:
            detail = "not JSON"
        # JSONDecodeError's message names what was expected and where, never the content itself.
        return None, kinds.MALFORMED_JSON, detail
    except RecursionError:
        return None, kinds.MALFORMED_JSON, "nested too deeply"


def _version_problem(event: dict[str, Any]) -> tuple[str, str, bool]:
    """For an event that is not a plain audit.k8s.io/v1 Event: (problem kind, detail, still usable)."""
    version, kind = event.get("apiVersion"), event.get("kind")
    if kind is not None and kind != "Event":
        return kinds.NOT_AN_EVENT, f"kind {_short(kind)}", False
    if type(version) is str and version in OLDER_AUDIT_VERSIONS:
        # Their Event has the v1 fields this review uses (plus the old `timestamp`).
        return kinds.OLDER_VERSION, version, True
    if version is None:
        if "auditID" in event:  # some log shippers drop apiVersion and kind
            return kinds.MISSING_VERSION, "", True
        return kinds.NOT_AN_EVENT, "no apiVersion, kind or auditID", False
    if version == AUDIT_V1:  # kind missing
        return kinds.MISSING_VERSION, "no kind", True
    return kinds.UNSUPPORTED_VERSION, _short(version), False


def _short(value: object) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text[:60].encode("unicode_escape").decode("ascii")
