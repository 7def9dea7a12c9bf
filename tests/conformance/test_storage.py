"""The storage conformance suite: etcd semantics that every `Storage` backend must honour.

Each test gets a fresh, empty store from every backend in BACKENDS. Tests never assume a
particular revision number (etcd starts at 1 and counts writes the suite cannot see); they
compare revisions against each other and against `current_revision()`.
"""
from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager
from pathlib import Path

import pytest

from securekube.storage.interfaces import (
    CompactedError,
    ConflictError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    Storage,
    StorageError,
    Watcher,
    WatchEvent,
)
from securekube.storage.sqlite import SqliteStorage

StoreOpener = Callable[[], Storage]
"""Opens the backend's store; each call opens the same data again (a restart, a second client)."""

BackendFactory = Callable[[Path], AbstractContextManager[StoreOpener]]
"""Sets a backend up in a temporary directory, yields its opener, tears it down afterwards."""


@contextmanager
def sqlite_backend(tmp_path: Path) -> Iterator[StoreOpener]:
    path = tmp_path / "storage.db"
    yield lambda: SqliteStorage(path)


# Every backend the suite runs against; adding a backend is adding one line here.
BACKENDS = (pytest.param(sqlite_backend, id="sqlite"),)


@pytest.fixture(params=BACKENDS)
def open_storage(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreOpener]:
    """The opener of one backend's fresh store; every store it opened is closed afterwards."""
    factory: BackendFactory = request.param
    opened: list[Storage] = []

    def open_store() -> Storage:
        store = opener()
        opened.append(store)
        return store

    with factory(tmp_path) as opener:
        yield open_store
        for store in opened:
            store.close()  # close() must be idempotent: some tests already closed it


@pytest.fixture
def storage(open_storage: StoreOpener) -> Storage:
    """A fresh, empty store of the backend under test."""
    return open_storage()


POD = "/registry/pods/default/web"
OTHER_POD = "/registry/pods/default/db"
PODS = "/registry/pods/"


def collect(watcher: Watcher, count: int, *, within: float = 5.0) -> list[WatchEvent]:
    """Exactly `count` events from `watcher`; fails when fewer arrive in time or more follow."""
    events: list[WatchEvent] = []
    deadline = time.monotonic() + within
    while len(events) < count:
        remaining = deadline - time.monotonic()
        assert remaining > 0, f"only {len(events)} of {count} events arrived: {events}"
        events.extend(watcher.next(min(remaining, 1.0)))
    assert len(events) == count, f"more events than expected: {events}"
    assert watcher.next(0.1) == [], "an event was delivered twice or an unexpected one arrived"
    return events


def summary(event: WatchEvent) -> tuple[object, ...]:
    prev = (event.prev_kv.value, event.prev_kv.mod_revision) if event.prev_kv else None
    return (event.type, event.kv.key, event.kv.value, event.kv.mod_revision, prev)


def value_of(storage: Storage, key: str) -> bytes | None:
    kv = storage.get(key)
    return kv.value if kv is not None else None


def keys_of(kvs: list[KeyValue]) -> list[str]:
    return [kv.key for kv in kvs]


# -- create / get --------------------------------------------------------------------------


def test_create_then_get_returns_the_value_and_its_revisions(storage: Storage) -> None:
    created = storage.create(POD, b"spec-1")

    assert created.key == POD
    assert created.value == b"spec-1"
    assert created.create_revision == created.mod_revision == storage.current_revision()
    assert storage.get(POD) == created


def test_get_of_a_missing_key_returns_none(storage: Storage) -> None:
    storage.create(OTHER_POD, b"x")

    assert storage.get(POD) is None


def test_values_round_trip_as_exact_bytes(storage: Storage) -> None:
    binary = bytes(range(256))  # encrypted values are arbitrary bytes, NUL included
    storage.create(POD, binary)
    storage.create(OTHER_POD, b"")

    assert value_of(storage, POD) == binary
    assert value_of(storage, OTHER_POD) == b""


def test_create_of_an_existing_key_raises_and_changes_nothing(storage: Storage) -> None:
    first = storage.create(POD, b"original")
    revision = storage.current_revision()

    with pytest.raises(KeyExistsError):
        storage.create(POD, b"intruder")

    assert storage.get(POD) == first
    assert storage.current_revision() == revision


