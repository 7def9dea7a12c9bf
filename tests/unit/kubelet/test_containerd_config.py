"""The private containerd's configuration keeps everything under the node directory, fail-closed."""
from __future__ import annotations

import tomllib
from pathlib import Path
from typing import Any

import pytest

from securekube.kubelet.containerd import (
    CniNetwork,
    Containerd,
    ContainerdConfig,
    ContainerdError,
    ContainerdPaths,
    cni_conflist,
    containerd_toml,
)
from securekube.kubelet.images import PAUSE_IMAGE

CRI = "io.containerd.grpc.v1.cri"


def render(tmp_path: Path, systemd: bool = False, restrict_oom: bool = False) -> dict[str, Any]:
    config = ContainerdConfig(base_dir=tmp_path, network=CniNetwork(bridge="sk-test", subnet="10.199.7.0/24"))
    text = containerd_toml(config, ContainerdPaths(tmp_path), "overlayfs", systemd, "/usr/sbin/runc",
                           restrict_oom_score_adj=restrict_oom)
    return tomllib.loads(text)


def test_every_path_is_under_the_node_directory(tmp_path: Path) -> None:
    document = render(tmp_path)
    cri = document["plugins"][CRI]
    runc = cri["containerd"]["runtimes"]["runc"]
    paths = [document["root"], document["state"], document["grpc"]["address"],
             cri["cni"]["conf_dir"], cri["registry"]["config_path"], runc["options"]["Root"]]
    assert all(path.startswith(str(tmp_path) + "/") for path in paths)
    assert document["debug"]["address"] == "" and document["metrics"]["address"] == ""


def test_cri_plugin_is_required_and_fail_closed(tmp_path: Path) -> None:
    document = render(tmp_path)
    cri = document["plugins"][CRI]
    assert document["version"] == 2
    assert document["required_plugins"] == [CRI]
    assert cri["sandbox_image"] == PAUSE_IMAGE
    assert cri["enable_unprivileged_ports"] is False
    assert cri["enable_unprivileged_icmp"] is False
    assert cri["unset_seccomp_profile"] == "runtime/default"
    assert cri["containerd"]["snapshotter"] == "overlayfs"
    assert cri["cni"]["bin_dir"] == "/usr/lib/cni"


@pytest.mark.parametrize(("systemd", "restrict"), [(False, False), (True, True)])
def test_host_dependent_settings(tmp_path: Path, systemd: bool, restrict: bool) -> None:
    cri = render(tmp_path, systemd=systemd, restrict_oom=restrict)["plugins"][CRI]
    runc = cri["containerd"]["runtimes"]["runc"]
    assert runc["runtime_type"] == "io.containerd.runc.v2"
    assert runc["options"]["SystemdCgroup"] is systemd
    assert runc["options"]["BinaryName"] == "/usr/sbin/runc"
    assert cri["restrict_oom_score_adj"] is restrict


def test_pod_network_is_a_private_bridge_without_gateway_or_masquerade(tmp_path: Path) -> None:
    conflist = cni_conflist(CniNetwork(bridge="sk-test", subnet="10.199.7.0/24"), tmp_path / "ipam")
    (bridge,) = conflist["plugins"]  # type: ignore[misc]
    assert bridge["type"] == "bridge" and bridge["bridge"] == "sk-test"
    assert bridge["isGateway"] is False and bridge["ipMasq"] is False
    assert bridge["ipam"]["ranges"] == [[{"subnet": "10.199.7.0/24"}]]
    assert bridge["ipam"]["dataDir"] == str(tmp_path / "ipam")


def test_too_long_socket_path_is_refused_before_starting(tmp_path: Path) -> None:
    deep = tmp_path / ("d" * 120)
    with pytest.raises(ContainerdError, match="socket path is too long"):
        Containerd(ContainerdConfig(base_dir=deep)).start()
