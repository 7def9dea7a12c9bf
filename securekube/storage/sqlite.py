"""The embedded storage backend: an append-only SQLite log with etcd semantics.

The design follows kine: every successful write appends one row to the `log` table, and the
row's AUTOINCREMENT id *is* the store revision, so revisions are global, strictly increasing and
never reused (SQLite remembers the highest id ever handed out, also after rows are deleted).
A key's current state is its latest row, unless that row is a delete. Each row also carries
the value it replaced, so a watch event (with its `prev_kv`) is rebuilt from its own row alone.

SQLite allows one writer at a time per file, across processes, so rows become visible in id
order and a watcher never sees a gap it would later have to fill. The file runs in WAL mode
with `synchronous=FULL`: a write is on disk before the call returns, and reads never block it.
"""
from __future__ import annotations

import os
import collections
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securekube.storage.interfaces import (
    CompactedError,
    ConflictError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RangeResult,
    StorageError,
    WatchEvent,
)

_SCHEMA_VERSION = 1

_SCHEMA = (
    """
    CREATE TABLE IF NOT EXISTS log (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        name TEXT NOT NULL,
        created INTEGER NOT NULL CHECK (created IN (0, 1)),
        deleted INTEGER NOT NULL CHECK (deleted IN (0, 1)),
        create_revision INTEGER NOT NULL,
        prev_revision INTEGER NOT NULL,
        value BLOB NOT NULL,
        old_value BLOB
    )
    """,
    "CREATE INDEX IF NOT EXISTS log_name_id ON log (name, id)",
    "CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)",
)

_LOG_COLUMNS = "id, name, created, deleted, create_revision, prev_revision, value, old_value"

# A function giving (events after a position, the position to continue from).
_EventReader = Callable[[int], tuple[list[WatchEvent], int]]


@dataclass(frozen=True)
class SqliteConfig:
    """Tuning of the embedded SQLite backend."""

    # How long a write waits for another process (e.g. a CLI tool) to release the file lock.
    busy_timeout_s: float = 5.0
    # How often an idle watcher re-reads the log to see writes made by other processes;
    # writes from this process wake watchers at once.
    watch_poll_interval_s: float = 0.5
    # Most events one Watcher.next() returns, so a far-behind watcher cannot load the whole log.
    watch_batch_limit: int = 1000
    # Read connections kept open for reuse; more are opened (and then closed) under load.
    max_idle_readers: int = 8

    def __post_init__(self) -> None:
        if self.busy_timeout_s < 0:
            raise ValueError("busy_timeout_s must not be negative")
        if self.watch_poll_interval_s <= 0:
            raise ValueError("watch_poll_interval_s must be positive")
        if self.watch_batch_limit < 1:
            raise ValueError("watch_batch_limit must be at least 1")
        if self.max_idle_readers < 0:
            raise ValueError("max_idle_readers must not be negative")


