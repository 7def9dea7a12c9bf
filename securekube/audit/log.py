"""The audit log file backend: JSON lines, durable before `append` returns, hash-chained and signed.

`AuditLog.append(events)` returns only once the events are on disk (written, then fdatasync'd),
so a request acknowledged after it cannot lose its audit record, not even to kill -9 or a power
cut. Events nobody waits for (`submit(..., durable=False)`: reads, answered before they are
recorded) are written at once but synced with the next durable commit or checkpoint: kill -9
cannot lose them (the kernel has them), only a machine crash could take the newest. Appends
from many threads are group-committed: one writer thread takes everything queued,
writes it in one go and syncs once, so 64 concurrent requests cost about one fsync, not 64.
Events nobody waits for are written by the submitting thread itself whenever the writer is idle
and nothing is queued (see `_write_unsynced_now`): waking the writer for every read cost the
API server more CPU, through thread switches and GIL hand-offs, than writing the line.

Every record is linked into the hash chain and sealed by signed checkpoints (see chain.py): after
`checkpoint_every_events` records or `checkpoint_every_seconds`, at every rotation, at start-up
and at close. The latest checkpoint is also copied to `<log>.checkpoint` and handed to
`on_checkpoint`, so a truncated log can be told from a complete one.

Restarting continues the chain from the last record on disk. A final line cut short by a crash
was never acknowledged; it is removed and the restart checkpoint says `recover` instead of
`resume`. A log whose last record or checkpoint does not check out is not extended: the writer
refuses to start rather than sign over a history it cannot vouch for.
"""
from __future__ import annotations

import fcntl
import json
import logging
import os
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future
from dataclasses import dataclass, replace
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securekube.audit import chain, tail
from securekube.audit.errors import AuditLogError
from securekube.audit.event import API_VERSION, micro_time
from securekube.audit.rotation import (
    LOG_MODE,
    LogNames,
    Mill,
    RetentionPolicy,
    plain_and_compressed,
    plan_deletions,
    remove_stale_temporaries,
    sync_directory,
)

log = logging.getLogger("securekube.audit")



@dataclass(frozen=True)
class CheckpointPolicy:
    """How often the chain is sealed by a signed checkpoint (whichever comes first)."""

    every_events: int = 1000
    every_seconds: float = 10.0


@dataclass(frozen=True)
class LogStats:
    """Counters since the log was opened (exposed as metrics)."""

    records: int  # events and checkpoints written
    commits: int  # write+fsync rounds; far below `records` when appends are concurrent
    checkpoints: int
    rotations: int


@dataclass
class _ChainState:
    # Replaced, never changed in place, by whoever holds AuditLog._io (the constructor before
    # the writer runs).
    next_seq: int
    head: str
    retained_from: int
    size: int = 0
    unsealed: int = 0
    last_checkpoint_at: float = 0.0


