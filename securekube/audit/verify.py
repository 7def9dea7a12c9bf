"""Verification of securekube audit logs: is this the history the API server wrote, all of it?

`verify(files, public_key)` reads plain and gzipped files (recognised by content, not name), puts
them in chain order by their records' sequence numbers, and checks every record:

- its hash matches the exact bytes of its line - catches an **edited** record (also one changed
  only in whitespace or by a duplicated key that parsers might read differently);
- it follows the record before it (seq + 1, prev = that record's hash) - catches a **deleted**,
  **inserted**, **reordered** or re-hashed record, within a file and across rotated files;
- every checkpoint's Ed25519 signature verifies and its signed head is the chain before it -
  catches a **forged** checkpoint and an edit whose hashes were recomputed;
- the history starts where the latest checkpoint says rotation left it (`retainedFromSeq`) -
  catches a **deleted rotated file**, the oldest one included;
- nothing follows a `close` checkpoint except the next run's opening checkpoint, and no witnessed
  checkpoint (`<log>.checkpoint`, or a copy kept elsewhere) lies beyond the end - catches a
  **truncated** log.

Problems say where: file, line number, seq and auditID. Records after the last checkpoint are not
yet covered by a signature; that is normal for a log being written and is reported as a note.
"""
from __future__ import annotations

import hashlib
import json
import zlib
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, BinaryIO

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PublicKey

from securekube.audit import chain

GZIP_MAGIC = b"\x1f\x8b"
MAX_PROBLEMS = 1000  # a wrecked file must not produce a report nobody can read
_ORDERING_PEEK_LINES = 1000


@dataclass(frozen=True)
class Problem:
    """One sign of tampering (or damage), with where it was found."""

    file: str
    line: int  # 1-based; 0 when the problem is about the file as a whole
    message: str
    seq: int | None = None
    audit_id: str = ""

    def __str__(self) -> str:
        # auditIDs come from the (possibly forged) log: escaped, so a problem is always one honest line
        where = _printable(f"{self.file}:{self.line}" if self.line else self.file)
        about = [f"seq {self.seq}"] if self.seq is not None else []
        if self.audit_id:
            about.append(f"auditID {_printable(self.audit_id)}")
        return f"{where}: {self.message}" + (f" [{', '.join(about)}]" if about else "")


@dataclass(frozen=True)
class VerifyReport:
    """The outcome of `verify`: intact when there are no problems."""

    problems: tuple[Problem, ...]
    notes: tuple[str, ...]
    files: tuple[str, ...]  # in chain order
    records: int
    checkpoints: int
    first_seq: int | None
    last_seq: int | None
    sealed_through: int | None  # seq of the last valid checkpoint
    more_problems: int = 0  # found beyond MAX_PROBLEMS and not listed

    @property
    def intact(self) -> bool:
        return not self.problems


def verify(files: Sequence[Path], public_key: Ed25519PublicKey, *,
           witnesses: Sequence[Path] = ()) -> VerifyReport:
    """Checks a set of audit log files (any order, plain or .gz) against the signing key's public half.

    `witnesses` are files holding copies of checkpoints kept apart from the log (the writer's
    `<log>.checkpoint`, or lines collected elsewhere); any checkpoint they hold must be in the log.
    """
    return _Verifier(public_key).run([Path(f) for f in files], [Path(w) for w in witnesses])


@dataclass
class _Position:
    seq: int
    hash: str
    file: str
    line: int
    audit_id: str = ""


@dataclass
class _Gap:
    start: int
    end: int  # inclusive
    file: str
    line: int
    file_start: bool  # noticed at the first record of a file: a whole file may be gone


@dataclass
class _Witness:
    statement: str
    signature: str
    source: str
    line: int
    checkpoint: chain.Checkpoint
    matched: bool = False