def test_create_after_delete_starts_a_new_life_of_the_key(storage: Storage) -> None:
    first = storage.create(POD, b"one")
    storage.delete(POD)

    second = storage.create(POD, b"two")

    assert second.create_revision == second.mod_revision > first.create_revision
    assert storage.get(POD) == second


# -- update (compare-and-swap) ---------------------------------------------------------------


def test_update_at_the_current_revision_replaces_the_value(storage: Storage) -> None:
    created = storage.create(POD, b"v1")

    updated = storage.update(POD, b"v2", created.mod_revision)

    assert updated.value == b"v2"
    assert updated.create_revision == created.create_revision
    assert updated.mod_revision > created.mod_revision
    assert storage.get(POD) == updated


def test_update_at_a_stale_revision_raises_conflict_and_keeps_the_newer_value(
    storage: Storage,
) -> None:
    created = storage.create(POD, b"v1")
    newer = storage.update(POD, b"v2", created.mod_revision)
    revision = storage.current_revision()

    with pytest.raises(ConflictError):
        storage.update(POD, b"lost update", created.mod_revision)

    assert storage.get(POD) == newer
    assert storage.current_revision() == revision


def test_update_with_a_revision_from_the_keys_previous_life_conflicts(storage: Storage) -> None:
    old = storage.create(POD, b"old life")
    storage.delete(POD)
    storage.create(POD, b"new life")

    with pytest.raises(ConflictError):
        storage.update(POD, b"stale writer", old.mod_revision)
    assert value_of(storage, POD) == b"new life"


def test_update_of_a_missing_or_deleted_key_raises_not_found(storage: Storage) -> None:
    with pytest.raises(KeyNotFoundError):
        storage.update(POD, b"v", 1)

    created = storage.create(POD, b"v1")
    storage.delete(POD)
    with pytest.raises(KeyNotFoundError):
        storage.update(POD, b"v2", created.mod_revision)
    assert storage.get(POD) is None


# -- delete ----------------------------------------------------------------------------------


def test_unconditional_delete_returns_the_last_value_at_the_delete_revision(
    storage: Storage,
) -> None:
    created = storage.create(POD, b"v1")
    updated = storage.update(POD, b"v2", created.mod_revision)

    deleted = storage.delete(POD)

    assert deleted.key == POD
    assert deleted.value == b"v2"
    assert deleted.create_revision == created.create_revision
    assert deleted.mod_revision > updated.mod_revision
    assert deleted.mod_revision == storage.current_revision()
    assert storage.get(POD) is None


def test_conditional_delete_at_a_stale_revision_conflicts_and_keeps_the_key(
    storage: Storage,
) -> None:
    created = storage.create(POD, b"v1")
    updated = storage.update(POD, b"v2", created.mod_revision)

    with pytest.raises(ConflictError):
        storage.delete(POD, created.mod_revision)
    assert storage.get(POD) == updated

    deleted = storage.delete(POD, updated.mod_revision)
    assert deleted.value == b"v2"
    assert storage.get(POD) is None


def test_delete_of_a_missing_key_raises_not_found(storage: Storage) -> None:
    with pytest.raises(KeyNotFoundError):
        storage.delete(POD)

    storage.create(POD, b"v1")
    storage.delete(POD)
    with pytest.raises(KeyNotFoundError):
        storage.delete(POD)


# -- revisions -------------------------------------------------------------------------------


def test_revisions_are_global_and_strictly_increasing_across_keys(storage: Storage) -> None:
    start = storage.current_revision()
    a = storage.create(POD, b"a")
    b = storage.create(OTHER_POD, b"b")
    a2 = storage.update(POD, b"a2", a.mod_revision)
    b_deleted = storage.delete(OTHER_POD)
    a3 = storage.update(POD, b"a3", a2.mod_revision)

    revisions = [a.mod_revision, b.mod_revision, a2.mod_revision, b_deleted.mod_revision,
                 a3.mod_revision]
    assert start < revisions[0]
    assert all(earlier < later for earlier, later in zip(revisions, revisions[1:]))
    assert storage.current_revision() == a3.mod_revision