class AuditLog:
    """An append-only, tamper-evident audit.k8s.io/v1 event log with rotation. Thread-safe."""

    def __init__(
        self,
        path: Path | str,
        *,
        signing_key: Ed25519PrivateKey,
        max_size_bytes: int = 100 << 20,
        max_age_days: float = 30,
        max_backups: int = 10,
        compress: bool = True,
        checkpoint_every_events: int = 1000,
        checkpoint_every_seconds: float = 10.0,
        on_checkpoint: Callable[[dict[str, Any]], None] | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        if max_size_bytes < 0 or max_backups < 0 or max_age_days < 0:
            raise ValueError("rotation limits must be >= 0 (0 = no limit)")
        if checkpoint_every_events < 1 or checkpoint_every_seconds <= 0:
            raise ValueError("checkpoints need every_events >= 1 and every_seconds > 0")
        self._names = LogNames(Path(path))
        self._retention = RetentionPolicy(max_size_bytes, max_backups, max_age_days, compress)
        self._checkpoints = CheckpointPolicy(checkpoint_every_events, checkpoint_every_seconds)
        self._key = signing_key
        self._key_id = chain.key_id(signing_key.public_key())
        self._on_checkpoint = on_checkpoint
        self._clock = clock or (lambda: datetime.now(timezone.utc))
        self._cond = threading.Condition()
        # Held while the chain is extended and the file written (by the writer through its fsync,
        # or by a submitter writing unsynced events itself); taken before _cond, never after.
        self._io = threading.Lock()
        self._pending: list[tuple[list[bytes], Future[None], bool]] = []
        self._closing = False
        self._broken: str | None = None
        self._records = self._commits = self._checkpoint_count = self._rotations = 0

        directory = self._names.active.parent
        try:
            directory.mkdir(mode=0o700, parents=True, exist_ok=True)
        except OSError as exc:
            raise AuditLogError(f"cannot create audit log directory {directory}: {exc.strerror}") from None
        self._lock_fd = _take_lock(self._names.lock)
        try:
            remove_stale_temporaries(directory, self._names.active.name)
            self._fd, self._state = self._open_chain()
        except OSError as exc:
            os.close(self._lock_fd)
            raise AuditLogError(f"cannot open audit log {self._names.active}: {exc.strerror or exc}") from None
        except BaseException:
            os.close(self._lock_fd)
            raise
        self._mill = Mill()
        if compress:
            for backup in self._names.backups():
                if not backup.path.name.endswith(".gz"):
                    self._mill.compress(backup.path)  # left plain by a crash during compression
        self._writer = threading.Thread(target=self._run, name="audit-log-writer", daemon=True)
        self._writer.start()

    @property
    def path(self) -> Path:
        """The active log file."""
        return self._names.active

    def stats(self) -> LogStats:
        """Counters since the log was opened: records, write+fsync rounds, checkpoints, rotations."""
        with self._cond:
            return LogStats(self._records, self._commits, self._checkpoint_count, self._rotations)

    def append(self, events: list[dict[str, Any]]) -> None:
        """Writes events and returns once they are durable; raises AuditLogError if they are not.

        The caller's dicts are not changed; what is written is their JSON form plus the chain
        annotations. Events must be audit.k8s.io/v1 Events without audit.securekube.io/ chain keys.
        """
        self.submit(events).result()

    def submit(self, events: list[dict[str, Any]], durable: bool = True) -> Future[None]:
        """Queues events for the writer; the future completes once they are durable (or fails).

        For callers that wait without a thread of their own (the API server's event loop wraps
        the future), which saves a thread hand-off on every audited write. With `durable=False`
        the future completes once the events are written (in the kernel's hands), and the fsync
        is left to the next durable commit: for events no acknowledgement depends on.
        """
        done: Future[None] = Future()
        # Running from the start, so it cannot be cancelled: a caller that stops waiting (a client
        # that went away) must not stop the writer from recording, nor break it with a cancelled future.
        done.set_running_or_notify_cancel()
        if not events:
            done.set_result(None)
            return done
        prepared = [_prepare(event, index) for index, event in enumerate(events)]
        if not durable and self._write_unsynced_now(prepared, done):
            return done
        with self._cond:
            if self._closing:
                raise AuditLogError(f"audit log {self._names.active} is closed")
            if self._broken is not None:
                raise AuditLogError(self._broken)
            self._pending.append((prepared, done, durable))
            self._cond.notify()
        return done

    def _write_unsynced_now(self, prepared: list[bytes], done: Future[None]) -> bool:
        """Writes events nobody waits for in the calling thread and completes `done`; False to queue them instead.

        Only when that is plain: the writer is not busy (it holds `_io` from taking a batch until
        that batch is on disk, and a caller such as the API server's event loop must never wait for
        the writer or a flush; the write itself only hands the line to the page cache), nothing is
        queued ahead of these events (file order is submission order), the chain
        already has unsealed records (so the writer's checkpoint timer runs), and no checkpoint or
        rotation is due. A failed write fails `done`, as the writer would; a closed or broken log
        raises AuditLogError, as `submit` does.
        """
        if not self._io.acquire(blocking=False):
            return False
        try:
            with self._cond:
                if self._closing:
                    raise AuditLogError(f"audit log {self._names.active} is closed")
                if self._broken is not None:
                    raise AuditLogError(self._broken)
                if self._pending:
                    return False
            if self._state.unsealed == 0 or self._checkpoint_due(self._state, len(prepared)):
                return False
            data, state, checkpoint = self._link(prepared, self._state)
            if checkpoint is not None or self._needs_rotation(len(data)):  # (one fell due meanwhile)
                return False
            try:
                self._write_durably(data, sync=False)
            except OSError as exc:
                message = f"cannot write audit log {self._names.active}: {exc.strerror or type(exc).__name__}"
                log.error("%s", message)
                done.set_exception(AuditLogError(message))
                return True
            self._state = state
            with self._cond:
                self._records += len(prepared)
            done.set_result(None)
            return True
        finally:
            self._io.release()

    def close(self) -> None:
        """Seals the log with a final checkpoint, finishes compression and releases the file. Idempotent."""
        with self._cond:
            already = self._closing
            self._closing = True
            self._cond.notify()
        self._writer.join()
        if not already:
            self._mill.close()
            os.close(self._lock_fd)

    def __enter__(self) -> "AuditLog":
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # --- writer thread -------------------------------------------------------------------------

    def _run(self) -> None:
        try:
            while self._serve_once():
                pass
        except Exception as exc:  # a bug or an unusable disk: nothing may be acknowledged any more
            with self._io:  # no submitter may write to the descriptor being closed
                log.error("audit log writer stopped: %s", type(exc).__name__)
                self._mark_broken(f"audit log {self._names.active} failed ({type(exc).__name__}); "
                                  "audit writes are refused")
                self._close_fd()

    def _serve_once(self) -> bool:
        """Waits for work, then commits what is queued (and a due checkpoint); False once closed."""
        with self._cond:
            while not self._pending and not self._closing:
                wait = self._seconds_until_checkpoint()
                if wait is not None and wait <= 0:
                    break
                self._cond.wait(wait)
        # The batch is taken only while holding _io: from then until it is written nothing else may
        # write, or a submitter writing directly could overtake its own queued events.
        with self._io:
            with self._cond:
                batch, self._pending = self._pending, []
                closing = self._closing
            if batch or self._seconds_until_checkpoint() == 0:
                self._commit(batch)
            if closing:
                with self._cond:
                    if self._pending:
                        return True  # queued before close(): still owed a durable write
                self._finish()
                return False
        return True

    def _seconds_until_checkpoint(self) -> float | None:
        if self._state.unsealed == 0:
            return None
        due = self._state.last_checkpoint_at + self._checkpoints.every_seconds
        return max(0.0, due - time.monotonic())

    def _commit(self, batch: list[tuple[list[bytes], Future[None], bool]]) -> None:
        records = [event for events, _, _ in batch for event in events]
        if self._broken is not None:
            for _, done, _ in batch:
                done.set_exception(AuditLogError(self._broken))
            return
        try:
            data, state, checkpoint = self._link(records, self._state)
            if self._needs_rotation(len(data)):
                self._rotate()
                data, state, checkpoint = self._link(records, self._state)
            # A checkpoint is published beside the log, so what it seals must be on disk first.
            self._write_durably(data, sync=checkpoint is not None or any(durable for _, _, durable in batch))
        except OSError as exc:
            message = f"cannot write audit log {self._names.active}: {exc.strerror or type(exc).__name__}"
            log.error("%s", message)
            for _, done, _ in batch:
                done.set_exception(AuditLogError(message))
            return
        except BaseException:
            for _, done, _ in batch:
                done.set_exception(AuditLogError(f"audit log {self._names.active} failed; events not written"))
            raise
        self._state = state
        with self._cond:
            self._records += len(records) + (1 if checkpoint else 0)
            self._commits += 1
        if checkpoint is not None:
            self._publish_checkpoint(checkpoint)
        for _, done, _ in batch:
            done.set_result(None)

    def _link(self, records: list[bytes], before: _ChainState) -> tuple[bytes, _ChainState, bytes | None]:
        """The bytes for encoded `records` (plus a checkpoint if one is due) and the state after them."""
        state = replace(before)
        lines = []
        for record in records:
            line, state.head = chain.link_line(record, state.next_seq, state.head)
            lines.append(line)
            state.next_seq += 1
            state.unsealed += 1
        checkpoint = None
        if self._checkpoint_due(state, 0):
            checkpoint = self._checkpoint_line(chain.REASON_PERIODIC, state)
            lines.append(checkpoint)
        data = b"".join(lines)
        state.size += len(data)
        return data, state, checkpoint

    def _checkpoint_due(self, state: _ChainState, incoming: int) -> bool:
        """Whether a checkpoint seals the chain once `incoming` more records follow `state`."""
        unsealed = state.unsealed + incoming
        overdue = time.monotonic() - state.last_checkpoint_at >= self._checkpoints.every_seconds
        return unsealed >= self._checkpoints.every_events or (unsealed > 0 and overdue)

    def _checkpoint_line(self, reason: str, state: _ChainState) -> bytes:
        """Appends a signed checkpoint to `state` (advancing it); returns its line."""
        statement = chain.Checkpoint(seq=state.next_seq, head=state.head, time=micro_time(self._clock()),
                                     reason=reason, retained_from_seq=state.retained_from, key_id=self._key_id)
        record = chain.encode_record(chain.checkpoint_record(statement, self._key))
        line, state.head = chain.link_line(record, state.next_seq, state.head)
        state.next_seq += 1
        state.unsealed = 0
        state.last_checkpoint_at = time.monotonic()
        return line

    def _write_durably(self, data: bytes, sync: bool = True) -> None:
        start = self._state.size
        try:
            _write_all(self._fd, data)
            if sync:  # also makes every earlier unsynced record durable: they precede it in the file
                os.fdatasync(self._fd)
        except OSError:
            # Take back a partial write so the file still ends on a whole record; if even that
            # fails the file's end is unknown and nothing more may be written to it.
            try:
                os.ftruncate(self._fd, start)
                os.fsync(self._fd)
            except OSError:
                self._mark_broken(f"audit log {self._names.active} is in an unknown state after a failed write; "
                                  "audit writes are refused until the server restarts")
            raise

    def _needs_rotation(self, incoming: int) -> bool:
        limit = self._retention.max_size_bytes
        # A file holding only its opening checkpoint is never rotated: an event larger than the
        # limit still has to go somewhere.
        return bool(limit) and self._state.size + incoming > limit and self._state.size > self._opening_size

    def _rotate(self) -> None:
        now = self._clock()
        backup = self._names.backup_path(now)
        while any(p.exists() for p in plain_and_compressed(backup)):
            now += timedelta(milliseconds=1)
            backup = self._names.backup_path(now)
        # Records written without a sync (reads) are sealed by the rotate checkpoint in the new file,
        # so the old file must be on disk before that checkpoint is.
        os.fdatasync(self._fd)
        self._close_fd()
        try:
            os.rename(self._names.active, backup)
            sync_directory(backup.parent)
        except OSError as exc:
            log.warning("audit log: cannot rotate %s: %s; continuing in the same file",
                        self._names.active.name, exc.strerror)
            try:
                self._fd = _open_for_append(self._names.active)
            except OSError:
                self._mark_broken(f"audit log {self._names.active} cannot be reopened; audit writes are refused")
                raise
            # Try again only after another file's worth, not on every write.
            self._opening_size = self._state.size + self._retention.max_size_bytes
            return
        backups = self._names.backups()
        doomed = plan_deletions(backups, self._retention, now)
        survivors = [b for b in backups if b not in doomed]
        state = replace(self._state, size=0)
        first_kept = tail.first_seq(survivors[0]) if survivors else state.next_seq
        if first_kept is not None:
            # Retention only ever moves forward: a file put back later does not re-open a gap.
            state.retained_from = max(state.retained_from, first_kept)
        line = self._checkpoint_line(chain.REASON_ROTATE, state)
        try:
            self._fd = _open_for_append(self._names.active)
            _write_all(self._fd, line)
            os.fdatasync(self._fd)
            sync_directory(self._names.active.parent)
        except OSError:
            self._mark_broken(f"audit log {self._names.active} could not be started after rotation; "
                              "audit writes are refused until the server restarts")
            raise
        state.size = self._opening_size = len(line)
        self._state = state
        with self._cond:
            self._rotations += 1
            self._records += 1
        self._publish_checkpoint(line)
        if self._retention.compress:
            self._mill.compress(backup)
        for old in doomed:
            self._mill.delete(old.path)

    def _close_fd(self) -> None:
        if self._fd >= 0:
            fd, self._fd = self._fd, -1
            os.close(fd)

    def _publish_checkpoint(self, line: bytes) -> None:
        with self._cond:
            self._checkpoint_count += 1
        try:
            _replace_file(self._names.witness, line)
        except OSError as exc:
            # The log itself is durable; only the extra truncation evidence is behind.
            log.warning("audit log: cannot update %s: %s", self._names.witness.name, exc.strerror)
        if self._on_checkpoint is not None:
            try:
                self._on_checkpoint(json.loads(line))
            except Exception as exc:  # a sink's failure must not stop the log
                log.warning("audit log: checkpoint callback failed: %s", type(exc).__name__)

    def _finish(self) -> None:
        try:
            if self._broken is None and self._fd >= 0:
                state = replace(self._state)
                line = self._checkpoint_line(chain.REASON_CLOSE, state)
                self._write_durably(line)
                self._state = state
                with self._cond:
                    self._records += 1
                self._publish_checkpoint(line)
        except OSError as exc:
            log.error("audit log: cannot write the closing checkpoint: %s", exc.strerror)
        finally:
            self._close_fd()

    def _mark_broken(self, message: str) -> None:
        with self._cond:
            self._broken = message
            pending, self._pending = self._pending, []
        for _, done, _ in pending:
            done.set_exception(AuditLogError(message))

    # --- start-up --------------------------------------------------------------------------------

    def _open_chain(self) -> tuple[int, _ChainState]:
        """Opens the active file and writes the checkpoint that starts this run."""
        active = self._names.active
        last = last_checkpoint = None
        trimmed = 0
        if active.exists():
            last, last_checkpoint, trimmed = tail.read_active_tail(active)
        if last is None:
            backups = self._names.backups()
            if backups:
                last, last_checkpoint = tail.read_backup_tail(backups[-1])
        if last is None:
            state = _ChainState(next_seq=0, head=chain.GENESIS_PREV, retained_from=0)
            reason = chain.REASON_START
        else:
            state, reason = self._resume_state(last, last_checkpoint, trimmed)
        created = not active.exists()
        fd = _open_for_append(active)
        try:
            state.size = os.fstat(fd).st_size
            line = self._checkpoint_line(reason, state)
            _write_all(fd, line)
            os.fdatasync(fd)
            if created:
                sync_directory(active.parent)
        except OSError as exc:
            os.close(fd)
            raise AuditLogError(f"cannot write audit log {active}: {exc.strerror}") from None
        state.size += len(line)
        self._opening_size = len(line) if state.size == len(line) else 0
        self._records += 1
        self._publish_checkpoint(line)
        return fd, state

    def _resume_state(self, last_line: bytes, checkpoint_line: bytes | None,
                      trimmed: int) -> tuple[_ChainState, str]:
        active = self._names.active
        advice = "run `securekube audit verify` on it, then move it aside to start a new chain"
        last = tail.parse_last(last_line, active)
        try:
            link = chain.chain_link(last)
        except chain.ChainError as exc:
            raise AuditLogError(f"the last record of {active} is not a securekube audit record ({exc}); {advice}") from None
        hashes = chain.line_hashes(last_line)
        if hashes is None or hashes[0] != hashes[1] or hashes[0] != link.hash:
            raise AuditLogError(f"the last record of {active} does not match its hash; {advice}")
        if checkpoint_line is None:
            raise AuditLogError(f"no checkpoint found in {active}; {advice}")
        try:
            statement = chain.read_checkpoint(tail.parse_last(checkpoint_line, active), self._key.public_key())
        except chain.ChainError as exc:
            raise AuditLogError(f"the last checkpoint in {active} does not verify with this key ({exc}); {advice}") from None
        closed_cleanly = chain.is_checkpoint(last) and trimmed == 0 and \
            chain.Checkpoint.from_statement(last["annotations"][chain.CHECKPOINT]).reason == chain.REASON_CLOSE
        if trimmed:
            log.warning("audit log: removed %d bytes of an unfinished last line from %s (never acknowledged)",
                        trimmed, active.name)
        state = _ChainState(next_seq=link.seq + 1, head=link.hash, retained_from=statement.retained_from_seq)
        return state, chain.REASON_RESUME if closed_cleanly else chain.REASON_RECOVER


def _prepare(event: Any, index: int) -> bytes:
    """The event encoded for linking (see chain.encode_record), after shape checks."""
    if not isinstance(event, dict) or event.get("kind") != "Event" or event.get("apiVersion") != API_VERSION:
        raise AuditLogError(f"event {index} is not an audit.k8s.io/v1 Event")
    annotations = event.get("annotations")
    if annotations is not None:
        if not isinstance(annotations, dict) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in annotations.items()):
            raise AuditLogError(f"event {index}: annotations must map strings to strings")
        if any(key in annotations for key in chain.CHAIN_ANNOTATIONS):
            raise AuditLogError(f"event {index} already carries audit.securekube.io chain annotations")
    try:
        return chain.encode_record(event)
    except (TypeError, ValueError, RecursionError) as exc:
        raise AuditLogError(f"event {index} cannot be written as JSON ({type(exc).__name__})") from None


def _take_lock(path: Path) -> int:
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NOFOLLOW, LOG_MODE)
    except OSError as exc:
        raise AuditLogError(f"cannot open {path}: {exc.strerror}") from None
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError:
        os.close(fd)
        raise AuditLogError(f"another process is writing this audit log ({path} is locked)") from None
    return fd


def _open_for_append(path: Path) -> int:
    fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT | os.O_NOFOLLOW, LOG_MODE)
    os.fchmod(fd, LOG_MODE)  # an existing file may have been created looser
    return fd


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _replace_file(path: Path, data: bytes) -> None:
    temp = path.with_name(f".{path.name}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_NOFOLLOW, LOG_MODE)
    try:
        _write_all(fd, data)
        os.fdatasync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    sync_directory(path.parent)
