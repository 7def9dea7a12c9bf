"""Tiny OCI images built from the host's static busybox, and their import into containerd.

No image registry is reachable from a lab machine, so the node's sandbox ("pause") image and the
test images are written here as an OCI image layout archive (image-spec v1: `oci-layout`,
`index.json`, content-addressed `blobs/sha256/...`) from Debian's busybox-static, then imported
into containerd's CRI namespace with `ctr images import`. The archive is byte-for-byte
reproducible (fixed timestamps and owners), so the same busybox always gives the same digests.
"""
from __future__ import annotations

import hashlib
import io
import json
import platform
import shutil
import subprocess
import tarfile
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

BUSYBOX_IMAGE = "localhost/securekube/busybox:test"
NONROOT_IMAGE = "localhost/securekube/busybox:nonroot"
PAUSE_IMAGE = "localhost/securekube/pause:1"
NOBODY_UID = 65534

DEFAULT_BUSYBOX = Path("/bin/busybox")
# containerd's CRI plugin only sees images in this containerd namespace.
CRI_NAMESPACE = "k8s.io"

MEDIA_INDEX = "application/vnd.oci.image.index.v1+json"
MEDIA_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
MEDIA_CONFIG = "application/vnd.oci.image.config.v1+json"
MEDIA_LAYER = "application/vnd.oci.image.layer.v1.tar"
# containerd takes the full image name from this annotation; the OCI ref.name is only the tag.
ANNOTATION_CONTAINERD_NAME = "io.containerd.image.name"
ANNOTATION_REF_NAME = "org.opencontainers.image.ref.name"

# The applets the tests and a shell user need; each is a symlink to /bin/busybox.
APPLETS = (
    "sh", "ash", "cat", "chmod", "chown", "cp", "date", "dd", "echo", "env", "false", "grep",
    "head", "hostname", "id", "kill", "ln", "ls", "mkdir", "mount", "mv", "nsenter", "pivot_root",
    "printf", "ps", "pwd", "readlink", "rm", "rmdir", "sed", "setpriv", "sleep", "stat", "swapon",
    "tail", "test", "touch", "true", "umount", "uname", "unshare", "wc", "whoami", "[",
)
_PATH_ENV = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
_EPOCH = "1970-01-01T00:00:00Z"
# A pause process: sleeps, reaps what it started, and exits 0 on SIGTERM (not after a grace period).
_PAUSE_SCRIPT = 'trap "exit 0" TERM INT; while :; do sleep 3600 & wait; done'


@dataclass(frozen=True)
class ImageDefinition:
    """One image to build on the busybox layer: its name and OCI config fields."""

    name: str
    entrypoint: tuple[str, ...] = ()
    cmd: tuple[str, ...] = ("sh",)
    user: str | None = None


TEST_IMAGES = (
    ImageDefinition(BUSYBOX_IMAGE),  # no User: runs as root, as an image without one does
    ImageDefinition(NONROOT_IMAGE, user=str(NOBODY_UID)),
    ImageDefinition(PAUSE_IMAGE, entrypoint=("/bin/sh", "-c", _PAUSE_SCRIPT), cmd=()),
)


@dataclass(frozen=True)
class Blob:
    """A content-addressed blob of an OCI layout."""

    media_type: str
    data: bytes

    @property
    def digest(self) -> str:
        return "sha256:" + hashlib.sha256(self.data).hexdigest()

    def descriptor(self, **extra: object) -> dict[str, object]:
        return {"mediaType": self.media_type, "digest": self.digest, "size": len(self.data), **extra}


def oci_architecture(machine: str | None = None) -> str:
    """The OCI/Go architecture name for this machine (x86_64 → amd64, aarch64 → arm64)."""
    machine = machine or platform.machine()
    names = {"x86_64": "amd64", "aarch64": "arm64", "armv7l": "arm", "i686": "386",
             "ppc64le": "ppc64le", "s390x": "s390x", "riscv64": "riscv64"}
    if machine not in names:
        raise ValueError(f"unsupported machine architecture {machine!r}")
    return names[machine]


def _canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def _tar_entry(name: str, kind: bytes, mode: int, size: int = 0, link: str = "") -> tarfile.TarInfo:
    info = tarfile.TarInfo(name)
    info.type, info.mode, info.size, info.linkname = kind, mode, size, link
    info.mtime, info.uid, info.gid, info.uname, info.gname = 0, 0, 0, "root", "root"
    return info