@dataclass
class _Verifier:
    public_key: Ed25519PublicKey
    problems: list[Problem] = field(default_factory=list)
    more_problems: int = 0
    notes: list[str] = field(default_factory=list)
    high: _Position | None = None
    first_seq: int | None = None
    gaps: list[_Gap] = field(default_factory=list)
    unreadable: int = 0
    records: int = 0
    checkpoints: int = 0
    last_valid: tuple[chain.Checkpoint, str, int] | None = None
    after_close: bool = False
    twin: _Position | None = None  # a second record claiming the head's seq; which is genuine is decided next
    witnesses: dict[int, _Witness] = field(default_factory=dict)

    def run(self, files: list[Path], witness_files: list[Path]) -> VerifyReport:
        for witness in witness_files:
            self._load_witness(witness)
        ordered = self._order(files)
        for path in ordered:
            self._read_file(path)
        self._finish()
        return VerifyReport(
            problems=tuple(self.problems), notes=tuple(self.notes), files=tuple(str(p) for p in ordered),
            records=self.records, checkpoints=self.checkpoints, first_seq=self.first_seq,
            last_seq=self.high.seq if self.high else None,
            sealed_through=self.last_valid[0].seq if self.last_valid else None,
            more_problems=self.more_problems)

    # --- reporting -----------------------------------------------------------------------------

    def _problem(self, file: str, line: int, message: str, record: Any = None, seq: int | None = None,
                 audit_id: str = "") -> None:
        if len(self.problems) >= MAX_PROBLEMS:
            self.more_problems += 1
            return
        if isinstance(record, dict):
            audit_id = _audit_id(record)
        self.problems.append(Problem(file, line, message, seq, audit_id))

    def _repeat(self, at: _Position) -> None:
        self._problem(at.file, at.line, f"repeats seq {at.seq}, which came earlier (a copied or inserted record)",
                      seq=at.seq, audit_id=at.audit_id)

    # --- ordering ------------------------------------------------------------------------------

    def _order(self, files: list[Path]) -> list[Path]:
        """Files sorted by the seq of their first record; byte-identical copies are read once."""
        keyed: list[tuple[int, str, Path]] = []
        first_links: dict[tuple[int, str], Path] = {}
        for path in files:
            try:
                first = _first_link(path)
            except OSError as exc:
                self._problem(str(path), 0, f"cannot read: {exc.strerror or exc}")
                continue
            except (EOFError, zlib.error):
                first = None  # damaged compression; reported with its line when read
            if first is not None and (first.seq, first.hash) in first_links:
                twin = first_links[(first.seq, first.hash)]
                if _content_digest(path) == _content_digest(twin):
                    # e.g. a rotated file and its .gz while compression is finishing
                    self.notes.append(f"{path} holds the same records as {twin}; read once")
                    continue
            if first is not None:
                first_links[(first.seq, first.hash)] = path
            keyed.append((first.seq if first is not None else 1 << 62, str(path), path))
        return [path for _, _, path in sorted(keyed)]

    # --- reading -------------------------------------------------------------------------------

    def _read_file(self, path: Path) -> None:
        name = str(path)
        line_number = 0
        first_in_file = True
        try:
            with _open_log(path) as handle:
                for line_number, line in enumerate(handle, start=1):
                    if self._check_line(name, line_number, line, first_in_file):
                        first_in_file = False
        except OSError as exc:
            self._problem(name, line_number, f"cannot read further: {exc.strerror or exc}")
        except (EOFError, zlib.error):
            self._problem(name, line_number + 1,
                          "compressed data ends early or is damaged here (the file was truncated or edited)")

    def _check_line(self, name: str, number: int, line: bytes, first_in_file: bool) -> bool:
        """Checks one line; returns whether it was a chain record (for file-boundary messages)."""
        if not line.endswith(b"\n"):
            self._problem(name, number, "the file ends in the middle of a record (truncated)")
            return False
        try:
            record = _DECODER.decode(line.decode("utf-8"))
        except (ValueError, RecursionError):  # UnicodeDecodeError is a ValueError
            self._problem(name, number, "not valid JSON (edited or damaged)")
            self.unreadable += 1
            return False
        try:
            link = chain.chain_link(record)
        except chain.ChainError as exc:
            self._problem(name, number, f"not part of the hash chain ({exc}): inserted or edited", record)
            self.unreadable += 1
            return False
        self.records += 1
        hashes = chain.line_hashes(line)
        if hashes is None:
            self._problem(name, number, "not in the form the writer writes (the hash must end the line): "
                          "reformatted or edited", record, link.seq)
        elif hashes[1] != hashes[0]:
            self._problem(name, number, "content does not match its hash (edited)", record, link.seq)
        self._place(name, number, record, link, first_in_file)
        return True

    def _place(self, name: str, number: int, record: dict[str, Any], link: chain.ChainLink,
               first_in_file: bool) -> None:
        """Checks a record's position in the chain and moves the high-water mark."""
        is_checkpoint = chain.is_checkpoint(record)
        high = self.high
        twin, self.twin = self.twin, None
        if high is not None and link.seq <= high.seq:
            if twin is not None:
                self._repeat(twin)
            self._out_of_order(name, number, record, link, high)
            return
        if high is None:
            self.first_seq = link.seq
            if link.seq == 0 and link.prev != chain.GENESIS_PREV:
                self._problem(name, number, "record 0 does not start from the genesis value", record, 0)
        elif link.seq == high.seq + 1:
            if link.prev == high.hash:
                if twin is not None:
                    self._repeat(twin)
            elif twin is not None and link.prev == twin.hash:
                # The chain goes on from the twin: the record that got in first is the intruder.
                self._problem(high.file, high.line, f"inserted record: it claims seq {high.seq}, but the chain "
                              f"goes on from the other record with that seq ({twin.file}:{twin.line})",
                              seq=high.seq, audit_id=high.audit_id)
            else:
                self._problem(name, number, self._unlinked_message(is_checkpoint, high), record, link.seq)
                if twin is not None:
                    self._repeat(twin)
        elif link.seq > high.seq + 1:
            missing = link.seq - high.seq - 1
            if missing > self.unreadable:  # unreadable lines already reported account for the rest
                self.gaps.append(_Gap(high.seq + 1, link.seq - 1, name, number, first_in_file))
            if twin is not None:
                self._repeat(twin)
        self.unreadable = 0
        if self.after_close and not (is_checkpoint and _reason(record) in chain.RUN_STARTS):
            self._problem(name, number, "record after the log was closed (every run starts with a "
                          "resume checkpoint): appended by someone else", record, link.seq)
        self.after_close = False
        if is_checkpoint:
            self._check_checkpoint(name, number, record, link)
        self.high = _Position(link.seq, link.hash, name, number, _audit_id(record))

    def _explain_bad_checkpoint(self, record: dict[str, Any], error: chain.ChainError) -> str:
        # Name the key when it is simply a different one: the commonest cause is a wrong --key.
        try:
            claimed = chain.Checkpoint.from_statement(record["annotations"][chain.CHECKPOINT]).key_id
        except (chain.ChainError, KeyError, TypeError):
            return str(error)
        expected = chain.key_id(self.public_key)
        if claimed != expected:
            return f"signed by key {_printable(claimed)}, not by the given key {expected} (wrong key, or forged)"
        return str(error)

    def _unlinked_message(self, is_checkpoint: bool, high: _Position) -> str:
        if is_checkpoint:
            since = (f"the checkpoint at {self.last_valid[1]}:{self.last_valid[2]}"
                     if self.last_valid else "the start of these files")
            return (f"the records since {since} are not the ones this checkpoint signed: "
                    "they were edited and re-hashed, or records were inserted or removed")
        return (f"does not follow the record before it ({high.file}:{high.line}): a record was "
                "inserted, replaced or re-hashed here")

    def _out_of_order(self, name: str, number: int, record: dict[str, Any], link: chain.ChainLink,
                      high: _Position) -> None:
        self.unreadable = 0
        for index, gap in enumerate(self.gaps):
            if gap.start <= link.seq <= gap.end:
                self._problem(name, number, f"out of order: this record belongs before {gap.file}:{gap.line} "
                              "(records were moved or swapped)", record, link.seq)
                pieces = [g for g in (_Gap(gap.start, link.seq - 1, gap.file, gap.line, gap.file_start),
                                      _Gap(link.seq + 1, gap.end, gap.file, gap.line, gap.file_start))
                          if g.start <= g.end]
                self.gaps[index:index + 1] = pieces
                return
        here = _Position(link.seq, link.hash, name, number, _audit_id(record))
        if link.seq == high.seq:
            self.twin = here  # the next record shows which of the two the chain continues from
        else:
            self._repeat(here)

    def _check_checkpoint(self, name: str, number: int, record: dict[str, Any], link: chain.ChainLink) -> None:
        self.checkpoints += 1
        try:
            statement = chain.read_checkpoint(record, self.public_key)
        except chain.ChainError as exc:
            self._problem(name, number, f"checkpoint: {self._explain_bad_checkpoint(record, exc)}", record, link.seq)
            return
        if statement.seq != link.seq:
            self._problem(name, number, f"checkpoint was signed at seq {statement.seq} but sits at seq {link.seq}: "
                          "records before it were added or removed and renumbered", record, link.seq)
            return
        if statement.head != link.prev:
            self._problem(name, number, "checkpoint signed a different chain head than the record before it: "
                          "the records before it were edited and re-hashed", record, link.seq)
            return
        if statement.reason == chain.REASON_CLOSE:
            self.after_close = True
        witness = self.witnesses.get(link.seq)
        if witness is not None:
            annotations = record["annotations"]
            if (annotations[chain.CHECKPOINT], annotations[chain.SIGNATURE]) == (witness.statement, witness.signature):
                witness.matched = True
        # Authentic even after a break in the chain (reported on its own): it seals from here back
        # to that break, and its retention statement is the writer's own.
        self.last_valid = (statement, name, number)

    # --- the end -------------------------------------------------------------------------------

    def _finish(self) -> None:
        if self.twin is not None:
            self._repeat(self.twin)
        for gap in self.gaps:
            count = gap.end - gap.start + 1
            span = f"seq {gap.start}" if count == 1 else f"seq {gap.start}..{gap.end}"
            if gap.file_start:
                message = (f"{count} record(s) ({span}) missing before this file: a rotated file "
                           "(or the end of the previous one) was deleted")
            else:
                message = f"{count} record(s) ({span}) missing before this line: deleted"
            self._problem(gap.file, gap.line, message, seq=gap.end + 1)
        if self.high is None:
            if not self.problems:
                self.notes.append("no audit records found")
            self._check_witnesses()
            return
        if self.last_valid is None:
            self._problem(self.high.file, 0, "no valid checkpoint: nothing in these files is covered by a signature")
        else:
            statement, file, line = self.last_valid
            assert self.first_seq is not None
            if self.first_seq > statement.retained_from_seq:
                self._problem(file, line, f"history starts at seq {self.first_seq}, but this checkpoint says records "
                              f"from seq {statement.retained_from_seq} are kept: seq {statement.retained_from_seq}.."
                              f"{self.first_seq - 1} were deleted (or their files not given)", seq=statement.seq)
            elif self.first_seq > 0:
                self.notes.append(f"history starts at seq {self.first_seq}: older files were removed by rotation, "
                                  f"as the checkpoint at {file}:{line} records")
            if self.high.seq > statement.seq:
                self.notes.append(
                    f"{self.high.seq - statement.seq} record(s) after the last checkpoint ({file}:{line}, seq "
                    f"{statement.seq}) are not yet covered by a signature: normal for a log being written")
        self._check_witnesses()

    def _check_witnesses(self) -> None:
        last = self.high.seq if self.high else None
        for seq, witness in sorted(self.witnesses.items()):
            if witness.matched:
                continue
            if last is None or seq > last:
                ends = f"ends at seq {last}" if last is not None else "has no records"
                self._problem(witness.source, witness.line,
                              f"the log {ends}, but this witnessed checkpoint (seq {seq}, {witness.checkpoint.time}) "
                              "was written after that: the log was truncated", seq=seq)
            elif self.first_seq is not None and seq < self.first_seq:
                self.notes.append(f"witnessed checkpoint seq {seq} ({witness.source}) is older than the files given")
            else:
                self._problem(witness.source, witness.line,
                              f"this witnessed checkpoint (seq {seq}) is not in the log: the record there was "
                              "replaced or removed", seq=seq)

    def _load_witness(self, path: Path) -> None:
        name = str(path)
        try:
            with _open_log(path) as handle:
                lines = list(handle)
        except (OSError, EOFError, zlib.error) as exc:
            self._problem(name, 0, f"cannot read witness: {getattr(exc, 'strerror', None) or exc}")
            return
        for number, line in enumerate(lines, start=1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
                link = chain.chain_link(record)
                statement = chain.read_checkpoint(record, self.public_key)
            except (ValueError, chain.ChainError) as exc:
                self._problem(name, number, f"witness is not a valid checkpoint ({exc})", None)
                continue
            if statement.seq != link.seq:
                self._problem(name, number, "witness checkpoint sits at a different seq than it signed", record)
                continue
            annotations = record["annotations"]
            self.witnesses[link.seq] = _Witness(annotations[chain.CHECKPOINT], annotations[chain.SIGNATURE],
                                                name, number, statement)


def _reject_constant(name: str) -> Any:
    raise ValueError(f"{name} is not JSON the writer produces")


# One decoder for every line (json.loads would build one per call); NaN and Infinity are not
# JSON and the writer never produces them.
_DECODER = json.JSONDecoder(parse_constant=_reject_constant)


def _printable(text: str) -> str:
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode("ascii") for c in text)


