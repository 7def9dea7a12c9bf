"""Behaviour of the embedded SQLite backend beyond the shared conformance suite."""
from __future__ import annotations

import os
import sqlite3
import stat
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from securekube.storage.interfaces import CompactedError, StorageError, WatchEvent
from securekube.storage.sqlite import SqliteConfig, SqliteStorage

POD = "/registry/pods/default/web"
PODS = "/registry/pods/"


@pytest.fixture
def db_path(tmp_path: Path) -> Path:
    return tmp_path / "state.db"


@pytest.fixture
def store(db_path: Path) -> Iterator[SqliteStorage]:
    storage = SqliteStorage(db_path)
    yield storage
    storage.close()


def mode_of(path: Path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


def test_database_files_are_owner_only_even_with_a_permissive_umask(db_path: Path) -> None:
    previous = os.umask(0)
    try:
        storage = SqliteStorage(db_path)
        try:
            storage.create(POD, b"secret-ish")
            wal_files = [p for p in db_path.parent.iterdir() if p.name != db_path.name]
            modes = {p.name: mode_of(p) for p in [db_path, *wal_files]}
        finally:
            storage.close()
    finally:
        os.umask(previous)

    assert modes[db_path.name] == 0o600
    assert set(modes.values()) == {0o600}, modes


def test_opening_a_database_that_others_can_read_is_refused(db_path: Path) -> None:
    SqliteStorage(db_path).close()
    db_path.chmod(0o644)

    with pytest.raises(StorageError, match="600"):
        SqliteStorage(db_path)


def test_opening_a_file_that_is_not_a_database_raises_a_storage_error(db_path: Path) -> None:
    db_path.write_bytes(b"this is a kubeconfig, not a database" * 100)
    db_path.chmod(0o600)

    with pytest.raises(StorageError, match="not a database"):
        SqliteStorage(db_path)


def test_a_write_blocked_by_another_process_past_the_busy_timeout_raises_a_storage_error(
    db_path: Path,
) -> None:
    storage = SqliteStorage(db_path, config=SqliteConfig(busy_timeout_s=0.1))
    other_process = sqlite3.connect(db_path, isolation_level=None)
    try:
        other_process.execute("BEGIN IMMEDIATE")  # holds the file's write lock

        with pytest.raises(StorageError, match="locked"):
            storage.create(POD, b"v1")

        other_process.execute("ROLLBACK")
        assert storage.create(POD, b"v1").value == b"v1"  # the store still works afterwards
    finally:
        other_process.close()
        storage.close()


def test_database_runs_in_wal_mode(store: SqliteStorage, db_path: Path) -> None:
    # WAL lets readers (watchers, lists) run while a write commits; it is persistent in the file.
    with sqlite3.connect(db_path) as probe:
        mode = probe.execute("PRAGMA journal_mode").fetchone()[0]
    probe.close()

    assert mode == "wal"


def test_reopen_keeps_data_revision_counter_and_compaction(db_path: Path) -> None:
    first = SqliteStorage(db_path)
    kept = first.create(POD, b"v1")
    kept2 = first.update(POD, b"v2", kept.mod_revision)
    first.create("/registry/pods/default/gone", b"x")
    last = first.delete("/registry/pods/default/gone")
    first.compact(last.mod_revision)
    first.close()

    reopened = SqliteStorage(db_path)
    try:
        assert reopened.current_revision() == last.mod_revision
        assert reopened.range(PODS).kvs == [kept2]
        with pytest.raises(CompactedError):
            reopened.get(POD, kept.mod_revision)
        # The deleted row with the highest revision is gone, yet its revision is not reused.
        recreated = reopened.create("/registry/pods/default/new", b"x")
        assert recreated.mod_revision == last.mod_revision + 1
    finally:
        reopened.close()


def test_a_second_store_on_the_same_file_sees_writes_through_watch_polling(db_path: Path) -> None:
    config = SqliteConfig(watch_poll_interval_s=0.05)
    server = SqliteStorage(db_path, config=config)
    cli_tool = SqliteStorage(db_path, config=config)  # as if another process opened the file
    try:
        watcher = server.watch(PODS, server.current_revision())
        created = cli_tool.create(POD, b"written elsewhere")

        events: list[WatchEvent] = []
        deadline = time.monotonic() + 5
        while not events and time.monotonic() < deadline:
            events = watcher.next(1.0)
        watcher.close()

        assert [e.kv for e in events] == [created]
        assert server.get(POD) == created
    finally:
        cli_tool.close()
        server.close()


def test_writers_on_two_stores_of_one_file_wait_for_each_other(db_path: Path) -> None:
    first = SqliteStorage(db_path)
    second = SqliteStorage(db_path)
    failures: list[BaseException] = []

    def write(storage: SqliteStorage, name: str) -> None:
        try:
            for i in range(20):
                storage.create(f"{PODS}{name}/p{i}", b"x")
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            failures.append(error)

    threads = [
        threading.Thread(target=write, args=(first, "first")),
        threading.Thread(target=write, args=(second, "second")),
    ]
    try:
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join(30)
        assert failures == []
        assert len(first.range(PODS).kvs) == 40
        assert first.current_revision() == second.current_revision() == 40
    finally:
        first.close()
        second.close()


def test_a_write_in_this_process_wakes_a_watcher_without_waiting_for_the_poll(
    db_path: Path,
) -> None:
    storage = SqliteStorage(db_path, config=SqliteConfig(watch_poll_interval_s=30))
    try:
        watcher = storage.watch(PODS, storage.current_revision())
        received: list[WatchEvent] = []
        waiter = threading.Thread(target=lambda: received.extend(watcher.next(20)))
        waiter.start()
        time.sleep(0.1)

        started = time.monotonic()
        storage.create(POD, b"v1")
        waiter.join(10)

        assert len(received) == 1
        assert time.monotonic() - started < 2.0
        watcher.close()
    finally:
        storage.close()


def test_compaction_past_a_delete_removes_the_deleted_value_from_the_file(db_path: Path) -> None:
    marker = b"deleted-secret-value-0123456789"
    storage = SqliteStorage(db_path)
    for i in range(20):
        storage.create(f"/registry/configmaps/default/c{i}", b"filler" * 50)
    storage.create("/registry/secrets/default/token", marker)
    storage.delete("/registry/secrets/default/token")
    storage.create("/registry/configmaps/default/after", b"x")
    storage.compact(storage.current_revision())
    storage.close()  # the last connection checkpoints the WAL into the main file

    leftovers = b"".join(p.read_bytes() for p in db_path.parent.iterdir())
    assert marker not in leftovers


def test_a_watcher_that_fell_behind_a_compaction_raises(store: SqliteStorage) -> None:
    watcher = store.watch(PODS, store.current_revision())
    v1 = store.create(POD, b"v1")
    v2 = store.update(POD, b"v2", v1.mod_revision)

    store.compact(v2.mod_revision)

    with pytest.raises(CompactedError):
        watcher.next(0.1)
    watcher.close()


def test_a_caught_up_watcher_survives_a_compaction(store: SqliteStorage) -> None:
    v1 = store.create(POD, b"v1")
    watcher = store.watch(PODS, store.current_revision())
    store.create("/registry/secrets/default/s", b"not watched")
    assert watcher.next(0.05) == []  # has read the log up to the head, nothing for it there
    store.compact(store.current_revision())

    v2 = store.update(POD, b"v2", v1.mod_revision)

    assert [e.kv for e in watcher.next(2)] == [v2]
    watcher.close()


def test_watch_delivers_a_long_backlog_in_bounded_batches(db_path: Path) -> None:
    storage = SqliteStorage(db_path, config=SqliteConfig(watch_batch_limit=3))
    try:
        for i in range(7):
            storage.create(f"{PODS}default/p{i}", b"x")
        watcher = storage.watch(PODS, 0)

        batches = [watcher.next(0.1) for _ in range(4)]
        watcher.close()

        assert [len(batch) for batch in batches] == [3, 3, 1, 0]
        revisions = [e.kv.mod_revision for batch in batches for e in batch]
        assert revisions == list(range(1, 8))
    finally:
        storage.close()


def test_closing_a_watcher_wakes_its_blocked_next_without_waiting_for_the_poll(
    db_path: Path,
) -> None:
    storage = SqliteStorage(db_path, config=SqliteConfig(watch_poll_interval_s=30))
    try:
        watcher = storage.watch(PODS, storage.current_revision())
        waiter = threading.Thread(target=lambda: watcher.next(20))
        waiter.start()
        time.sleep(0.1)

        started = time.monotonic()
        watcher.close()
        waiter.join(10)

        assert not waiter.is_alive()
        assert time.monotonic() - started < 2.0
    finally:
        storage.close()


def test_closing_the_store_wakes_blocked_watchers_with_an_error(db_path: Path) -> None:
    storage = SqliteStorage(db_path)
    watcher = storage.watch(PODS, storage.current_revision())
    errors: list[BaseException] = []

    def wait() -> None:
        try:
            watcher.next(30)
        except StorageError as error:
            errors.append(error)

    waiter = threading.Thread(target=wait)
    waiter.start()
    time.sleep(0.1)
    storage.close()
    waiter.join(5)

    assert not waiter.is_alive()
    assert len(errors) == 1


def test_a_closed_store_refuses_every_call_and_closes_idempotently(db_path: Path) -> None:
    storage = SqliteStorage(db_path)
    storage.close()
    storage.close()

    for call in (
        lambda: storage.get(POD),
        lambda: storage.range(PODS),
        lambda: storage.create(POD, b"x"),
        lambda: storage.current_revision(),
        lambda: storage.watch(PODS, 0),
        lambda: storage.compact(0),
    ):
        with pytest.raises(StorageError, match="closed"):
            call()


def test_prefix_ending_in_the_highest_code_point_still_matches_only_its_keys(
    store: SqliteStorage,
) -> None:
    top = chr(0x10FFFF)
    store.create(f"/a{top}/x", b"in")
    store.create(f"/a{top}{top}", b"in too")
    store.create("/b", b"out")

    assert [kv.key for kv in store.range(f"/a{top}").kvs] == [f"/a{top}/x", f"/a{top}{top}"]


@pytest.mark.parametrize("key", ["", "/registry/pods/a\x00b"])
def test_keys_that_cannot_be_ranged_exactly_are_refused(store: SqliteStorage, key: str) -> None:
    with pytest.raises(ValueError):
        store.create(key, b"x")
    assert store.current_revision() == 0


def test_values_that_are_not_bytes_are_refused(store: SqliteStorage) -> None:
    with pytest.raises(TypeError):
        store.create(POD, "text")  # type: ignore[arg-type]
    assert store.get(POD) is None


@pytest.mark.parametrize(
    "bad",
    [
        {"busy_timeout_s": -1},
        {"watch_poll_interval_s": 0},
        {"watch_batch_limit": 0},
        {"max_idle_readers": -1},
    ],
)
def test_config_rejects_values_that_would_break_the_store(bad: dict[str, float]) -> None:
    with pytest.raises(ValueError):
        SqliteConfig(**bad)  # type: ignore[arg-type]
