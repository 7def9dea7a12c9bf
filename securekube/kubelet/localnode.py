"""A node on this machine, as `securekube up` runs one: private containerd, test images, kubelet, its API.

Everything lives under the node's directory (DATA_DIR/node): containerd's root, state and socket,
pod logs, Localhost seccomp profiles (seccomp/), and the kubelet's credentials (kubelet/: its
kubeconfig, its serving certificate, and the bootstrap kubeconfig, removed once the node has its
own certificate). The node joins through the real TLS bootstrap and reports address 127.0.0.1.
"""
from __future__ import annotations

import base64
import datetime as dt
import hashlib
import logging
import os
import re
import shutil
import socket
import subprocess
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import yaml

from securekube.api.podlogoptions import PodLogOptions
from securekube.kubelet.agent import AgentConfig, KubeletAgent
from securekube.kubelet.apiclient import ApiClientError, load_kubeconfig
from securekube.kubelet.apparmor import AppArmorHost
from securekube.kubelet.bootstrap import usable
from securekube.kubelet.cgroups import CgroupError, PodCgroups
from securekube.kubelet.containerd import CniNetwork, Containerd, ContainerdConfig
from securekube.kubelet.cri.client import CriClient
from securekube.kubelet.crilog import ContainerLogStream
from securekube.kubelet.images import DEFAULT_BUSYBOX, import_archive, write_test_images
from securekube.kubelet.pod_worker import LogUnavailable
from securekube.kubelet.runtime import PodRuntime, RuntimeConfig
from securekube.kubelet.security import NodeSecurity
from securekube.kubelet.server import KubeletServer, KubeletServerConfig, sar_authorizer
from securekube.pki import files
from securekube.pki.kubelet_certs import issue_kubelet_serving
from securekube.pki.profiles import load_profiles

log = logging.getLogger("securekube.kubelet")
NODE_ADDRESS = "127.0.0.1"
_NODE_NAME = re.compile(r"[a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?")


def missing_parts(busybox: Path = DEFAULT_BUSYBOX, cni_dir: Path = CniNetwork().plugin_dir) -> list[str]:
    """Why no node can run here (empty: it can): root, containerd, ctr, runc, busybox-static, CNI plugins."""
    reasons = []
    if os.geteuid() != 0:
        reasons.append("running containers needs root")
    for binary, package in (("containerd", "containerd"), ("ctr", "containerd"), ("runc", "runc")):
        if shutil.which(binary) is None:
            reasons.append(f"{binary} is not installed (Debian package {package})")
    if not busybox.is_file():
        reasons.append(f"{busybox} is missing (Debian package busybox-static)")
    if not (cni_dir / "bridge").exists():
        reasons.append(f"no CNI plugins in {cni_dir} (Debian package containernetworking-plugins)")
    return reasons


def valid_node_name(name: str) -> bool:
    """Whether `name` can name a node (a lower-case DNS subdomain)."""
    return bool(_NODE_NAME.fullmatch(name))


def default_node_name() -> str:
    """This machine's host name as a node name (a lower-case DNS subdomain), or "securekube-node"."""
    name = socket.gethostname().lower().rstrip(".")
    return name if valid_node_name(name) else "securekube-node"


@dataclass(frozen=True)
class LocalNodeConfig:
    """One local node: where it lives, the cluster it joins, and its kubelet API port (0: any free port)."""

    base_dir: Path
    pki_dir: Path  # the cluster's PKI (the CA issues the kubelet's serving certificate)
    server_url: str
    node_name: str
    kubelet_port: int = 10250


@dataclass(frozen=True)
class NodePaths:
    """The files of a local node under its base directory."""

    base: Path

    @property
    def kubelet(self) -> Path:
        return self.base / "kubelet"

    @property
    def kubeconfig(self) -> Path:
        return self.kubelet / "kubeconfig"

    @property
    def bootstrap_kubeconfig(self) -> Path:
        return self.kubelet / "bootstrap-kubeconfig"

    @property
    def serving_cert(self) -> Path:
        return self.kubelet / "kubelet.crt"

    @property
    def serving_key(self) -> Path:
        return self.kubelet / "kubelet.key"


def _network_for(base: Path) -> tuple[CniNetwork, str]:
    """A bridge, subnet and cgroup parent of this node's own, so nodes of several data dirs can coexist."""
    digest = hashlib.sha256(str(base.resolve()).encode()).hexdigest()
    suffix = digest[:6]
    return (CniNetwork(name=f"securekube-{suffix}", bridge=f"sk{suffix}",
                       subnet=f"10.199.{int(digest[6:10], 16) % 250}.0/24"), f"securekube-{suffix}")