def test_failed_writes_do_not_consume_revisions(storage: Storage) -> None:
    created = storage.create(POD, b"v1")
    revision = storage.current_revision()

    failing_writes: list[Callable[[], KeyValue]] = [
        lambda: storage.create(POD, b"again"),
        lambda: storage.update(POD, b"v", created.mod_revision + 100),
        lambda: storage.update(OTHER_POD, b"v", created.mod_revision),
        lambda: storage.delete(OTHER_POD),
        lambda: storage.delete(POD, created.mod_revision + 100),
    ]
    for failing_write in failing_writes:
        with pytest.raises(StorageError):
            failing_write()

    assert storage.current_revision() == revision


def test_revisions_are_never_reused_after_delete_and_compaction(storage: Storage) -> None:
    storage.create(POD, b"v1")
    deleted = storage.delete(POD)
    storage.compact(deleted.mod_revision)

    assert storage.current_revision() == deleted.mod_revision
    recreated = storage.create(POD, b"v2")
    assert recreated.mod_revision > deleted.mod_revision


# -- range -----------------------------------------------------------------------------------


def test_range_returns_keys_under_the_prefix_sorted_by_key(storage: Storage) -> None:
    for key in ("/registry/pods/a/z", "/registry/pods/a/b", "/registry/pods/a/m"):
        storage.create(key, key.encode())

    result = storage.range("/registry/pods/a/")

    assert keys_of(result.kvs) == ["/registry/pods/a/b", "/registry/pods/a/m", "/registry/pods/a/z"]
    assert [kv.value for kv in result.kvs] == [key.encode() for key in keys_of(result.kvs)]
    assert result.revision == storage.current_revision()
    assert result.more is False


def test_range_prefix_does_not_match_a_longer_sibling_name(storage: Storage) -> None:
    storage.create("/registry/pods/a/x", b"in a")
    storage.create("/registry/pods/ab/x", b"in ab")
    storage.create("/registry/pods/a", b"the bare prefix without its slash")
    storage.create("/registry/secrets/a/x", b"another resource")

    result = storage.range("/registry/pods/a/")

    assert keys_of(result.kvs) == ["/registry/pods/a/x"]


def test_range_omits_deleted_keys_and_shows_current_values(storage: Storage) -> None:
    web = storage.create(POD, b"v1")
    storage.create(OTHER_POD, b"gone soon")
    storage.delete(OTHER_POD)
    web2 = storage.update(POD, b"v2", web.mod_revision)

    assert storage.range(PODS).kvs == [web2]


def test_range_of_an_empty_prefix_returns_nothing(storage: Storage) -> None:
    storage.create("/registry/secrets/default/token", b"x")

    result = storage.range(PODS)

    assert result.kvs == []
    assert result.more is False


def test_range_pages_with_limit_and_start_after_cover_every_key_once(storage: Storage) -> None:
    keys = [f"/registry/pods/default/pod-{i}" for i in range(5)]
    for key in reversed(keys):
        storage.create(key, b"x")

    first = storage.range(PODS, limit=2)
    second = storage.range(PODS, limit=2, start_after=first.kvs[-1].key, revision=first.revision)
    third = storage.range(PODS, limit=2, start_after=second.kvs[-1].key, revision=first.revision)

    assert keys_of(first.kvs) == keys[0:2] and first.more is True
    assert keys_of(second.kvs) == keys[2:4] and second.more is True
    assert keys_of(third.kvs) == keys[4:] and third.more is False


def test_range_page_ending_exactly_at_the_last_key_reports_no_more(storage: Storage) -> None:
    for i in range(4):
        storage.create(f"/registry/pods/default/pod-{i}", b"x")

    first = storage.range(PODS, limit=2)
    last = storage.range(PODS, limit=2, start_after=first.kvs[-1].key, revision=first.revision)

    assert len(last.kvs) == 2
    assert last.more is False


def test_later_pages_read_at_the_first_pages_revision_ignore_newer_writes(
    storage: Storage,
) -> None:
    keys = [f"/registry/pods/default/pod-{i}" for i in range(4)]
    written = {key: storage.create(key, b"original") for key in keys}
    first = storage.range(PODS, limit=2)

    storage.update(keys[2], b"changed", written[keys[2]].mod_revision)
    storage.delete(keys[3])
    storage.create("/registry/pods/default/pod-25", b"new")

    second = storage.range(PODS, start_after=first.kvs[-1].key, revision=first.revision)
    assert second.kvs == [written[keys[2]], written[keys[3]]]
    assert second.revision == first.revision
    assert len(storage.range(PODS).kvs) == 4  # and the present shows the changes


