"""Pod cgroups carry the pids limit on cgroup v1 and v2 and are removed with the pod."""
from __future__ import annotations

from pathlib import Path

import pytest

from securekube.kubelet.cgroups import CgroupError, PodCgroups

UID = "0e1f-22"


@pytest.fixture
def v1_root(tmp_path: Path) -> Path:
    for controller in ("pids", "memory", "cpu"):
        (tmp_path / controller).mkdir()
    return tmp_path


def test_v1_limit_is_written_to_the_pids_hierarchy(v1_root: Path) -> None:
    cgroups = PodCgroups(root=v1_root, parent="sk")
    assert cgroups.create(UID, 100) == "/sk/pod0e1f_22"
    assert (v1_root / "pids" / "sk" / "pod0e1f_22" / "pids.max").read_text() == "100"


def test_v2_limit_and_controller_delegation(tmp_path: Path) -> None:
    (tmp_path / "cgroup.controllers").write_text("cpu memory pids")
    cgroups = PodCgroups(root=tmp_path, parent="sk")
    cgroups.create(UID, None)
    assert (tmp_path / "sk" / "pod0e1f_22" / "pids.max").read_text() == "max"
    assert "+pids" in (tmp_path / "sk" / "cgroup.subtree_control").read_text()


def test_remove_clears_the_pod_from_every_hierarchy(v1_root: Path) -> None:
    cgroups = PodCgroups(root=v1_root, parent="sk")
    cgroups.create(UID, 100)
    (v1_root / "pids" / "sk" / "pod0e1f_22" / "pids.max").unlink()  # cgroupfs files vanish with rmdir
    (v1_root / "memory" / "sk" / "pod0e1f_22" / "container1").mkdir(parents=True)  # made by runc
    cgroups.remove(UID)
    assert not (v1_root / "pids" / "sk" / "pod0e1f_22").exists()
    assert not (v1_root / "memory" / "sk" / "pod0e1f_22").exists()
    cgroups.remove(UID)  # idempotent
    cgroups.remove_parent()
    assert not any((v1_root / controller / "sk").exists() for controller in ("pids", "memory", "cpu"))


@pytest.mark.parametrize("uid", ["../../etc", "a/b", ""])
def test_pod_uids_cannot_escape_the_parent(v1_root: Path, uid: str) -> None:
    with pytest.raises(CgroupError, match="cannot name a cgroup"):
        PodCgroups(root=v1_root).create(uid, 10)


def test_unwritable_hierarchy_is_an_error(tmp_path: Path) -> None:
    (tmp_path / "pids").write_text("not a cgroup hierarchy")
    with pytest.raises(CgroupError, match="cannot create the pod cgroup"):
        PodCgroups(root=tmp_path, parent="sk").create(UID, 10)
