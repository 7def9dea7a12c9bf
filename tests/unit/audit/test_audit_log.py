"""The audit log file backend: durable appends, group commit, chain continuity, rotation, recovery."""
from __future__ import annotations

import gzip
import hashlib
import json
import os
import re
import signal
import stat
import subprocess
import sys
import threading
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey

from securekube.audit import chain
from securekube.audit.errors import AuditKeyError, AuditLogError
from securekube.audit.keys import PRIVATE_KEY_NAME, PUBLIC_KEY_NAME, load_audit_public_key, load_or_create_audit_key
from securekube.audit.log import AuditLog
from securekube.audit.verify import verify

BACKUP_NAME = r"audit-\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3}\.log"


def event(n: int, **extra: Any) -> dict[str, Any]:
    return {"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": f"id-{n}",
            "stage": "ResponseComplete", "requestURI": f"/api/v1/namespaces/default/pods/p{n}", "verb": "get",
            "user": {"username": "alice"}, "requestReceivedTimestamp": "2024-01-02T03:04:05.000000Z",
            "stageTimestamp": "2024-01-02T03:04:05.000100Z", **extra}


def records(path: Path) -> list[dict[str, Any]]:
    opener = gzip.open if path.name.endswith(".gz") else open
    with opener(path, "rb") as handle:
        return [json.loads(line) for line in handle]


def requests_in(path: Path) -> list[dict[str, Any]]:
    return [r for r in records(path) if not chain.is_checkpoint(r)]


def reasons(path: Path) -> list[str]:
    return [chain.Checkpoint.from_statement(r["annotations"][chain.CHECKPOINT]).reason
            for r in records(path) if chain.is_checkpoint(r)]


def all_log_files(directory: Path) -> list[Path]:
    return [p for p in directory.iterdir() if p.name.startswith("audit") and ".log" in p.name
            and not p.name.endswith((".lock", ".checkpoint"))]


@pytest.fixture
def key() -> Ed25519PrivateKey:
    return Ed25519PrivateKey.generate()


