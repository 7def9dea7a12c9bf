"""Where `securekube up` keeps a cluster's files inside its data directory."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class DataDir:
    root: Path

    @property
    def pki(self) -> Path:
        return self.root / "pki"

    @property
    def database(self) -> Path:
        return self.root / "state.db"

    @property
    def encryption_config(self) -> Path:
        return self.root / "encryption-config.yaml"

    @property
    def admin_kubeconfig(self) -> Path:
        return self.root / "admin.kubeconfig"

    @property
    def audit_log(self) -> Path:
        return self.root / "audit" / "audit.log"