def busybox_layer(busybox: Path = DEFAULT_BUSYBOX) -> bytes:
    """The single image layer: a minimal root filesystem around a static busybox."""
    binary = busybox.read_bytes()
    passwd = b"root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n"
    group = b"root:x:0:\nnogroup:x:65534:\n"
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        for directory, mode in (("bin", 0o755), ("dev", 0o755), ("etc", 0o755), ("proc", 0o555),
                                ("root", 0o700), ("sys", 0o555), ("tmp", 0o1777)):
            tar.addfile(_tar_entry(directory, tarfile.DIRTYPE, mode))
        tar.addfile(_tar_entry("bin/busybox", tarfile.REGTYPE, 0o755, len(binary)), io.BytesIO(binary))
        for applet in APPLETS:
            tar.addfile(_tar_entry(f"bin/{applet}", tarfile.SYMTYPE, 0o777, link="busybox"))
        for name, content in (("etc/passwd", passwd), ("etc/group", group)):
            tar.addfile(_tar_entry(name, tarfile.REGTYPE, 0o644, len(content)), io.BytesIO(content))
    return buffer.getvalue()


def _image_config(definition: ImageDefinition, layer: Blob, architecture: str) -> Blob:
    config: dict[str, object] = {"Env": [_PATH_ENV], "WorkingDir": "/"}
    if definition.entrypoint:
        config["Entrypoint"] = list(definition.entrypoint)
    if definition.cmd:
        config["Cmd"] = list(definition.cmd)
    if definition.user is not None:
        config["User"] = definition.user
    document = {
        "created": _EPOCH,
        "architecture": architecture,
        "os": "linux",
        "config": config,
        # The diff ID is the digest of the uncompressed layer, which this layer already is.
        "rootfs": {"type": "layers", "diff_ids": [layer.digest]},
        "history": [{"created": _EPOCH, "created_by": "securekube: busybox-static root filesystem"}],
    }
    return Blob(MEDIA_CONFIG, _canonical_json(document))


def oci_layout_archive(definitions: Sequence[ImageDefinition], layer_tar: bytes,
                       architecture: str | None = None) -> bytes:
    """An OCI image layout, as a tar archive, holding one image per definition (sharing the layer)."""
    architecture = architecture or oci_architecture()
    layer = Blob(MEDIA_LAYER, layer_tar)
    blobs: dict[str, Blob] = {layer.digest: layer}
    manifests = []
    for definition in definitions:
        config = _image_config(definition, layer, architecture)
        manifest = Blob(MEDIA_MANIFEST, _canonical_json({
            "schemaVersion": 2,
            "mediaType": MEDIA_MANIFEST,
            "config": config.descriptor(),
            "layers": [layer.descriptor()],
        }))
        blobs[config.digest] = config
        blobs[manifest.digest] = manifest
        manifests.append(manifest.descriptor(
            platform={"architecture": architecture, "os": "linux"},
            annotations={ANNOTATION_CONTAINERD_NAME: definition.name,
                         ANNOTATION_REF_NAME: definition.name.rsplit(":", 1)[1]},
        ))
    index = {"schemaVersion": 2, "mediaType": MEDIA_INDEX, "manifests": manifests}

    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as tar:
        def add(name: str, data: bytes) -> None:
            tar.addfile(_tar_entry(name, tarfile.REGTYPE, 0o644, len(data)), io.BytesIO(data))

        add("oci-layout", _canonical_json({"imageLayoutVersion": "1.0.0"}))
        add("index.json", _canonical_json(index))
        for digest in sorted(blobs):
            add(f"blobs/sha256/{digest.removeprefix('sha256:')}", blobs[digest].data)
    return buffer.getvalue()


def write_test_images(path: Path, busybox: Path = DEFAULT_BUSYBOX) -> Path:
    """Write the archive with the pause, root and non-root busybox images to `path`."""
    if not busybox.is_file():
        raise FileNotFoundError(f"{busybox} not found (Debian: apt-get install busybox-static)")
    path.write_bytes(oci_layout_archive(TEST_IMAGES, busybox_layer(busybox)))
    return path


def import_archive(archive: Path, containerd_socket: Path, snapshotter: str,
                   ctr_binary: str = "ctr", timeout_seconds: float = 60.0) -> None:
    """Import an OCI/docker archive into containerd's CRI namespace and unpack it for `snapshotter`."""
    ctr = shutil.which(ctr_binary)
    if ctr is None:
        raise FileNotFoundError("ctr not found (it ships with containerd)")
    result = subprocess.run(
        [ctr, "--address", str(containerd_socket), "--namespace", CRI_NAMESPACE,
         "images", "import", "--snapshotter", snapshotter, str(archive)],
        capture_output=True, text=True, timeout=timeout_seconds, check=False,
    )
    if result.returncode != 0:
        detail = (result.stderr or result.stdout).strip()
        raise RuntimeError(f"ctr images import of {archive.name} failed: {detail}")
