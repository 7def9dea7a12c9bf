"""Rotated audit log files: their names, which to keep, and compressing them in the background.

Names follow kube-apiserver's log rotation (lumberjack), so the same globs and tools work:
`audit.log` rotates to `audit-2024-01-02T03-04-05.123.log`, compressed to `...log.gz`, the time
being the moment of rotation in UTC. `max_backups` and `max_age_days` (0 = no limit, as upstream's
--audit-log-maxbackup/--audit-log-maxage) decide which old files are deleted at each rotation.

Deleting old files shortens the history a verifier can check, so the writer records in its next
checkpoint the first record that is still kept (`retainedFromSeq`); a file deleted by anyone else
then shows up as missing history.
"""
from __future__ import annotations

import gzip
import logging
import os
import queue
import re
import secrets
import shutil
import threading
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from pathlib import Path

LOG_MODE = 0o600
GZIP_SUFFIX = ".gz"
_STAMP_FORMAT = "%Y-%m-%dT%H-%M-%S"

log = logging.getLogger("securekube.audit")


@dataclass(frozen=True)
class RetentionPolicy:
    """When the active file rotates and which rotated files are kept (0 = no limit)."""

    max_size_bytes: int = 100 << 20
    max_backups: int = 10
    max_age_days: float = 30
    compress: bool = True


@dataclass(frozen=True)
class Backup:
    """One rotated file; `path` is the .gz when compression has finished, else the plain file."""

    path: Path
    rotated_at: datetime


@dataclass(frozen=True)
class LogNames:
    """How the files that belong to the active log `active` are named."""

    active: Path

    @property
    def witness(self) -> Path:
        """Where the latest checkpoint is kept outside the log (see chain.py)."""
        return self.active.with_name(self.active.name + ".checkpoint")

    @property
    def lock(self) -> Path:
        """The lock file that keeps a second writer out."""
        return self.active.with_name(self.active.name + ".lock")

    def backup_path(self, rotated_at: datetime) -> Path:
        """The name a file rotated at `rotated_at` gets (not yet compressed)."""
        stem, ext = _split_ext(self.active.name)
        utc = rotated_at.astimezone(timezone.utc)
        stamp = f"{utc.strftime(_STAMP_FORMAT)}.{utc.microsecond // 1000:03d}"
        return self.active.with_name(f"{stem}-{stamp}{ext}")

    def backups(self) -> list[Backup]:
        """The rotated files that exist, oldest first (one entry per rotation, .gz preferred)."""
        stem, ext = _split_ext(self.active.name)
        pattern = re.compile(
            re.escape(stem) + r"-(\d{4}-\d{2}-\d{2}T\d{2}-\d{2}-\d{2}\.\d{3})" + re.escape(ext) + r"(\.gz)?")
        found: dict[str, Backup] = {}
        try:
            names = os.listdir(self.active.parent)
        except FileNotFoundError:
            return []
        for name in names:
            match = pattern.fullmatch(name)
            if not match:
                continue
            stamp = match.group(1)
            rotated_at = datetime.strptime(stamp, _STAMP_FORMAT + ".%f").replace(tzinfo=timezone.utc)
            if stamp not in found or match.group(2):
                found[stamp] = Backup(self.active.parent / name, rotated_at)
        return [found[stamp] for stamp in sorted(found)]


def plan_deletions(backups: list[Backup], policy: RetentionPolicy, now: datetime) -> list[Backup]:
    """The backups (oldest first) that exceed max_backups or are older than max_age_days."""
    doomed: list[Backup] = []
    if policy.max_backups > 0 and len(backups) > policy.max_backups:
        doomed.extend(backups[: len(backups) - policy.max_backups])
    if policy.max_age_days > 0:
        cutoff = now - timedelta(days=policy.max_age_days)
        doomed.extend(b for b in backups if b.rotated_at < cutoff and b not in doomed)
    return sorted(doomed, key=lambda b: b.rotated_at)


def plain_and_compressed(path: Path) -> tuple[Path, Path]:
    """Both names a backup may have: without and with .gz."""
    if path.name.endswith(GZIP_SUFFIX):
        return path.with_name(path.name[: -len(GZIP_SUFFIX)]), path
    return path, path.with_name(path.name + GZIP_SUFFIX)


class Mill:
    """A background thread that compresses and deletes rotated files, so appends never wait for gzip."""

    def __init__(self) -> None:
        self._tasks: "queue.Queue[tuple[str, Path] | None]" = queue.Queue()
        self._thread = threading.Thread(target=self._run, name="audit-log-mill", daemon=True)
        self._thread.start()

    def compress(self, path: Path) -> None:
        self._tasks.put(("compress", path))

    def delete(self, path: Path) -> None:
        self._tasks.put(("delete", path))

    def close(self) -> None:
        """Finishes the queued work, then stops."""
        self._tasks.put(None)
        self._thread.join()

    def _run(self) -> None:
        while True:
            task = self._tasks.get()
            if task is None:
                return
            action, path = task
            try:
                if action == "compress":
                    compress_file(path)
                else:
                    delete_backup(path)
            except OSError as exc:
                # Never fatal: the uncompressed or undeleted file is still valid history.
                log.warning("audit log: cannot %s %s: %s", action, path.name, exc.strerror)
            except Exception as exc:  # the same, for anything else: the mill must keep running
                log.warning("audit log: cannot %s %s: %s", action, path.name, type(exc).__name__)


def compress_file(path: Path) -> None:
    """Replaces a rotated file by its .gz (written under a temporary name, then renamed)."""
    if not path.exists():
        return
    target = path.with_name(path.name + GZIP_SUFFIX)
    temp = path.with_name(f".{target.name}.{secrets.token_hex(4)}.tmp")
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, LOG_MODE)
    try:
        with os.fdopen(fd, "wb") as raw, gzip.GzipFile(filename="", mode="wb", fileobj=raw, mtime=0) as out, \
                open(path, "rb") as src:
            shutil.copyfileobj(src, out, 1 << 20)
        with open(temp, "rb") as done:
            os.fsync(done.fileno())
        os.rename(temp, target)
    except BaseException:
        temp.unlink(missing_ok=True)
        raise
    sync_directory(path.parent)
    # Only now is the plain file redundant; a reader always finds one of the two.
    path.unlink(missing_ok=True)
    sync_directory(path.parent)


def delete_backup(path: Path) -> None:
    """Deletes a rotated file under both its names."""
    for candidate in plain_and_compressed(path):
        candidate.unlink(missing_ok=True)
    sync_directory(path.parent)


def remove_stale_temporaries(directory: Path, active_name: str) -> None:
    """Removes half-written .gz files a crash left behind (their source is still there)."""
    stem, _ = _split_ext(active_name)
    for entry in directory.glob(f".{stem}-*.gz.*.tmp"):
        entry.unlink(missing_ok=True)


def sync_directory(directory: Path) -> None:
    """Makes renames, creations and deletions in `directory` durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _split_ext(name: str) -> tuple[str, str]:
    stem, dot, ext = name.rpartition(".")
    if not dot or not stem:
        return name, ""
    return stem, "." + ext