def test_range_at_an_old_revision_shows_the_state_of_then(storage: Storage) -> None:
    web = storage.create(POD, b"v1")
    db = storage.create(OTHER_POD, b"db")
    then = storage.current_revision()
    storage.update(POD, b"v2", web.mod_revision)
    storage.delete(OTHER_POD)
    storage.create("/registry/pods/default/later", b"later")

    old = storage.range(PODS, revision=then)

    assert old.kvs == [db, web]
    assert old.revision == then


def test_reads_at_a_future_revision_raise(storage: Storage) -> None:
    storage.create(POD, b"v1")
    future = storage.current_revision() + 10

    with pytest.raises(StorageError):
        storage.get(POD, future)
    with pytest.raises(StorageError):
        storage.range(PODS, revision=future)


# -- get at a revision -------------------------------------------------------------------------


def test_get_at_an_old_revision_returns_the_value_of_then(storage: Storage) -> None:
    storage.create(OTHER_POD, b"unrelated")
    before_creation = storage.current_revision()
    v1 = storage.create(POD, b"v1")
    v2 = storage.update(POD, b"v2", v1.mod_revision)
    deleted = storage.delete(POD)

    assert storage.get(POD, before_creation) is None
    assert storage.get(POD, v1.mod_revision) == v1
    assert storage.get(POD, v2.mod_revision) == v2
    assert storage.get(POD, deleted.mod_revision) is None
    assert storage.get(POD) is None


# -- watch -----------------------------------------------------------------------------------


def test_watch_from_a_revision_sees_later_changes_in_order_with_previous_values(
    storage: Storage,
) -> None:
    start = storage.current_revision()
    watcher = storage.watch(PODS, start)
    try:
        created = storage.create(POD, b"v1")
        updated = storage.update(POD, b"v2", created.mod_revision)
        deleted = storage.delete(POD)

        events = collect(watcher, 3)
    finally:
        watcher.close()

    assert [summary(e) for e in events] == [
        ("PUT", POD, b"v1", created.mod_revision, None),
        ("PUT", POD, b"v2", updated.mod_revision, (b"v1", created.mod_revision)),
        ("DELETE", POD, b"v2", deleted.mod_revision, (b"v2", updated.mod_revision)),
    ]
    assert events[0].kv == created
    assert events[1].kv == updated
    assert events[2].prev_kv == updated


def test_watch_from_an_older_revision_replays_what_happened_since(storage: Storage) -> None:
    first = storage.create(POD, b"v1")
    second = storage.update(POD, b"v2", first.mod_revision)
    third = storage.create(OTHER_POD, b"db")

    watcher = storage.watch(PODS, first.mod_revision)
    try:
        events = collect(watcher, 2)
    finally:
        watcher.close()

    assert [e.kv for e in events] == [second, third]


def test_watch_from_zero_replays_the_whole_history(storage: Storage) -> None:
    first = storage.create(POD, b"v1")
    second = storage.update(POD, b"v2", first.mod_revision)

    watcher = storage.watch(PODS, 0)
    try:
        third = storage.delete(POD)
        events = collect(watcher, 3)
    finally:
        watcher.close()

    assert [e.kv.mod_revision for e in events] == [
        first.mod_revision, second.mod_revision, third.mod_revision
    ]


def test_watch_from_the_current_revision_sees_only_later_changes(storage: Storage) -> None:
    storage.create(OTHER_POD, b"before the watch")

    watcher = storage.watch(PODS, storage.current_revision())
    try:
        created = storage.create(POD, b"after the watch")
        events = collect(watcher, 1)
    finally:
        watcher.close()

    assert events[0].kv == created


def test_watch_of_a_prefix_ignores_keys_outside_it(storage: Storage) -> None:
    watcher = storage.watch("/registry/pods/a/", storage.current_revision())
    try:
        storage.create("/registry/pods/ab/x", b"sibling prefix")
        storage.create("/registry/pods/a", b"the prefix without its slash")
        storage.create("/registry/secrets/a/x", b"another resource")
        inside = storage.create("/registry/pods/a/x", b"inside")
        events = collect(watcher, 1)
    finally:
        watcher.close()

    assert events[0].kv == inside


