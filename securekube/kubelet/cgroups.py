"""Per-pod cgroups (cgroupfs driver) that carry the pod's process-count limit.

CRI has no per-container pids limit; upstream's kubelet enforces `podPidsLimit` on a cgroup it
creates for each pod, and the runtime nests the pod's containers under it (the sandbox's
`cgroup_parent`). We do the same: `<root>/<parent>/pod<uid>` with `pids.max`, on cgroup v1 (the
pids hierarchy) or v2 (the unified one). A fork bomb in one pod then cannot exhaust the node.
"""
from __future__ import annotations

import errno
import os
import re
import time
from dataclasses import dataclass
from pathlib import Path

_POD_UID = re.compile(r"^[A-Za-z0-9-]{1,64}$")


class CgroupError(RuntimeError):
    """A pod cgroup could not be created, limited or removed."""


@dataclass(frozen=True)
class PodCgroups:
    """Pod cgroups under `<root>/<parent>`; `root` is the cgroupfs mount (a fake one in tests)."""

    root: Path = Path("/sys/fs/cgroup")
    parent: str = "securekube"

    @property
    def unified(self) -> bool:
        """Whether the host runs cgroup v2 only (one hierarchy with every controller)."""
        return (self.root / "cgroup.controllers").exists()

    def cgroup_parent(self, pod_uid: str) -> str:
        """The pod's cgroup in cgroupfs syntax, as CRI's `cgroup_parent` wants it."""
        if not _POD_UID.match(pod_uid):
            raise CgroupError(f"pod uid {pod_uid!r} cannot name a cgroup")
        return f"/{self.parent}/pod{pod_uid.replace('-', '_')}"

    def _pids_dir(self, pod_uid: str) -> Path:
        relative = self.cgroup_parent(pod_uid).lstrip("/")
        return self.root / relative if self.unified else self.root / "pids" / relative

    def create(self, pod_uid: str, pids_limit: int | None) -> str:
        """Create the pod's cgroup with its pids limit (None: unlimited); returns its cgroup_parent."""
        directory = self._pids_dir(pod_uid)
        try:
            if self.unified:
                # Children can only use controllers their parent delegates.
                self._delegate(self.root, "+pids +memory +cpu")
                (self.root / self.parent).mkdir(exist_ok=True)
                self._delegate(self.root / self.parent, "+pids +memory +cpu")
            directory.mkdir(parents=True, exist_ok=True)
            (directory / "pids.max").write_text("max" if pids_limit is None else str(pids_limit))
        except OSError as error:
            raise CgroupError(f"cannot create the pod cgroup {directory}: {error.strerror or error}") from None
        return self.cgroup_parent(pod_uid)

    @staticmethod
    def _delegate(directory: Path, controllers: str) -> None:
        try:
            (directory / "cgroup.subtree_control").write_text(controllers)
        except OSError:
            # A controller may be absent or already delegated; pids is checked by writing pids.max.
            pass

    def remove(self, pod_uid: str, timeout_seconds: float = 5.0) -> None:
        """Remove the pod's cgroup from every hierarchy (once its containers are gone)."""
        relative = self.cgroup_parent(pod_uid).lstrip("/")
        hierarchies = [self.root] if self.unified else [
            entry for entry in self.root.iterdir() if entry.is_dir()]
        for hierarchy in hierarchies:
            self._remove_tree(hierarchy / relative, time.monotonic() + timeout_seconds)

    def remove_all(self, timeout_seconds: float = 5.0) -> None:
        """Remove every pod cgroup left under the parent, then the parent (the node's runtime has stopped)."""
        hierarchies = [self.root] if self.unified else [
            entry for entry in self.root.iterdir() if entry.is_dir()]
        deadline = time.monotonic() + timeout_seconds
        for hierarchy in hierarchies:
            parent = hierarchy / self.parent
            if parent.is_dir():
                for child in [entry for entry in parent.iterdir() if entry.is_dir()]:
                    self._remove_tree(child, deadline)
        self.remove_parent()

    def remove_parent(self) -> None:
        """Remove the (empty) parent of all pod cgroups, when the node goes away."""
        hierarchies = [self.root] if self.unified else [
            entry for entry in self.root.iterdir() if entry.is_dir()]
        for hierarchy in hierarchies:
            try:
                os.rmdir(hierarchy / self.parent)
            except FileNotFoundError:
                continue
            except OSError as error:
                raise CgroupError(f"cannot remove {hierarchy / self.parent}: "
                                  f"{error.strerror or error}") from None

    @staticmethod
    def _remove_tree(directory: Path, deadline: float) -> None:
        if not directory.is_dir():
            return
        # cgroup directories can only be removed bottom-up, and only when no process is left.
        for child in [entry for entry in directory.iterdir() if entry.is_dir()]:
            PodCgroups._remove_tree(child, deadline)
        while True:
            try:
                os.rmdir(directory)
                return
            except FileNotFoundError:
                return
            except OSError as error:
                if error.errno != errno.EBUSY or time.monotonic() > deadline:
                    raise CgroupError(f"cannot remove the pod cgroup {directory}: "
                                      f"{error.strerror or error}") from None
                time.sleep(0.05)
