"""Encryption at rest that follows its config file, like upstream's automatic reload.

`securekube secrets encryption rotate` edits the EncryptionConfiguration file; the server
picks the change up within seconds, so key rotation needs no restart. A file that fails to
load leaves the last good configuration in force (never a fall-back to plaintext).
"""
from __future__ import annotations

import logging
import os
import threading
from pathlib import Path

from securekube.storage.transform.config import EncryptionConfig, load_encryption_config
from securekube.storage.transform.model import EncryptionConfigError

log = logging.getLogger("securekube.encryption")


class ReloadingEncryption:
    def __init__(self, path: Path) -> None:
        self.path = path
        self._config = load_encryption_config(path)  # a bad file at start-up stops start-up
        self._stamp = os.stat(path).st_mtime_ns
        self._lock = threading.Lock()

    @property
    def config(self) -> EncryptionConfig:
        return self._config

    def transformer_for(self, resource: str, group: str) -> "_Delegate":
        return _Delegate(self, resource, group)

    def check(self) -> bool:
        """Reloads when the file changed; returns True when a new configuration took effect."""
        with self._lock:
            try:
                stamp = os.stat(self.path).st_mtime_ns
                if stamp == self._stamp:
                    return False
                config = load_encryption_config(self.path)
            except (OSError, EncryptionConfigError) as exc:
                log.error("encryption config %s not reloaded, the previous one stays in force: %s", self.path, exc)
                return False
            self._config, self._stamp = config, stamp
            log.info("encryption config %s reloaded", self.path)
            return True


class _Delegate:
    """The transformer of one resource under whatever configuration is current."""

    def __init__(self, owner: ReloadingEncryption, resource: str, group: str) -> None:
        self._owner, self._resource, self._group = owner, resource, group

    def to_storage(self, plaintext: bytes, context: bytes) -> bytes:
        return self._owner.config.transformer_for(self._resource, self._group).to_storage(plaintext, context)

    def from_storage(self, data: bytes, context: bytes) -> tuple[bytes, bool]:
        return self._owner.config.transformer_for(self._resource, self._group).from_storage(data, context)
