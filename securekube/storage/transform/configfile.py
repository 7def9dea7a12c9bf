"""Reading and writing the encryption configuration file safely.

The file holds every encryption key, so securekube refuses to read one that other users can
read or write (upstream kube-apiserver does not check; a world-readable key file defeats the
encryption, and a group/world-writable one lets someone else choose the key). Writes are atomic:
a 0600 temporary file in the same directory, fsync, rename, fsync of the directory.
"""

from __future__ import annotations

import os
import stat
from typing import Any

import yaml

from securekube.storage.transform.model import EncryptionConfigError

# Other users may neither read nor write; the group may not write.
_UNSAFE_MODE_BITS = stat.S_IRWXO | stat.S_IWGRP
_MAX_CONFIG_BYTES = 1024 * 1024


def read_config_bytes(path: str | os.PathLike[str]) -> bytes:
    """The file's bytes, after checking it is a regular file no other user can read or change."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_CLOEXEC", 0))
    except OSError as error:
        raise EncryptionConfigError(
            f"error reading encryption provider configuration file {str(path)!r}: {error.strerror}"
        ) from None
    try:
        # Check the opened file itself, so a swap between check and read cannot slip through.
        info = os.fstat(fd)
        if not stat.S_ISREG(info.st_mode):
            raise EncryptionConfigError(
                f"encryption provider configuration file {str(path)!r} is not a regular file"
            )
        mode = stat.S_IMODE(info.st_mode)
        if mode & _UNSAFE_MODE_BITS:
            raise EncryptionConfigError(
                f"encryption provider configuration file {str(path)!r} has mode {mode:04o}: it "
                "holds encryption keys, so other users must not read it and only its owner may "
                f"write it; run: chmod 600 {str(path)!r}"
            )
        with os.fdopen(fd, "rb", closefd=False) as handle:
            data = handle.read(_MAX_CONFIG_BYTES + 1)
    finally:
        os.close(fd)
    if not data.strip():
        raise EncryptionConfigError(
            f"encryption provider configuration file {str(path)!r} is empty"
        )
    if len(data) > _MAX_CONFIG_BYTES:
        raise EncryptionConfigError(
            f"encryption provider configuration file {str(path)!r} is larger than 1 MiB"
        )
    return data


class _StrictSafeLoader(yaml.SafeLoader):
    """A safe YAML loader that refuses duplicate mapping keys (upstream's strict decoding)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                mark = key_node.start_mark
                raise EncryptionConfigError(
                    f'strict decoding error: duplicate field "{key}" at line {mark.line + 1}'
                )
            seen.add(key)
        return super().construct_mapping(node, deep=deep)


def parse_yaml(data: bytes, source: str) -> Any:
    """The decoded YAML (or JSON) document; errors give a position but never a file excerpt."""
    try:
        return yaml.load(data, Loader=_StrictSafeLoader)  # noqa: S506 - a SafeLoader subclass
    except EncryptionConfigError as error:
        raise EncryptionConfigError(f"error decoding {source}: {error}") from None
    except yaml.MarkedYAMLError as error:
        # str(error) quotes the offending line, which may be a secret: report position only.
        where = ""
        if error.problem_mark is not None:
            where = (
                f" at line {error.problem_mark.line + 1}, column {error.problem_mark.column + 1}"
            )
        raise EncryptionConfigError(f"error decoding {source}: not valid YAML{where}") from None
    except yaml.YAMLError:
        raise EncryptionConfigError(f"error decoding {source}: not valid YAML") from None


def dump_yaml(document: Any) -> bytes:
    """The document as YAML, keeping field order (apiVersion, kind, resources)."""
    return yaml.safe_dump(document, sort_keys=False, default_flow_style=False).encode()


def atomic_write(path: str | os.PathLike[str], data: bytes, *, exclusive: bool = False) -> None:
    """Replaces (or with `exclusive`, creates) `path` with `data`, mode 0600, atomically.

    A crash leaves either the old file or the new one, never a torn file: readers of the
    configuration (every API server) must always see a complete, valid set of keys.
    """
    target = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(target))
    if exclusive and os.path.lexists(target):
        raise EncryptionConfigError(f"{target!r} already exists; refusing to overwrite its keys")
    temporary = os.path.join(
        directory, f".{os.path.basename(target)}.{os.getpid()}.{os.urandom(4).hex()}.tmp"
    )
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_CLOEXEC", 0)
    fd = os.open(temporary, flags, 0o600)
    try:
        with os.fdopen(fd, "wb") as handle:
            os.fchmod(handle.fileno(), 0o600)  # the umask cannot loosen it
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        if exclusive:
            # link() fails if the target appeared meanwhile: an existing key file is never replaced.
            try:
                os.link(temporary, target)
            except FileExistsError:
                raise EncryptionConfigError(
                    f"{target!r} already exists; refusing to overwrite its keys"
                ) from None
            os.unlink(temporary)
        else:
            os.replace(temporary, target)
    except BaseException:
        if os.path.lexists(temporary):
            os.unlink(temporary)
        raise
    _fsync_directory(directory)


def _fsync_directory(directory: str) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