class SqliteStorage:
    """A `Storage` kept in one SQLite file; thread-safe, and shareable with other processes.

    Writes go through one connection behind a lock; reads borrow a connection from a small
    pool and run in a read transaction, so every read sees one consistent revision.
    """

    def __init__(
        self, path: str | os.PathLike[str], *, config: SqliteConfig = SqliteConfig()
    ) -> None:
        self._path = Path(path).absolute()
        self._config = config
        self._write_lock = threading.Lock()
        self._pool_lock = threading.Lock()  # guards _idle_readers and _closed
        self._idle_readers: list[sqlite3.Connection] = []
        self._closed = False
        self._changes = _ChangeSignal()
        _create_private_file(self._path)
        with _sqlite_errors_as_storage_errors():
            self._writer = self._connect(read_only=False)
            try:
                self._prepare_file()
            except BaseException:
                self._writer.close()
                raise

    # -- reads -------------------------------------------------------------------------------

    def current_revision(self) -> int:
        with self._reading() as conn:
            return _current_revision(conn)

    def get(self, key: str, revision: int = 0) -> KeyValue | None:
        _check_key(key)
        _check_revision(revision)
        with self._reading() as conn:
            at = _readable_revision(conn, revision)
            row = conn.execute(
                "SELECT name, value, create_revision, id, deleted FROM log"
                " WHERE name = ? AND id <= ? ORDER BY id DESC LIMIT 1",
                (key, at),
            ).fetchone()
        if row is None or row[4]:
            return None
        return KeyValue(key=row[0], value=row[1], create_revision=row[2], mod_revision=row[3])

    def range(
        self, prefix: str, *, limit: int = 0, start_after: str = "", revision: int = 0
    ) -> RangeResult:
        if limit < 0:
            raise ValueError("limit must not be negative")
        _check_revision(revision)
        name_filter, name_params = _prefix_filter(prefix, column="l.name")
        # Each key's newest row as of `at`, unless that row is a delete. Walking the (name, id)
        # index in key order lets LIMIT stop the scan, so a page costs its size, not the list's.
        sql = (
            "SELECT l.name, l.value, l.create_revision, l.id FROM log AS l"
            f" WHERE {name_filter} AND l.name > ?"
            " AND l.id = (SELECT max(n.id) FROM log AS n WHERE n.name = l.name AND n.id <= ?)"
            " AND l.deleted = 0 ORDER BY l.name"
        )
        with self._reading() as conn:
            at = _readable_revision(conn, revision)
            params: tuple[object, ...] = (*name_params, start_after, at)
            if limit:
                # One row more than asked tells whether the page was cut short.
                sql += " LIMIT ?"
                params += (limit + 1,)
            rows = conn.execute(sql, params).fetchall()
        more = bool(limit) and len(rows) > limit
        kvs = [
            KeyValue(key=name, value=value, create_revision=create_rev, mod_revision=mod_rev)
            for name, value, create_rev, mod_rev in (rows[:limit] if limit else rows)
        ]
        return RangeResult(kvs=kvs, revision=at, more=more)

    # -- writes ------------------------------------------------------------------------------

    def create(self, key: str, value: bytes) -> KeyValue:
        _check_key(key)
        _check_value(value)
        with self._writing(key) as conn:
            latest = _latest_row(conn, key)
            if latest is not None and not latest.deleted:
                raise KeyExistsError(f"key {key!r} already exists")
            revision = _append(
                conn,
                key,
                created=True,
                deleted=False,
                create_revision=0,  # set to the row's own id below
                prev_revision=latest.id if latest is not None else 0,
                value=value,
                old_value=None,
            )
            conn.execute("UPDATE log SET create_revision = id WHERE id = ?", (revision,))
        return KeyValue(key=key, value=value, create_revision=revision, mod_revision=revision)

    def update(self, key: str, value: bytes, expected_mod_revision: int) -> KeyValue:
        _check_key(key)
        _check_value(value)
        with self._writing(key) as conn:
            latest = _existing_row(conn, key, expected_mod_revision)
            revision = _append(
                conn,
                key,
                created=False,
                deleted=False,
                create_revision=latest.create_revision,
                prev_revision=latest.id,
                value=value,
                old_value=latest.value,
            )
        return KeyValue(
            key=key, value=value, create_revision=latest.create_revision, mod_revision=revision
        )

    def delete(self, key: str, expected_mod_revision: int = 0) -> KeyValue:
        _check_key(key)
        with self._writing(key) as conn:
            latest = _existing_row(conn, key, expected_mod_revision or None)
            revision = _append(
                conn,
                key,
                created=False,
                deleted=True,
                create_revision=latest.create_revision,
                prev_revision=latest.id,
                value=latest.value,
                old_value=latest.value,
            )
        return KeyValue(
            key=key,
            value=latest.value,
            create_revision=latest.create_revision,
            mod_revision=revision,
        )

    def compact(self, revision: int) -> None:
        """Forgets history older than `revision`; a no-op when already compacted that far.

        A row goes when its id is below `revision` and either a newer row of the same key at or
        before `revision` supersedes it, or it is a delete (whose predecessor is gone with it).
        What stays is exactly what reads at `revision` or later, and watches from it, need.
        """
        _check_revision(revision)
        with self._writing() as conn:
            current = _current_revision(conn)
            if revision > current:
                raise StorageError(
                    f"cannot compact to revision {revision}: current revision is {current}"
                )
            if revision <= _compacted_revision(conn):
                return
            conn.execute(
                "DELETE FROM log WHERE id < ? AND (deleted = 1 OR EXISTS ("
                " SELECT 1 FROM log AS newer"
                " WHERE newer.name = log.name AND newer.id > log.id AND newer.id <= ?))",
                (revision, revision),
            )
            conn.execute(
                "INSERT INTO meta (key, value) VALUES ('compact_revision', ?)"
                " ON CONFLICT (key) DO UPDATE SET value = excluded.value",
                (revision,),
            )

    # -- watch -------------------------------------------------------------------------------

    def watch(self, prefix: str, from_revision: int) -> SqliteWatcher:
        _check_revision(from_revision)
        with self._reading() as conn:
            _check_not_compacted(conn, from_revision)
        return SqliteWatcher(
            read_events=lambda position: self._events_after(prefix, position),
            changes=self._changes,
            prefix=prefix,
            from_revision=from_revision,
            poll_interval_s=self._config.watch_poll_interval_s,
        )

    def _events_after(self, prefix: str, position: int) -> tuple[list[WatchEvent], int]:
        """Events under `prefix` with revision > `position`, and the position to continue from."""
        # "+name" keeps SQLite off the (name, id) index: walking the log by id from the
        # watcher's position reads only the few newest rows when the watcher is caught up.
        name_filter, name_params = _prefix_filter(prefix, column="+name")
        batch_limit = self._config.watch_batch_limit
        with self._reading() as conn:
            _check_not_compacted(conn, position)
            rows = conn.execute(
                f"SELECT {_LOG_COLUMNS} FROM log WHERE id > ? AND {name_filter}"
                " ORDER BY id LIMIT ?",
                (position, *name_params, batch_limit),
            ).fetchall()
            events = [_event_from_row(row) for row in rows]
            if len(rows) == batch_limit:
                return events, rows[-1][0]
            # Nothing more in this snapshot: the watcher has seen everything up to its head,
            # which keeps an idle watcher from looking stale after a later compaction.
            return events, max(position, _current_revision(conn))

    # -- lifecycle ---------------------------------------------------------------------------

    def close(self) -> None:
        """Closes the store; blocked watchers wake and raise, later calls raise. Idempotent."""
        with self._pool_lock:
            if self._closed:
                return
            self._closed = True
            idle, self._idle_readers = self._idle_readers, []
        self._changes.fire()
        with self._write_lock:
            self._writer.close()
        for conn in idle:
            conn.close()

    # -- connections and transactions --------------------------------------------------------

    def _connect(self, *, read_only: bool) -> sqlite3.Connection:
        # mode=rw: SQLite must never create the file itself (it would not be 0600).
        conn = sqlite3.connect(
            self._path.as_uri() + "?mode=rw",
            uri=True,
            timeout=self._config.busy_timeout_s,
            isolation_level=None,  # we issue BEGIN/COMMIT ourselves
            check_same_thread=False,  # the pool hands a connection to one thread at a time
        )
        try:
            conn.execute("PRAGMA synchronous = FULL")
            if read_only:
                conn.execute("PRAGMA query_only = ON")
            else:
                # Zero the bytes of deleted rows, so a deleted (encrypted) Secret does not
                # linger in free pages of the file once compaction has removed its rows.
                conn.execute("PRAGMA secure_delete = ON")
        except BaseException:
            conn.close()
            raise
        return conn

    def _prepare_file(self) -> None:
        mode = self._writer.execute("PRAGMA journal_mode = WAL").fetchone()[0]
        if mode != "wal":
            raise StorageError(f"{self._path}: cannot switch SQLite to WAL mode (got {mode!r})")
        with self._transaction(self._writer, "BEGIN IMMEDIATE"):
            for statement in _SCHEMA:
                self._writer.execute(statement)
            self._writer.execute(
                "INSERT OR IGNORE INTO meta (key, value) VALUES ('schema_version', ?)",
                (_SCHEMA_VERSION,),
            )
            found = self._writer.execute(
                "SELECT value FROM meta WHERE key = 'schema_version'"
            ).fetchone()[0]
        if found != _SCHEMA_VERSION:
            raise StorageError(
                f"{self._path}: schema version {found} is not the supported"
                f" version {_SCHEMA_VERSION}"
            )

    @staticmethod
    @contextmanager
    def _transaction(conn: sqlite3.Connection, begin: str) -> Iterator[None]:
        conn.execute(begin)
        try:
            yield
            conn.execute("COMMIT")
        except BaseException:
            # Some errors (disk full, I/O) already rolled the transaction back. Should the
            # rollback itself fail, the next BEGIN on this connection fails: nothing half-applies.
            if conn.in_transaction:
                with suppress(sqlite3.Error):
                    conn.execute("ROLLBACK")
            raise

    @contextmanager
    def _writing(self, key: str | None = None) -> Iterator[sqlite3.Connection]:
        """A write transaction; `key` (the key written, None for anything else) tells watchers if it concerns them."""
        with _sqlite_errors_as_storage_errors(), self._write_lock:
            if self._closed:
                raise StorageError("storage is closed")
            # IMMEDIATE takes the file's write lock up front, so the read-check-append of a
            # compare-and-swap cannot interleave with a writer in another process.
            with self._transaction(self._writer, "BEGIN IMMEDIATE"):
                yield self._writer
        self._changes.fire(key)

    @contextmanager
    def _reading(self) -> Iterator[sqlite3.Connection]:
        with _sqlite_errors_as_storage_errors():
            conn = self._borrow_reader()
        try:
            # One read transaction = one WAL snapshot, so all statements see the same revision.
            with _sqlite_errors_as_storage_errors(), self._transaction(conn, "BEGIN"):
                yield conn
        finally:
            self._return_reader(conn)

    def _borrow_reader(self) -> sqlite3.Connection:
        with self._pool_lock:
            if self._closed:
                raise StorageError("storage is closed")
            if self._idle_readers:
                return self._idle_readers.pop()
        return self._connect(read_only=True)

    def _return_reader(self, conn: sqlite3.Connection) -> None:
        # A connection still inside a transaction (its rollback failed) would fail every
        # later BEGIN; it is dropped rather than pooled.
        reusable = not conn.in_transaction
        with self._pool_lock:
            has_room = len(self._idle_readers) < self._config.max_idle_readers
            if reusable and has_room and not self._closed:
                self._idle_readers.append(conn)
                return
        conn.close()


