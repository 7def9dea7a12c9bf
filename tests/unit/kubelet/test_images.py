"""The busybox OCI image layout archive is well-formed and says what the node relies on."""
from __future__ import annotations

import hashlib
import io
import json
import tarfile
from pathlib import Path
from typing import Any

import pytest

from securekube.kubelet.images import (
    APPLETS,
    BUSYBOX_IMAGE,
    NONROOT_IMAGE,
    PAUSE_IMAGE,
    TEST_IMAGES,
    busybox_layer,
    oci_architecture,
    oci_layout_archive,
    write_test_images,
)

FAKE_BUSYBOX = b"\x7fELF pretend busybox"


@pytest.fixture
def busybox(tmp_path: Path) -> Path:
    path = tmp_path / "busybox"
    path.write_bytes(FAKE_BUSYBOX)
    return path


@pytest.fixture
def archive(busybox: Path) -> dict[str, bytes]:
    data = oci_layout_archive(TEST_IMAGES, busybox_layer(busybox), architecture="amd64")
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        return {member.name: tar.extractfile(member).read()  # type: ignore[union-attr]
                for member in tar.getmembers() if member.isfile()}


def blob(archive: dict[str, bytes], descriptor: dict[str, Any]) -> bytes:
    algorithm, digest = descriptor["digest"].split(":")
    data = archive[f"blobs/{algorithm}/{digest}"]
    assert len(data) == descriptor["size"]
    return data


def manifests_by_name(archive: dict[str, bytes]) -> dict[str, dict[str, Any]]:
    index = json.loads(archive["index.json"])
    return {entry["annotations"]["io.containerd.image.name"]: entry for entry in index["manifests"]}


def image_config(archive: dict[str, bytes], name: str) -> dict[str, Any]:
    manifest = json.loads(blob(archive, manifests_by_name(archive)[name]))
    return json.loads(blob(archive, manifest["config"]))


def test_layout_marker_and_index(archive: dict[str, bytes]) -> None:
    assert json.loads(archive["oci-layout"]) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads(archive["index.json"])
    assert index["schemaVersion"] == 2
    assert index["mediaType"] == "application/vnd.oci.image.index.v1+json"
    by_name = manifests_by_name(archive)
    assert set(by_name) == {BUSYBOX_IMAGE, NONROOT_IMAGE, PAUSE_IMAGE}
    for name, entry in by_name.items():
        assert entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
        assert entry["platform"] == {"architecture": "amd64", "os": "linux"}
        assert entry["annotations"]["org.opencontainers.image.ref.name"] == name.rsplit(":", 1)[1]


def test_every_blob_is_content_addressed(archive: dict[str, bytes]) -> None:
    blobs = {name: data for name, data in archive.items() if name.startswith("blobs/")}
    assert blobs
    for name, data in blobs.items():
        assert name == f"blobs/sha256/{hashlib.sha256(data).hexdigest()}"


def test_manifests_chain_to_config_and_layer(archive: dict[str, bytes]) -> None:
    for name in (BUSYBOX_IMAGE, NONROOT_IMAGE, PAUSE_IMAGE):
        manifest = json.loads(blob(archive, manifests_by_name(archive)[name]))
        assert manifest["schemaVersion"] == 2
        assert manifest["config"]["mediaType"] == "application/vnd.oci.image.config.v1+json"
        (layer,) = manifest["layers"]
        assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar"
        config = json.loads(blob(archive, manifest["config"]))
        # An uncompressed layer's diff ID is its own digest.
        assert config["rootfs"] == {"type": "layers", "diff_ids": [layer["digest"]]}
        assert (config["architecture"], config["os"]) == ("amd64", "linux")
        blob(archive, layer)


def test_layer_is_a_busybox_root_filesystem(archive: dict[str, bytes]) -> None:
    manifest = json.loads(blob(archive, manifests_by_name(archive)[BUSYBOX_IMAGE]))
    layer = blob(archive, manifest["layers"][0])
    with tarfile.open(fileobj=io.BytesIO(layer)) as tar:
        members = {member.name: member for member in tar.getmembers()}
        binary = members["bin/busybox"]
        assert binary.isfile() and binary.mode == 0o755 and (binary.uid, binary.gid) == (0, 0)
        assert tar.extractfile(binary).read() == FAKE_BUSYBOX  # type: ignore[union-attr]
        for applet in ("sh", "sleep", "cat", "echo", "mkdir", "chown", "unshare", "mount", "id",
                       "touch", "ls", "swapon"):
            assert members[f"bin/{applet}"].issym()
            assert members[f"bin/{applet}"].linkname == "busybox"
        assert len(APPLETS) == len(set(APPLETS))
        assert members["tmp"].isdir() and members["tmp"].mode == 0o1777
        passwd = tar.extractfile(members["etc/passwd"]).read().decode()  # type: ignore[union-attr]
    assert "nobody:x:65534:65534:" in passwd
    assert all(member.mtime == 0 for member in members.values())


def test_image_configs_set_user_and_entrypoint(archive: dict[str, bytes]) -> None:
    root = image_config(archive, BUSYBOX_IMAGE)["config"]
    assert "User" not in root and root["Cmd"] == ["sh"]
    assert image_config(archive, NONROOT_IMAGE)["config"]["User"] == "65534"
    pause = image_config(archive, PAUSE_IMAGE)["config"]
    assert pause["Entrypoint"][:2] == ["/bin/sh", "-c"]
    assert 'trap "exit 0" TERM' in pause["Entrypoint"][2]
    assert "Cmd" not in pause


def test_archive_is_reproducible(busybox: Path, tmp_path: Path) -> None:
    first = write_test_images(tmp_path / "a.tar", busybox).read_bytes()
    second = write_test_images(tmp_path / "b.tar", busybox).read_bytes()
    assert first == second


def test_missing_busybox_says_which_package(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError, match="busybox-static"):
        write_test_images(tmp_path / "images.tar", tmp_path / "no-busybox")


@pytest.mark.parametrize(("machine", "architecture"), [("x86_64", "amd64"), ("aarch64", "arm64")])
def test_architecture_names_follow_oci(machine: str, architecture: str) -> None:
    assert oci_architecture(machine) == architecture


def test_unknown_architecture_is_refused() -> None:
    with pytest.raises(ValueError, match="unsupported machine architecture"):
        oci_architecture("pdp11")