def test_watch_next_waits_for_the_timeout_when_nothing_happens(storage: Storage) -> None:
    watcher = storage.watch(PODS, storage.current_revision())
    try:
        started = time.monotonic()
        events = watcher.next(0.3)
        waited = time.monotonic() - started
    finally:
        watcher.close()

    assert events == []
    assert 0.25 <= waited < 3.0


def test_watch_next_blocked_in_a_thread_wakes_for_a_write(storage: Storage) -> None:
    watcher = storage.watch(PODS, storage.current_revision())
    received: list[WatchEvent] = []
    waiter = threading.Thread(target=lambda: received.extend(watcher.next(30)))
    try:
        waiter.start()
        time.sleep(0.1)
        created = storage.create(POD, b"v1")
        waiter.join(5)
    finally:
        watcher.close()
        waiter.join(5)

    assert [e.kv for e in received] == [created]


def test_watch_close_wakes_a_blocked_next(storage: Storage) -> None:
    watcher = storage.watch(PODS, storage.current_revision())
    results: list[list[WatchEvent]] = []
    waiter = threading.Thread(target=lambda: results.append(watcher.next(30)))
    waiter.start()
    time.sleep(0.1)

    started = time.monotonic()
    watcher.close()
    waiter.join(5)

    assert not waiter.is_alive(), "close() did not wake the blocked next()"
    assert time.monotonic() - started < 3.0
    assert results == [[]]


def test_watch_events_of_many_writers_arrive_in_revision_order_each_once(
    storage: Storage,
) -> None:
    watcher = storage.watch(PODS, storage.current_revision())
    writers = [
        threading.Thread(
            target=lambda w=w: [storage.create(f"{PODS}w{w}/p{i}", b"x") for i in range(10)]
        )
        for w in range(4)
    ]
    try:
        for writer in writers:
            writer.start()
        for writer in writers:
            writer.join(10)
        events = collect(watcher, 40)
    finally:
        watcher.close()

    revisions = [e.kv.mod_revision for e in events]
    assert revisions == sorted(set(revisions))
    assert revisions[-1] == storage.current_revision()


# -- compaction ------------------------------------------------------------------------------


def test_compaction_makes_older_reads_and_watches_raise_but_keeps_current_values(
    storage: Storage,
) -> None:
    v1 = storage.create(POD, b"v1")
    v2 = storage.update(POD, b"v2", v1.mod_revision)
    storage.create(OTHER_POD, b"db")
    storage.delete(OTHER_POD)
    v3 = storage.update(POD, b"v3", v2.mod_revision)

    storage.compact(v3.mod_revision)

    with pytest.raises(CompactedError):
        storage.get(POD, v1.mod_revision)
    with pytest.raises(CompactedError):
        storage.range(PODS, revision=v2.mod_revision)
    with pytest.raises(CompactedError):
        storage.watch(PODS, v1.mod_revision)
    assert storage.get(POD) == v3
    assert storage.get(POD, v3.mod_revision) == v3
    assert storage.get(OTHER_POD) is None
    assert storage.range(PODS).kvs == [v3]


def test_compaction_keeps_every_read_at_or_after_the_compacted_revision(
    storage: Storage,
) -> None:
    web1 = storage.create(POD, b"web1")
    db = storage.create(OTHER_POD, b"db")
    web2 = storage.update(POD, b"web2", web1.mod_revision)
    db_deleted = storage.delete(OTHER_POD)
    web3 = storage.update(POD, b"web3", web2.mod_revision)

    storage.compact(web2.mod_revision)

    assert storage.get(POD, web2.mod_revision) == web2
    assert storage.get(OTHER_POD, web2.mod_revision) == db
    assert storage.range(PODS, revision=web2.mod_revision).kvs == [db, web2]
    assert storage.range(PODS, revision=db_deleted.mod_revision).kvs == [web2]
    watcher = storage.watch(PODS, web2.mod_revision)
    try:
        events = collect(watcher, 2)
    finally:
        watcher.close()
    assert [summary(e) for e in events] == [
        ("DELETE", OTHER_POD, b"db", db_deleted.mod_revision, (b"db", db.mod_revision)),
        ("PUT", POD, b"web3", web3.mod_revision, (b"web2", web2.mod_revision)),
    ]