class SqliteWatcher:
    """An open watch on a SqliteStorage: events under one prefix, in revision order, each once."""

    def __init__(
        self,
        *,
        read_events: _EventReader,
        changes: _ChangeSignal,
        prefix: str,
        from_revision: int,
        poll_interval_s: float,
    ) -> None:
        self._read_events = read_events
        self._changes = changes
        self._prefix = prefix
        self._position = from_revision  # every event at or below it has been delivered
        self._poll_interval_s = poll_interval_s
        self._next_lock = threading.Lock()  # two threads calling next() must not both deliver
        self._closed = False

    def next(self, timeout: float) -> list[WatchEvent]:
        """Blocks up to `timeout` seconds for events; [] on timeout or once closed.

        Raises CompactedError when history this watcher has not read yet was compacted away,
        and StorageError when the store was closed.
        """
        deadline = time.monotonic() + max(timeout, 0.0)
        with self._next_lock:
            must_read = True
            while True:
                # Read the change counter before looking, so a change that lands while we
                # look makes the wait below return at once instead of being missed.
                seen = self._changes.count()
                if self._closed:
                    return []
                if must_read:
                    events, self._position = self._read_events(self._position)
                    if events:
                        return events
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return []
                # Writes from other processes fire no signal here; the poll interval bounds
                # how late they are seen. A signal for keys outside our prefix needs no query.
                signalled = self._changes.wait_past(seen, min(remaining, self._poll_interval_s))
                must_read = not signalled or self._changes.touched_since(seen, self._prefix)

    def close(self) -> None:
        """Stops the watch; a next() blocked in another thread returns [] promptly."""
        self._closed = True
        self._changes.fire()


