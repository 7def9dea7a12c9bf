"""Atomic file writes for PKI material: a reader never sees a half-written file.

Every write goes to a temporary file in the destination directory, created with its
final mode (O_CREAT|O_EXCL, so a private key is never readable by others, not even for
an instant), flushed to disk, then published in one step: `os.link` when the
destination must not exist yet, `os.replace` when it replaces an older version.
"""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from securekube.pki.errors import PkiError

PRIVATE_MODE = 0o600
PUBLIC_MODE = 0o644
DIRECTORY_MODE = 0o700


def ensure_directory(path: Path) -> None:
    """Creates `path` (and parents) owner-only if missing; an existing one is left alone."""
    try:
        path.mkdir(mode=DIRECTORY_MODE, parents=True, exist_ok=True)
    except OSError as exc:
        raise PkiError(f"cannot create directory {path}: {exc.strerror}") from exc
    if not path.is_dir():
        raise PkiError(f"{path} exists and is not a directory")


def write_new(path: Path, data: bytes, mode: int) -> None:
    """Writes a file that must not exist yet; refuses rather than overwrite one."""
    temp = _write_temp(path, data, mode)
    try:
        os.link(temp, path)
    except FileExistsError as exc:
        raise PkiError(f"{path} already exists; refusing to overwrite it") from exc
    except OSError as exc:
        raise PkiError(f"cannot write {path}: {exc.strerror}") from exc
    finally:
        temp.unlink(missing_ok=True)
    _sync_directory(path.parent)


def replace(path: Path, data: bytes, mode: int) -> None:
    """Writes `path`, atomically replacing any older version (open readers keep the old one)."""
    temp = _write_temp(path, data, mode)
    try:
        os.replace(temp, path)
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise PkiError(f"cannot write {path}: {exc.strerror}") from exc
    _sync_directory(path.parent)


def _write_temp(path: Path, data: bytes, mode: int) -> Path:
    temp = path.with_name(f".{path.name}.{secrets.token_hex(8)}.tmp")
    try:
        fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW, mode)
    except OSError as exc:
        raise PkiError(f"cannot write {path}: {exc.strerror}") from exc
    try:
        with os.fdopen(fd, "wb") as out:
            out.write(data)
            out.flush()
            os.fsync(out.fileno())
    except OSError as exc:
        temp.unlink(missing_ok=True)
        raise PkiError(f"cannot write {path}: {exc.strerror}") from exc
    return temp


def _sync_directory(directory: Path) -> None:
    # Makes the rename itself durable, so a crash cannot bring back the old file.
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