def test_compaction_to_a_future_revision_raises(storage: Storage) -> None:
    storage.create(POD, b"v1")

    with pytest.raises(StorageError):
        storage.compact(storage.current_revision() + 1)
    assert value_of(storage, POD) == b"v1"


def test_compacting_again_to_an_older_revision_changes_nothing(storage: Storage) -> None:
    v1 = storage.create(POD, b"v1")
    v2 = storage.update(POD, b"v2", v1.mod_revision)
    storage.compact(v2.mod_revision)

    storage.compact(v1.mod_revision)

    assert storage.get(POD) == v2
    with pytest.raises(CompactedError):
        storage.get(POD, v1.mod_revision)


# -- concurrency -----------------------------------------------------------------------------


def run_in_threads(count: int, work: Callable[[int], None]) -> None:
    """Runs work(0..count-1) in `count` threads and re-raises the first failure."""
    failures: list[BaseException] = []

    def guarded(index: int) -> None:
        try:
            work(index)
        except BaseException as error:  # noqa: BLE001 - handed to the test thread
            failures.append(error)

    threads = [threading.Thread(target=guarded, args=(i,)) for i in range(count)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(30)
    assert not any(thread.is_alive() for thread in threads), "a worker thread hung"
    if failures:
        raise failures[0]


def test_concurrent_compare_and_swap_has_exactly_one_winner_per_round(storage: Storage) -> None:
    threads, rounds = 8, 10
    storage.create(POD, b"start")
    barrier = threading.Barrier(threads, timeout=20)
    winners: list[list[int]] = [[] for _ in range(rounds)]

    def contend(index: int) -> None:
        for round_ in range(rounds):
            barrier.wait()  # everyone has finished the previous round
            seen = storage.get(POD)
            assert seen is not None
            barrier.wait()  # everyone read the same revision
            try:
                storage.update(POD, f"{round_}:{index}".encode(), seen.mod_revision)
            except ConflictError:
                continue
            winners[round_].append(index)

    run_in_threads(threads, contend)

    assert [len(round_winners) for round_winners in winners] == [1] * rounds
    final = storage.get(POD)
    assert final is not None and final.value == f"{rounds - 1}:{winners[-1][0]}".encode()


def test_concurrent_creates_of_one_key_have_exactly_one_winner(storage: Storage) -> None:
    threads = 8
    barrier = threading.Barrier(threads, timeout=20)
    outcomes: list[str] = []

    def race(index: int) -> None:
        barrier.wait()
        try:
            storage.create(POD, f"{index}".encode())
            outcomes.append("created")
        except KeyExistsError:
            outcomes.append("exists")

    run_in_threads(threads, race)

    assert sorted(outcomes) == ["created"] + ["exists"] * (threads - 1)


def test_concurrent_creates_of_distinct_keys_get_distinct_revisions(storage: Storage) -> None:
    threads, per_thread = 8, 10
    start = storage.current_revision()
    results: list[KeyValue] = []

    run_in_threads(
        threads,
        lambda t: results.extend(
            storage.create(f"{PODS}t{t}/p{i}", b"x") for i in range(per_thread)
        ),
    )

    revisions = sorted(kv.mod_revision for kv in results)
    assert len(set(revisions)) == threads * per_thread
    assert revisions[0] > start
    assert revisions[-1] == storage.current_revision()
    assert len(storage.range(PODS).kvs) == threads * per_thread


# -- durability ------------------------------------------------------------------------------


def test_data_and_revision_survive_close_and_reopen(open_storage: StoreOpener) -> None:
    first = open_storage()
    web = first.create(POD, b"v1")
    web2 = first.update(POD, b"v2", web.mod_revision)
    first.create(OTHER_POD, b"db")
    first.delete(OTHER_POD)
    revision = first.current_revision()
    first.close()

    reopened = open_storage()

    assert reopened.get(POD) == web2
    assert reopened.get(OTHER_POD) is None
    assert reopened.get(POD, web.mod_revision) == web
    assert reopened.current_revision() == revision
    assert reopened.create("/registry/pods/default/new", b"x").mod_revision > revision