class _ChangeSignal:
    """Wakes this process's watchers when a write commits or a watcher or the store closes."""

    # Recent written keys, so a watcher can skip its query when nothing under its prefix changed.
    RECENT_KEYS = 1024

    def __init__(self) -> None:
        self._condition = threading.Condition()
        self._count = 0
        self._recent: collections.deque[tuple[int, str | None]] = collections.deque(maxlen=self.RECENT_KEYS)

    def count(self) -> int:
        with self._condition:
            return self._count

    def fire(self, key: str | None = None) -> None:
        """Signals a change; `key` None means "anything may have changed" (close, compaction)."""
        with self._condition:
            self._count += 1
            self._recent.append((self._count, key))
            self._condition.notify_all()

    def wait_past(self, seen: int, timeout: float) -> bool:
        """Waits up to `timeout` seconds unless the count has already moved past `seen`; True if it has."""
        with self._condition:
            if self._count == seen:
                self._condition.wait(timeout)
            return self._count != seen

    def touched_since(self, seen: int, prefix: str) -> bool:
        """Whether a change after `seen` may concern `prefix` (True when the record is too short to tell)."""
        with self._condition:
            if self._count - seen > len(self._recent):
                return True
            return any(key is None or key.startswith(prefix) for count, key in self._recent if count > seen)