class LocalNode:
    """Starts and stops the parts of a local node, in order; `start()` raises if one cannot start."""

    def __init__(self, config: LocalNodeConfig, report: Callable[[str], None] = lambda message: None) -> None:
        self.config = config
        self.paths = NodePaths(config.base_dir)
        self._report = report
        network, cgroup_parent = _network_for(config.base_dir)
        self._network = network
        self._containerd = Containerd(ContainerdConfig(base_dir=config.base_dir / "containerd", network=network))
        self._cgroups = PodCgroups(parent=cgroup_parent)
        self._cri: CriClient | None = None
        self._server: KubeletServer | None = None
        self.agent: KubeletAgent | None = None

    def needs_bootstrap(self) -> bool:
        """Whether the node has no usable client certificate yet (so it needs a bootstrap token)."""
        if not self.paths.kubeconfig.exists():
            return True
        try:
            return not usable(load_kubeconfig(self.paths.kubeconfig), self.config.node_name,
                              dt.datetime.now(dt.timezone.utc))
        except ApiClientError:  # an unreadable kubeconfig is replaced through the bootstrap
            return True

    def write_bootstrap_kubeconfig(self, token: str, ca_pem: bytes) -> None:
        """The kubeconfig the kubelet joins with: the cluster CA and the bootstrap token (0600)."""
        files.ensure_directory(self.paths.kubelet)
        document = {
            "apiVersion": "v1", "kind": "Config",
            "clusters": [{"name": "securekube", "cluster": {
                "server": self.config.server_url,
                "certificate-authority-data": base64.b64encode(ca_pem).decode("ascii")}}],
            "users": [{"name": "kubelet-bootstrap", "user": {"token": token}}],
            "contexts": [{"name": "kubelet-bootstrap@securekube",
                          "context": {"cluster": "securekube", "user": "kubelet-bootstrap"}}],
            "current-context": "kubelet-bootstrap@securekube",
        }
        files.replace(self.paths.bootstrap_kubeconfig, yaml.safe_dump(document, sort_keys=False).encode(),
                      files.PRIVATE_MODE)

    def start(self) -> None:
        config = self.config
        # Pod logs, seccomp profiles and the kubelet's credentials live here: root only.
        files.ensure_directory(config.base_dir)
        os.chmod(config.base_dir, 0o700)
        self._containerd.start()
        self._report(f"node: containerd running in {self._containerd.paths.base} "
                     f"(snapshotter {self._containerd.snapshotter})")
        archive = write_test_images(config.base_dir / "test-images.tar")
        import_archive(archive, self._containerd.socket_path, self._containerd.snapshotter)
        self._report("node: test images imported (pause, busybox, busybox:nonroot)")
        seccomp_root = config.base_dir / "seccomp"
        files.ensure_directory(seccomp_root)
        issue_kubelet_serving(config.pki_dir, load_profiles(), config.node_name, (NODE_ADDRESS,),
                              self.paths.serving_cert, self.paths.serving_key)
        self._cri = CriClient(self._containerd.socket_path)
        systemd = self._containerd.systemd_cgroup
        runtime = PodRuntime(self._cri, RuntimeConfig(
            log_root=config.base_dir / "pods",
            node_security=NodeSecurity(seccomp_root=seccomp_root, apparmor=AppArmorHost()),
            pod_pids_limit=None if systemd else 4096, cgroups=None if systemd else self._cgroups,
            registry_config_dir=self._containerd.paths.registry_config_dir))
        server_config = KubeletServerConfig(node_name=config.node_name, cert_file=self.paths.serving_cert,
                                            key_file=self.paths.serving_key,
                                            client_ca_file=config.pki_dir / "ca.crt", host=NODE_ADDRESS,
                                            port=config.kubelet_port)
        # The kubelet API authorizes with the node's own client, which exists only after the bootstrap:
        # bind first (so the port is known for the Node status), authorize through the agent once it has joined.
        self._server = KubeletServer(server_config, self._authorize, self._logs)
        self._server.start()
        bootstrap = self.paths.bootstrap_kubeconfig if self.paths.bootstrap_kubeconfig.exists() else None
        self.agent = KubeletAgent(AgentConfig(node_name=config.node_name, address=NODE_ADDRESS,
                                              kubelet_port=self._server.port, kubeconfig=self.paths.kubeconfig,
                                              bootstrap_kubeconfig=bootstrap), runtime, self._cri)
        self.agent.start()
        # The token did its job; the node renews its certificate as itself from now on.
        self.paths.bootstrap_kubeconfig.unlink(missing_ok=True)
        self._report(f"node: {config.node_name} joined as system:node:{config.node_name}; kubelet API on "
                     f"https://{NODE_ADDRESS}:{self._server.port}")

    def _authorize(self, user: str, groups: tuple[str, ...], verb: str, subresource: str) -> tuple[bool, str]:
        if self.agent is None:
            return False, "the node has not joined yet"
        return sar_authorizer(self.agent.client, self.config.node_name)(user, groups, verb, subresource)

    def _logs(self, namespace: str, pod: str, container: str, options: PodLogOptions) -> ContainerLogStream:
        if self.agent is None:
            raise LogUnavailable(503, "the node has not joined yet")
        return self.agent.container_logs(namespace, pod, container, options)

    def stop_agent(self) -> None:
        """Stops the kubelet agent (its watches and pod workers); the pods keep running."""
        if self.agent is not None:
            self.agent.stop()

    def stop(self) -> None:
        """Stops the kubelet, its API, and containerd (which stops and removes every pod first)."""
        self.stop_agent()
        if self._server is not None:
            self._server.stop()
        if self._cri is not None:
            self._cri.close()
        self._containerd.stop()
        # No pod is left on the bridge; CNI creates it again for the next run's first pod.
        if Path("/sys/class/net", self._network.bridge).exists():
            subprocess.run(["ip", "link", "delete", self._network.bridge], capture_output=True, timeout=10, check=False)
        try:
            self._cgroups.remove_all()
        except CgroupError as exc:  # a leftover empty cgroup harms nothing; say so and go on
            log.warning("node: %s", exc)