def _audit_id(record: dict[str, Any]) -> str:
    value = record.get("auditID")
    return value if isinstance(value, str) else ""


def _reason(record: dict[str, Any]) -> str:
    try:
        return chain.Checkpoint.from_statement(record["annotations"][chain.CHECKPOINT]).reason
    except (chain.ChainError, KeyError, TypeError):
        return ""


class _GzipLines:
    """Lines of a gzip stream that raises on a truncated or damaged member (gzip.open may not)."""

    def __init__(self, raw: BinaryIO) -> None:
        self._raw = raw

    def __enter__(self) -> "_GzipLines":
        return self

    def __exit__(self, *exc: object) -> None:
        self._raw.close()

    def __iter__(self) -> Iterator[bytes]:
        inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
        in_member = False
        carry = b""
        while chunk := self._raw.read(1 << 20):
            while chunk:
                data = inflater.decompress(chunk)
                in_member = True
                parts = (carry + data).split(b"\n")
                carry = parts.pop()
                for part in parts:
                    yield part + b"\n"
                if inflater.eof:
                    # Concatenated members are valid gzip: go on with the next one.
                    chunk = inflater.unused_data
                    inflater = zlib.decompressobj(16 + zlib.MAX_WBITS)
                    in_member = False
                else:
                    chunk = b""
        if carry:
            yield carry
        if in_member:
            raise EOFError("compressed stream ends early")


def _open_log(path: Path) -> Any:
    raw = open(path, "rb")
    if raw.read(2) == GZIP_MAGIC:
        raw.seek(0)
        return _GzipLines(raw)
    raw.seek(0)
    return raw


def _first_link(path: Path) -> chain.ChainLink | None:
    with _open_log(path) as handle:
        for number, line in enumerate(handle):
            if number >= _ORDERING_PEEK_LINES:
                return None
            try:
                return chain.chain_link(json.loads(line))
            except (ValueError, chain.ChainError):
                continue
    return None


def _content_digest(path: Path) -> str:
    digest = hashlib.sha256()
    try:
        with _open_log(path) as handle:
            for line in handle:
                digest.update(line)
    except (OSError, EOFError, zlib.error):
        return f"unreadable:{path}"
    return digest.hexdigest()