@contextmanager
def _sqlite_errors_as_storage_errors() -> Iterator[None]:
    """Reports SQLite's own exceptions (locked, I/O, not a database) as StorageError.

    Callers then handle one exception family. SQLite's messages never contain bound values.
    """
    try:
        yield
    except sqlite3.Error as error:
        raise StorageError(f"SQLite: {error}") from error


@dataclass(frozen=True)
class _Row:
    id: int
    deleted: bool
    create_revision: int
    value: bytes


def _create_private_file(path: Path) -> None:
    """Creates the database file with mode 0600 before SQLite opens it; refuses wider modes.

    SQLite gives its -wal and -shm files the database file's mode, so this covers them too;
    leftovers from an earlier run are checked as well.
    """
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    os.close(fd)
    for candidate in (path, path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        try:
            mode = os.stat(candidate).st_mode & 0o777
        except FileNotFoundError:
            continue
        if mode & 0o077:
            raise StorageError(
                f"refusing to open {candidate}: mode {mode:o} lets other users access it"
                " (expected 600; fix with chmod 600)"
            )


def _check_key(key: str) -> None:
    # Empty keys and NUL bytes have no use in the registry layout and would sort or compare
    # oddly; refusing them keeps range bounds exact.
    if not isinstance(key, str) or not key or "\x00" in key:
        raise ValueError("a storage key must be a non-empty string without NUL characters")


def _check_value(value: bytes) -> None:
    if not isinstance(value, bytes):
        raise TypeError(f"a storage value must be bytes, not {type(value).__name__}")


def _check_revision(revision: int) -> None:
    if not isinstance(revision, int) or revision < 0:
        raise ValueError("a revision must be a non-negative integer")


def _prefix_filter(prefix: str, *, column: str = "name") -> tuple[str, tuple[str, ...]]:
    """A WHERE clause on `column` (and its parameters) matching keys that start with `prefix`.

    A range instead of LIKE/GLOB: the (name, id) index serves it, and no character in the
    prefix can act as a wildcard.
    """
    upper = _prefix_upper_bound(prefix)
    if upper is None:
        return f"{column} >= ?", (prefix,)
    return f"{column} >= ? AND {column} < ?", (prefix, upper)


def _prefix_upper_bound(prefix: str) -> str | None:
    """The smallest string above every string starting with `prefix`; None when unbounded.

    SQLite compares text as UTF-8 bytes, which orders like code points, so bumping the last
    code point that can be bumped gives the bound.
    """
    chars = list(prefix)
    while chars:
        last = ord(chars.pop())
        if last < 0x10FFFF:
            bumped = last + 1
            if 0xD800 <= bumped <= 0xDFFF:  # surrogates cannot be stored; skip over them
                bumped = 0xE000
            return "".join(chars) + chr(bumped)
    return None


def _current_revision(conn: sqlite3.Connection) -> int:
    # sqlite_sequence holds the highest id ever handed out, even if that row was deleted.
    row = conn.execute("SELECT seq FROM sqlite_sequence WHERE name = 'log'").fetchone()
    return row[0] if row is not None else 0


def _compacted_revision(conn: sqlite3.Connection) -> int:
    row = conn.execute("SELECT value FROM meta WHERE key = 'compact_revision'").fetchone()
    return row[0] if row is not None else 0


def _check_not_compacted(conn: sqlite3.Connection, revision: int) -> None:
    compacted = _compacted_revision(conn)
    if revision < compacted:
        raise CompactedError(
            f"revision {revision} is older than the compacted revision {compacted}"
        )


def _readable_revision(conn: sqlite3.Connection, revision: int) -> int:
    """The revision a read asked for (0 = now) after checking it is neither compacted nor future."""
    current = _current_revision(conn)
    if revision == 0:
        return current
    if revision > current:
        raise StorageError(f"revision {revision} is in the future (current revision is {current})")
    _check_not_compacted(conn, revision)
    return revision


def _latest_row(conn: sqlite3.Connection, key: str) -> _Row | None:
    row = conn.execute(
        "SELECT id, deleted, create_revision, value FROM log"
        " WHERE name = ? ORDER BY id DESC LIMIT 1",
        (key,),
    ).fetchone()
    if row is None:
        return None
    return _Row(id=row[0], deleted=bool(row[1]), create_revision=row[2], value=row[3])


def _existing_row(conn: sqlite3.Connection, key: str, expected_mod_revision: int | None) -> _Row:
    """The key's current row for a compare-and-swap; None as expectation means unconditional."""
    latest = _latest_row(conn, key)
    if latest is None or latest.deleted:
        raise KeyNotFoundError(f"key {key!r} not found")
    if expected_mod_revision is not None and latest.id != expected_mod_revision:
        raise ConflictError(
            f"key {key!r} is at revision {latest.id}, not the expected {expected_mod_revision}"
        )
    return latest


def _append(
    conn: sqlite3.Connection,
    key: str,
    *,
    created: bool,
    deleted: bool,
    create_revision: int,
    prev_revision: int,
    value: bytes,
    old_value: bytes | None,
) -> int:
    """Appends one row to the log and returns its id, the new revision."""
    cursor = conn.execute(
        "INSERT INTO log (name, created, deleted, create_revision, prev_revision, value, old_value)"
        " VALUES (?, ?, ?, ?, ?, ?, ?)",
        (key, int(created), int(deleted), create_revision, prev_revision, value, old_value),
    )
    revision = cursor.lastrowid
    if revision is None:  # cannot happen after a successful INSERT; never guess a revision
        raise StorageError("SQLite returned no row id for an appended row")
    return revision


def _event_from_row(row: tuple[Any, ...]) -> WatchEvent:
    """The watch event a log row records; the row alone holds everything, prev_kv included."""
    id_, name, created, deleted, create_revision, prev_revision, value, old_value = row
    kv = KeyValue(key=name, value=value, create_revision=create_revision, mod_revision=id_)
    prev_kv = None
    if not created:
        prev_kv = KeyValue(
            key=name, value=old_value, create_revision=create_revision, mod_revision=prev_revision
        )
    return WatchEvent(type="DELETE" if deleted else "PUT", kv=kv, prev_kv=prev_kv)