def test_events_are_written_unchanged_plus_chain_annotations(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    mine = event(1, annotations={"authorization.k8s.io/decision": "allow"})
    before = json.dumps(mine)
    with AuditLog(tmp_path / "audit.log", signing_key=key) as log:
        log.append([mine, event(2)])
        written = requests_in(tmp_path / "audit.log")  # readable as soon as append returned
    assert json.dumps(mine) == before  # the caller's dict is not changed
    assert [r["auditID"] for r in written] == ["id-1", "id-2"]
    first = written[0]
    assert first["annotations"]["authorization.k8s.io/decision"] == "allow"
    assert {k: v for k, v in first.items() if k != "annotations"} == {k: v for k, v in mine.items()
                                                                       if k != "annotations"}
    assert first["annotations"][chain.SEQ] == "1"  # record 0 is the opening checkpoint
    assert reasons(tmp_path / "audit.log") == ["start", "close"]
    assert stat.S_IMODE((tmp_path / "audit.log").stat().st_mode) == 0o600
    assert verify([tmp_path / "audit.log"], key.public_key()).intact


def test_each_hash_is_sha256_of_the_lines_own_bytes(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    # The documented format, so a verifier in any language can check a line without re-serializing.
    annotated = event(1, annotations={"k": "v"})
    annotated = {"annotations": annotated.pop("annotations"), **annotated}  # annotations first ...
    with AuditLog(tmp_path / "audit.log", signing_key=key) as log:
        log.append([annotated, event(2, annotations={})])
    prev = "0" * 64
    for line in (tmp_path / "audit.log").read_bytes().splitlines():
        record = json.loads(line)
        assert list(record)[-1] == "annotations"  # ... are always written last
        assert list(record["annotations"])[-3:] == [chain.SEQ, chain.PREV, chain.HASH]
        cut = line.rindex(b',"audit.securekube.io/hash":"')
        assert record["annotations"][chain.HASH] == hashlib.sha256(line[:cut] + b"}}").hexdigest()
        assert record["annotations"][chain.PREV] == prev
        prev = record["annotations"][chain.HASH]
    assert requests_in(tmp_path / "audit.log")[0]["annotations"]["k"] == "v"


def test_append_fails_closed_when_the_disk_does(tmp_path: Path, key: Ed25519PrivateKey,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    with AuditLog(tmp_path / "audit.log", signing_key=key) as log:
        log.append([event(1)])
        real = os.fdatasync
        failures = iter([True])

        def flaky(fd: int) -> None:
            if next(failures, False):
                raise OSError(28, "No space left on device")
            real(fd)

        monkeypatch.setattr(os, "fdatasync", flaky)
        with pytest.raises(AuditLogError, match="No space left on device"):
            log.append([event(2)])
        log.append([event(3)])
    # the failed batch was taken back whole: the chain goes on as if it was never attempted
    assert [r["auditID"] for r in requests_in(tmp_path / "audit.log")] == ["id-1", "id-3"]
    assert verify([tmp_path / "audit.log"], key.public_key()).intact


@pytest.mark.parametrize(("bad", "message"), [
    ({"kind": "Pod"}, "is not an audit.k8s.io/v1 Event"),
    (event(1, annotations={chain.HASH: "0" * 64}), "already carries audit.securekube.io chain annotations"),
    (event(1, annotations={"a": 1}), "annotations must map strings to strings"),
    (event(1, requestObject={"raw": b"bytes"}), "cannot be written as JSON"),
])
def test_bad_events_are_refused_and_nothing_is_written(tmp_path: Path, key: Ed25519PrivateKey,
                                                       bad: dict[str, Any], message: str) -> None:
    with AuditLog(tmp_path / "audit.log", signing_key=key) as log:
        with pytest.raises(AuditLogError, match=message):
            log.append([event(0), bad])
    assert requests_in(tmp_path / "audit.log") == []


def test_closed_log_and_second_writer_are_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = AuditLog(tmp_path / "audit.log", signing_key=key)
    with pytest.raises(AuditLogError, match="another process is writing"):
        AuditLog(tmp_path / "audit.log", signing_key=key)
    log.close()
    log.close()  # idempotent
    with pytest.raises(AuditLogError, match="is closed"):
        log.append([event(1)])


def test_concurrent_appends_are_group_committed_durable_and_ordered(
        tmp_path: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.fdatasync

    def slow_sync(fd: int) -> None:  # a slow disk, so that writers really queue up
        time.sleep(0.005)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", slow_sync)
    writers, per_writer = 64, 5
    start = threading.Barrier(writers)
    with AuditLog(tmp_path / "audit.log", signing_key=key, checkpoint_every_events=50) as log:
        commits_before = log.stats().commits

        def write(w: int) -> None:
            start.wait()
            for i in range(per_writer):
                log.append([event(i, auditID=f"w{w}-{i}")])

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        commits = log.stats().commits - commits_before
    written = [r["auditID"] for r in requests_in(tmp_path / "audit.log")]
    assert sorted(written) == sorted(f"w{w}-{i}" for w in range(writers) for i in range(per_writer))
    for w in range(writers):  # each writer's appends appear in the order it made them
        assert [a for a in written if a.startswith(f"w{w}-")] == [f"w{w}-{i}" for i in range(per_writer)]
    assert commits < writers * per_writer / 4  # far fewer fsyncs than appends
    assert verify([tmp_path / "audit.log"], key.public_key()).intact


def test_restart_continues_the_chain(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    for n in range(3):
        with AuditLog(tmp_path / "audit.log", signing_key=key) as log:
            log.append([event(n)])
    assert reasons(tmp_path / "audit.log") == ["start", "close", "resume", "close", "resume", "close"]
    seqs = [int(r["annotations"][chain.SEQ]) for r in records(tmp_path / "audit.log")]
    assert seqs == list(range(len(seqs)))
    assert verify([tmp_path / "audit.log"], key.public_key()).intact


def test_an_unfinished_last_line_is_removed_and_the_restart_says_recover(
        tmp_path: Path, key: Ed25519PrivateKey) -> None:
    with AuditLog(tmp_path / "audit.log", signing_key=key) as log:
        log.append([event(1)])
    with open(tmp_path / "audit.log", "ab") as handle:
        handle.write(b'{"kind":"Event","apiVer')  # a crash in the middle of a write
    with AuditLog(tmp_path / "audit.log", signing_key=key) as log:
        log.append([event(2)])
    assert reasons(tmp_path / "audit.log") == ["start", "close", "recover", "close"]
    assert verify([tmp_path / "audit.log"], key.public_key()).intact


def test_a_crash_between_rotating_and_starting_the_new_file_is_survived(
        tmp_path: Path, key: Ed25519PrivateKey) -> None:
    with AuditLog(tmp_path / "audit.log", signing_key=key) as log:
        log.append([event(1)])
    # As if the writer died right after renaming the active file away:
    (tmp_path / "audit.log").rename(tmp_path / "audit-2024-01-02T03-04-05.678.log")
    with AuditLog(tmp_path / "audit.log", signing_key=key) as log:
        log.append([event(2)])
    assert reasons(tmp_path / "audit.log") == ["resume", "close"]
    assert verify(all_log_files(tmp_path), key.public_key()).intact


def test_a_log_whose_end_was_altered_is_not_extended(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    with AuditLog(tmp_path / "audit.log", signing_key=key) as log:
        log.append([event(1)])
    lines = (tmp_path / "audit.log").read_bytes().splitlines(keepends=True)
    (tmp_path / "audit.log").write_bytes(b"".join(lines[:-1]) + lines[-1].replace(b'"close', b'"clone'))
    with pytest.raises(AuditLogError, match="does not match its hash"):
        AuditLog(tmp_path / "audit.log", signing_key=key)
    with pytest.raises(AuditLogError, match="does not verify with this key"):
        (tmp_path / "audit.log").write_bytes(b"".join(lines))
        AuditLog(tmp_path / "audit.log", signing_key=Ed25519PrivateKey.generate())


def test_rotation_compresses_prunes_and_the_chain_crosses_files(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    with AuditLog(tmp_path / "audit.log", signing_key=key, max_size_bytes=4000, max_backups=3,
                  checkpoint_every_events=4) as log:
        for n in range(60):
            log.append([event(n)])
        rotations = log.stats().rotations
    assert rotations > 3
    backups = sorted(p.name for p in tmp_path.glob("audit-*"))
    assert len(backups) == 3
    assert all(re.fullmatch(BACKUP_NAME + r"\.gz", name) for name in backups)
    for name in backups:
        assert stat.S_IMODE((tmp_path / name).stat().st_mode) == 0o600
        assert (tmp_path / name).stat().st_size < 4000
    report = verify(all_log_files(tmp_path), key.public_key())
    assert report.intact, [str(p) for p in report.problems]
    assert report.first_seq and report.first_seq > 0
    assert any("removed by rotation" in note for note in report.notes)
    assert reasons(tmp_path / "audit.log")[0] == "rotate"


def test_old_backups_are_deleted_by_age(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    now = [datetime(2024, 1, 1, tzinfo=timezone.utc)]
    with AuditLog(tmp_path / "audit.log", signing_key=key, max_size_bytes=1500, max_backups=0, max_age_days=2,
                  compress=False, clock=lambda: now[0]) as log:
        for n in range(12):
            log.append([event(n)])
            now[0] += timedelta(days=1)
    stamps = sorted(p.name[6:16] for p in tmp_path.glob("audit-*.log"))
    assert stamps and all(stamp >= "2024-01-10" for stamp in stamps)
    assert verify(all_log_files(tmp_path), key.public_key()).intact


def test_an_unsynced_event_is_written_by_the_submitter_when_the_writer_is_idle(
        tmp_path: Path, key: Ed25519PrivateKey) -> None:
    with AuditLog(tmp_path / "audit.log", signing_key=key, checkpoint_every_seconds=60) as log:
        log.append([event(1)])  # the chain has an unsealed record: the writer's timer runs
        commits = log.stats().commits
        done = log.submit([event(2)], durable=False)
        # Already in the file when submit returns, and no writer round was needed for it.
        assert done.done() and done.result() is None
        assert [r["auditID"] for r in requests_in(tmp_path / "audit.log")] == ["id-1", "id-2"]
        assert log.stats().commits == commits
    assert verify([tmp_path / "audit.log"], key.public_key()).intact


def test_unsynced_events_are_still_sealed_by_checkpoints_in_time(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    with AuditLog(tmp_path / "audit.log", signing_key=key, checkpoint_every_events=1000,
                  checkpoint_every_seconds=0.2) as log:
        log.append([event(1)])
        for n in range(2, 5):
            log.submit([event(n)], durable=False).result(timeout=5)
        deadline = time.monotonic() + 5
        while "periodic" not in reasons(tmp_path / "audit.log") and time.monotonic() < deadline:
            time.sleep(0.01)
        lines = records(tmp_path / "audit.log")
    # The periodic checkpoint comes after, and so seals, the events written without the writer.
    assert [r["auditID"] for r in lines[1:5]] == ["id-1", "id-2", "id-3", "id-4"]
    assert chain.is_checkpoint(lines[5]) and reasons(tmp_path / "audit.log")[:2] == ["start", "periodic"]
    assert verify([tmp_path / "audit.log"], key.public_key()).intact


def test_mixed_synced_and_unsynced_events_under_concurrency_keep_one_intact_chain(
        tmp_path: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch) -> None:
    real = os.fdatasync

    def slow_sync(fd: int) -> None:  # the writer holds the file a while, so submitters meet it busy
        time.sleep(0.002)
        real(fd)

    monkeypatch.setattr(os, "fdatasync", slow_sync)
    writers, per_writer = 16, 30
    start = threading.Barrier(writers)
    with AuditLog(tmp_path / "audit.log", signing_key=key, checkpoint_every_events=40,
                  max_size_bytes=60_000, compress=False) as log:

        def write(w: int) -> None:
            start.wait()
            for i in range(per_writer):
                log.submit([event(i, auditID=f"w{w}-{i}")], durable=(i % 3 == 0)).result(timeout=10)

        threads = [threading.Thread(target=write, args=(w,)) for w in range(writers)]
        for thread in threads:
            thread.start()
        for thread in threads:
            thread.join()
        stats = log.stats()
    files = sorted(all_log_files(tmp_path), key=lambda p: (p.name == "audit.log", p.name))
    written = [r["auditID"] for f in files for r in requests_in(f)]
    assert sorted(written) == sorted(f"w{w}-{i}" for w in range(writers) for i in range(per_writer))
    for w in range(writers):
        assert [a for a in written if a.startswith(f"w{w}-")] == [f"w{w}-{i}" for i in range(per_writer)]
    assert stats.rotations >= 1 and stats.checkpoints >= writers * per_writer // 40
    assert verify(files, key.public_key()).intact


def test_one_submitters_unsynced_events_keep_their_order_beside_durable_appends(
        tmp_path: Path, key: Ed25519PrivateKey) -> None:
    # The API server's event loop submits reads' events without waiting while other requests
    # append durably. Frequent thread switches make the writer lose the CPU between taking a batch
    # and writing it, where a direct write must not overtake the batch (it did, before the writer
    # took batches under the file lock).
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-5)
    try:
        with AuditLog(tmp_path / "audit.log", signing_key=key, checkpoint_every_events=100_000,
                      checkpoint_every_seconds=60) as log:
            log.append([event(0)])
            stop = threading.Event()

            def durable() -> None:
                n = 0
                while not stop.is_set():
                    log.append([event(n, auditID=f"d{n}")])
                    n += 1

            appender = threading.Thread(target=durable)
            appender.start()
            futures = [log.submit([event(n, auditID=f"r{n}")], durable=False) for n in range(5000)]
            stop.set()
            appender.join()
            for future in futures:
                future.result(timeout=10)
    finally:
        sys.setswitchinterval(interval)
    written = [int(r["auditID"][1:]) for r in requests_in(tmp_path / "audit.log") if r["auditID"].startswith("r")]
    assert written == list(range(5000))
    assert verify([tmp_path / "audit.log"], key.public_key()).intact


def test_a_failed_unsynced_write_fails_its_future_not_the_caller(
        tmp_path: Path, key: Ed25519PrivateKey, monkeypatch: pytest.MonkeyPatch) -> None:
    with AuditLog(tmp_path / "audit.log", signing_key=key, checkpoint_every_seconds=60) as log:
        log.append([event(1)])
        real_write = os.write

        def full_disk(fd: int, data: bytes) -> int:
            raise OSError(28, "No space left on device")

        monkeypatch.setattr(os, "write", full_disk)
        done = log.submit([event(2)], durable=False)  # does not raise: the answer is in the future
        with pytest.raises(AuditLogError, match="No space left"):
            done.result(timeout=5)
        monkeypatch.setattr(os, "write", real_write)
        log.append([event(3)])
    assert [r["auditID"] for r in requests_in(tmp_path / "audit.log")] == ["id-1", "id-3"]
    assert verify([tmp_path / "audit.log"], key.public_key()).intact


def test_an_unsynced_event_after_close_is_refused(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    log = AuditLog(tmp_path / "audit.log", signing_key=key)
    log.append([event(1)])
    log.close()
    with pytest.raises(AuditLogError, match="closed"):
        log.submit([event(2)], durable=False)
    assert [r["auditID"] for r in requests_in(tmp_path / "audit.log")] == ["id-1"]


def test_checkpoints_are_written_by_time_and_witnessed(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    seen: list[dict[str, Any]] = []
    with AuditLog(tmp_path / "audit.log", signing_key=key, checkpoint_every_events=1000,
                  checkpoint_every_seconds=0.05, on_checkpoint=seen.append) as log:
        log.append([event(1)])
        deadline = time.monotonic() + 5
        while "periodic" not in reasons(tmp_path / "audit.log") and time.monotonic() < deadline:
            time.sleep(0.01)
        assert reasons(tmp_path / "audit.log") == ["start", "periodic"]
    witness = (tmp_path / "audit.log.checkpoint").read_bytes()
    assert witness == (tmp_path / "audit.log").read_bytes().splitlines(keepends=True)[-1]
    assert [chain.Checkpoint.from_statement(c["annotations"][chain.CHECKPOINT]).reason for c in seen] == [
        "start", "periodic", "close"]


def test_an_existing_log_readable_by_others_is_tightened(tmp_path: Path, key: Ed25519PrivateKey) -> None:
    with AuditLog(tmp_path / "audit.log", signing_key=key):
        pass
    os.chmod(tmp_path / "audit.log", 0o644)
    with AuditLog(tmp_path / "audit.log", signing_key=key):
        pass
    assert stat.S_IMODE((tmp_path / "audit.log").stat().st_mode) == 0o600


_BURST_WRITER = """
import sys
from pathlib import Path
from securekube.audit.keys import load_or_create_audit_key
from securekube.audit.log import AuditLog
directory = Path(sys.argv[1])
log = AuditLog(directory / "audit.log", signing_key=load_or_create_audit_key(directory / "pki"),
               checkpoint_every_events=7)
n = 0
while True:
    log.append([{"kind": "Event", "apiVersion": "audit.k8s.io/v1", "level": "Metadata", "auditID": f"id-{n}",
                 "stage": "ResponseComplete", "requestURI": "/api/v1/pods", "verb": "create",
                 "user": {"username": "alice"}}])
    print(n, flush=True)  # acknowledged: the event is durable
    n += 1
"""


def test_kill_9_during_a_burst_loses_no_acknowledged_event(tmp_path: Path) -> None:
    process = subprocess.Popen([sys.executable, "-c", _BURST_WRITER, str(tmp_path)], stdout=subprocess.PIPE)
    assert process.stdout is not None
    acknowledged = []
    for line in process.stdout:
        acknowledged.append(int(line))
        if len(acknowledged) == 200:
            break
    process.send_signal(signal.SIGKILL)
    acknowledged.extend(int(line) for line in process.stdout.read().split())
    process.stdout.close()
    process.wait()
    written = {r["auditID"] for r in requests_in(tmp_path / "audit.log")}
    assert {f"id-{n}" for n in acknowledged} <= written
    key = load_or_create_audit_key(tmp_path / "pki")
    with AuditLog(tmp_path / "audit.log", signing_key=key) as log:  # the next start seals the crash
        log.append([event(10_000)])
    assert "recover" in reasons(tmp_path / "audit.log")
    report = verify([tmp_path / "audit.log"], load_audit_public_key(tmp_path / "pki" / PUBLIC_KEY_NAME))
    assert report.intact, [str(p) for p in report.problems]


def test_signing_key_is_created_once_owner_only_and_checked(tmp_path: Path) -> None:
    pki = tmp_path / "pki"
    first = load_or_create_audit_key(pki)
    again = load_or_create_audit_key(pki)
    assert chain.key_id(first.public_key()) == chain.key_id(again.public_key())
    assert stat.S_IMODE((pki / PRIVATE_KEY_NAME).stat().st_mode) == 0o600
    assert chain.key_id(load_audit_public_key(pki / PUBLIC_KEY_NAME)) == chain.key_id(first.public_key())
    os.chmod(pki / PRIVATE_KEY_NAME, 0o640)
    with pytest.raises(AuditKeyError, match="readable by group or others"):
        load_or_create_audit_key(pki)
    os.chmod(pki / PRIVATE_KEY_NAME, 0o600)
    (pki / PUBLIC_KEY_NAME).unlink()
    load_or_create_audit_key(pki)  # a lost .pub is written again from the key
    assert chain.key_id(load_audit_public_key(pki / PUBLIC_KEY_NAME)) == chain.key_id(first.public_key())
