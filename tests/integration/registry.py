"""A real image registry for tests: Debian's docker-registry (CNCF distribution 2.8) on loopback over TLS,
and a small OCI distribution-spec pusher that uploads an image from an OCI image layout archive.

The registry runs with filesystem storage in a test directory, no authentication and a serving
certificate for 127.0.0.1 from a CA the test makes, so what a client trusts is exactly that CA;
without a certificate it serves plain HTTP (to show that nothing falls back to it).
"""
from __future__ import annotations

import io
import json
import secrets
import shutil
import ssl
import subprocess
import tarfile
import time
from dataclasses import dataclass
from pathlib import Path

import httpx
import yaml

from securekube.kubelet.images import ANNOTATION_CONTAINERD_NAME, MEDIA_MANIFEST

REGISTRY_BINARY = "docker-registry"
READY_TIMEOUT_SECONDS = 15.0


@dataclass(frozen=True)
class OciImage:
    """One image of an OCI layout: its manifest and the blobs (config and layers) it names."""

    manifest: bytes
    blobs: dict[str, bytes]  # digest -> content


def image_from_layout(archive: bytes, name: str) -> OciImage:
    """The image called `name` (containerd's name annotation) in an OCI image layout tar archive."""
    with tarfile.open(fileobj=io.BytesIO(archive)) as tar:
        def read(member: str) -> bytes:
            extracted = tar.extractfile(member)
            if extracted is None:
                raise KeyError(member)
            return extracted.read()

        index = json.loads(read("index.json"))
        found = [m for m in index["manifests"] if m.get("annotations", {}).get(ANNOTATION_CONTAINERD_NAME) == name]
        if len(found) != 1:
            raise KeyError(f"{name} is not in the layout")
        manifest = read(f"blobs/sha256/{found[0]['digest'].removeprefix('sha256:')}")
        document = json.loads(manifest)
        digests = [document["config"]["digest"], *(layer["digest"] for layer in document["layers"])]
        return OciImage(manifest, {d: read(f"blobs/sha256/{d.removeprefix('sha256:')}") for d in digests})


def push_image(client: httpx.Client, repository: str, tag: str, image: OciImage) -> None:
    """Push `image` as REPOSITORY:TAG with the distribution spec's monolithic upload (POST, then PUT
    with the digest), blobs first, then the manifest (a registry refuses one whose blobs it lacks)."""
    for digest, content in image.blobs.items():
        if client.head(f"/v2/{repository}/blobs/{digest}").status_code == 200:
            continue
        started = client.post(f"/v2/{repository}/blobs/uploads/")
        if started.status_code != 202:
            raise RuntimeError(f"blob upload not accepted: {started.status_code} {started.text}")
        # Location may be absolute or relative, and may already carry a query (distribution's _state).
        location = httpx.URL(started.headers["Location"])
        location = client.base_url.join(location) if location.is_relative_url else location
        finished = client.put(location.copy_merge_params({"digest": digest}), content=content,
                              headers={"Content-Type": "application/octet-stream"})
        if finished.status_code != 201:
            raise RuntimeError(f"blob {digest} not stored: {finished.status_code} {finished.text}")
    stored = client.put(f"/v2/{repository}/manifests/{tag}", content=image.manifest,
                        headers={"Content-Type": MEDIA_MANIFEST})
    if stored.status_code != 201:
        raise RuntimeError(f"manifest not stored: {stored.status_code} {stored.text}")


@dataclass
class Registry:
    """A docker-registry process serving HTTPS (plain HTTP without a certificate) on 127.0.0.1:`port`."""

    directory: Path
    port: int
    cert_file: str | None = None
    key_file: str | None = None
    ca_file: str | None = None
    process: subprocess.Popen[bytes] | None = None

    @property
    def host(self) -> str:
        """The registry host as image names carry it (HOST:PORT)."""
        return f"127.0.0.1:{self.port}"

    @property
    def log_path(self) -> Path:
        return self.directory / "registry.log"

    @property
    def url(self) -> str:
        return f"{'https' if self.cert_file else 'http'}://{self.host}"

    def config(self) -> dict[str, object]:
        http: dict[str, object] = {"addr": self.host, "secret": secrets.token_hex(16)}
        if self.cert_file:
            http["tls"] = {"certificate": self.cert_file, "key": self.key_file}
        return {
            "version": 0.1,
            "log": {"level": "info", "accesslog": {"disabled": False}},
            "storage": {"filesystem": {"rootdirectory": str(self.directory / "storage")}},
            "http": http,
        }

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def start(self) -> Registry:
        binary = shutil.which(REGISTRY_BINARY)
        if binary is None:
            raise FileNotFoundError(f"{REGISTRY_BINARY} is not installed (Debian package docker-registry)")
        self.directory.mkdir(parents=True, exist_ok=True)
        config_file = self.directory / "config.yml"
        config_file.write_text(yaml.safe_dump(self.config()))
        with open(self.log_path, "ab") as log:
            self.process = subprocess.Popen([binary, "serve", str(config_file)], stdin=subprocess.DEVNULL,
                                            stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + READY_TIMEOUT_SECONDS
        with self.client() as client:
            while time.monotonic() < deadline:
                if self.process.poll() is not None:
                    raise RuntimeError(f"docker-registry exited early:\n{self.log()}")
                try:
                    if client.get("/v2/").status_code == 200:
                        return self
                except httpx.TransportError:
                    pass
                time.sleep(0.05)
        self.stop()
        raise RuntimeError(f"docker-registry did not answer in time:\n{self.log()}")

    def client(self) -> httpx.Client:
        """A client for this registry that trusts its CA and nothing else."""
        verify = ssl.create_default_context(cafile=self.ca_file) if self.ca_file else False
        return httpx.Client(base_url=self.url, verify=verify, timeout=30)

    def push(self, repository: str, tag: str, image: OciImage) -> None:
        with self.client() as client:
            push_image(client, repository, tag, image)

    def stop(self) -> None:
        if self.process is None or self.process.poll() is not None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=10)
