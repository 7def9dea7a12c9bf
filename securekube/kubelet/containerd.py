"""A private containerd for one node: its own config, root, state, socket and CNI network.

securekube never uses the host's containerd (/run/containerd/containerd.sock): each node gets a
containerd whose every path lives under the node's directory, so a lab cluster cannot see or
disturb containers it did not create, and removing the directory removes the node.

The CRI plugin is configured fail-closed: it is a *required* plugin (containerd refuses to start
without it), a container whose seccomp profile is left unset still gets the runtime default
profile, and unprivileged ports/ICMP stay privileged. Images come from what we import locally
(the sandbox image included) and from registries configured in containerd's documented layout,
`certs.d/<host[:port]>/hosts.toml` (see registries.py): HTTPS with a verified certificate only.
containerd would pull from a loopback registry over plain HTTP by default, so the portless
loopback names are pinned to HTTPS at start, and a hosts.toml that allows plain HTTP or
skip_verify stops the start.
"""
from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from securekube.kubelet.cri.client import CriClient, CriError, CriTimeouts
from securekube.kubelet.images import PAUSE_IMAGE
from securekube.kubelet.registries import PINNED_LOOPBACK_HOSTS, pin_https, registry_config_problems

# AF_UNIX paths are limited to 108 bytes including the NUL; containerd also appends ".ttrpc".
_MAX_SOCKET_PATH = 100


class ContainerdError(RuntimeError):
    """containerd could not be configured, started or stopped."""


@dataclass(frozen=True)
class CniNetwork:
    """The pod network of one node: a Linux bridge with host-local IPAM on a private range.

    The bridge gets no address and is no gateway and nothing is masqueraded, so pod traffic stays
    between the pods' network namespaces on this bridge. The default range is one no cloud,
    container runtime or home router uses by default (containerd's own is 10.88.0.0/16);
    give every node on one machine its own `bridge` and `subnet`.
    """

    name: str = "securekube"
    bridge: str = "skbr0"
    subnet: str = "10.199.0.0/16"
    plugin_dir: Path = Path("/usr/lib/cni")


@dataclass(frozen=True)
class ContainerdConfig:
    """Where a node's containerd keeps everything, and how long we wait for it."""

    base_dir: Path
    sandbox_image: str = PAUSE_IMAGE
    network: CniNetwork = field(default_factory=CniNetwork)
    containerd_binary: str = "containerd"
    runc_binary: str = "runc"
    # None: overlayfs when this filesystem supports it (probed), else native.
    snapshotter: str | None = None
    start_timeout_seconds: float = 20.0
    stop_timeout_seconds: float = 10.0


@dataclass(frozen=True)
class ContainerdPaths:
    """Every path of a node's containerd, all under its base directory."""

    base: Path

    @property
    def config(self) -> Path:
        return self.base / "config.toml"

    @property
    def root(self) -> Path:
        return self.base / "root"

    @property
    def state(self) -> Path:
        return self.base / "state"

    @property
    def socket(self) -> Path:
        return self.base / "containerd.sock"

    @property
    def runc_root(self) -> Path:
        return self.base / "state" / "runc"

    @property
    def cni_conf_dir(self) -> Path:
        return self.base / "cni" / "net.d"

    @property
    def cni_ipam_dir(self) -> Path:
        return self.base / "cni" / "ipam"

    @property
    def registry_config_dir(self) -> Path:
        return self.base / "certs.d"

    @property
    def log(self) -> Path:
        return self.base / "containerd.log"


def systemd_is_init() -> bool:
    """Whether systemd runs this machine (the sd_booted() test), so runc must use its cgroup driver."""
    return Path("/run/systemd/system").is_dir()


_CAP_SYS_RESOURCE = 24


def can_lower_oom_score() -> bool:
    """Whether this process holds CAP_SYS_RESOURCE, needed to give a process a negative oom_score_adj.

    Sandboxed build machines often drop it; runc then fails every sandbox ("failed to update
    /proc/self/oom_score_adj: Permission denied") unless containerd clamps the scores it sets.
    """
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("CapEff:"):
                return bool(int(line.split()[1], 16) >> _CAP_SYS_RESOURCE & 1)
    return False


def overlayfs_works(directory: Path) -> bool:
    """Whether an overlay filesystem can be mounted on `directory`'s filesystem (probed for real).

    containerd's overlayfs snapshotter refuses to load on a filesystem that cannot back an
    overlay (overlay-on-overlay in a container, some network filesystems); probing with a real
    mount is the only reliable test.
    """
    directory.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(prefix=".overlay-probe-", dir=directory) as probe:
        lower, upper, work, merged = (Path(probe) / part for part in ("l", "u", "w", "m"))
        for part in (lower, upper, work, merged):
            part.mkdir()
        options = f"lowerdir={lower},upperdir={upper},workdir={work}"
        mounted = subprocess.run(
            ["mount", "-t", "overlay", "overlay", "-o", options, str(merged)],
            capture_output=True, timeout=10, check=False,
        )
        if mounted.returncode != 0:
            return False
        subprocess.run(["umount", str(merged)], capture_output=True, timeout=10, check=True)
        return True


def cni_conflist(network: CniNetwork, ipam_dir: Path) -> dict[str, object]:
    """The CNI network configuration list for a node's pod network."""
    return {
        "cniVersion": "1.0.0",
        "name": network.name,
        "plugins": [
            {
                "type": "bridge",
                "bridge": network.bridge,
                "isGateway": False,
                "ipMasq": False,
                "hairpinMode": False,
                "ipam": {
                    "type": "host-local",
                    "ranges": [[{"subnet": network.subnet}]],
                    # IP leases live with the node, not in the host's /var/lib/cni.
                    "dataDir": str(ipam_dir),
                },
            }
        ],
    }


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string for everything we write (paths, image names).
    return json.dumps(value)


def containerd_toml(config: ContainerdConfig, paths: ContainerdPaths, snapshotter: str,
                    systemd_cgroup: bool, runc_path: str, restrict_oom_score_adj: bool) -> str:
    """The containerd (config version 2) TOML for a node."""
    cri = '[plugins."io.containerd.grpc.v1.cri"]'
    lines = [
        "version = 2",
        f"root = {_toml_string(str(paths.root))}",
        f"state = {_toml_string(str(paths.state))}",
        'required_plugins = ["io.containerd.grpc.v1.cri"]',
        # Plugins that would touch host paths or probe absent kernel features.
        'disabled_plugins = ["io.containerd.internal.v1.opt", "io.containerd.snapshotter.v1.aufs",'
        ' "io.containerd.snapshotter.v1.btrfs", "io.containerd.snapshotter.v1.zfs",'
        ' "io.containerd.snapshotter.v1.devmapper", "io.containerd.tracing.processor.v1.otlp"]',
        "",
        "[grpc]",
        f"  address = {_toml_string(str(paths.socket))}",
        "  uid = 0",
        "  gid = 0",
        "",
        "[debug]",
        '  address = ""',
        '  level = "info"',
        "",
        "[metrics]",
        '  address = ""',
        "",
        cri,
        f"  sandbox_image = {_toml_string(config.sandbox_image)}",
        "  enable_unprivileged_ports = false",
        "  enable_unprivileged_icmp = false",
        # A container that reaches containerd without a seccomp profile still gets the default one.
        '  unset_seccomp_profile = "runtime/default"',
        # Without CAP_SYS_RESOURCE, clamp containers' OOM scores to containerd's own (see above).
        f"  restrict_oom_score_adj = {'true' if restrict_oom_score_adj else 'false'}",
        "  disable_tcp_service = true",
        '  stream_server_address = "127.0.0.1"',
        '  stream_server_port = "0"',
        "  enable_tls_streaming = false",
        "  netns_mounts_under_state_dir = true",
        "  max_container_log_line_size = 16384",
        "  tolerate_missing_hugetlb_controller = true",
        "",
        f"{cri[:-1]}.containerd]",
        f"  snapshotter = {_toml_string(snapshotter)}",
        '  default_runtime_name = "runc"',
        "",
        f"{cri[:-1]}.containerd.runtimes.runc]",
        '  runtime_type = "io.containerd.runc.v2"',
        "",
        f"{cri[:-1]}.containerd.runtimes.runc.options]",
        f"  BinaryName = {_toml_string(runc_path)}",
        f"  Root = {_toml_string(str(paths.runc_root))}",
        f"  SystemdCgroup = {'true' if systemd_cgroup else 'false'}",
        "",
        f"{cri[:-1]}.cni]",
        f"  bin_dir = {_toml_string(str(config.network.plugin_dir))}",
        f"  conf_dir = {_toml_string(str(paths.cni_conf_dir))}",
        "  max_conf_num = 1",
        "",
        # Registries only through hosts.toml files (no legacy mirrors/configs tables, which
        # containerd refuses beside config_path); registries.py writes and checks them.
        f"{cri[:-1]}.registry]",
        f"  config_path = {_toml_string(str(paths.registry_config_dir))}",
        "",
    ]
    return "\n".join(lines)


class Containerd:
    """A running private containerd for one node; `start()` it, `stop()` it (or use `with`)."""

    def __init__(self, config: ContainerdConfig) -> None:
        self._config = config
        self._paths = ContainerdPaths(config.base_dir.resolve())
        self._process: subprocess.Popen[bytes] | None = None
        self._snapshotter: str | None = None

    @property
    def socket_path(self) -> Path:
        return self._paths.socket

    @property
    def paths(self) -> ContainerdPaths:
        return self._paths

    @property
    def systemd_cgroup(self) -> bool:
        """Whether runc uses the systemd cgroup driver here; pod cgroups (and with them pod pids
        limits, see cgroups.py) need the cgroupfs driver, so a systemd host runs without them."""
        return systemd_is_init()

    @property
    def snapshotter(self) -> str:
        if self._snapshotter is None:
            raise ContainerdError("containerd has not been started")
        return self._snapshotter

    def __enter__(self) -> Containerd:
        self.start()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    def start(self) -> None:
        """Write the config and start containerd; returns when its socket answers, or raises."""
        if self._process is not None:
            raise ContainerdError("containerd is already running")
        if len(str(self._paths.socket)) > _MAX_SOCKET_PATH:
            raise ContainerdError(
                f"containerd socket path is too long for a unix socket ({len(str(self._paths.socket))} > "
                f"{_MAX_SOCKET_PATH} bytes): choose a shorter node directory than {self._paths.base}")
        containerd = shutil.which(self._config.containerd_binary)
        runc = shutil.which(self._config.runc_binary)
        if containerd is None or runc is None:
            raise ContainerdError("containerd and runc must be installed (Debian: apt-get install containerd runc)")
        if not self._config.network.plugin_dir.joinpath("bridge").exists():
            raise ContainerdError(
                f"CNI plugins not found in {self._config.network.plugin_dir} "
                "(Debian: apt-get install containernetworking-plugins)")

        self._prepare_directories()
        self._secure_registry_config()
        snapshotter = self._config.snapshotter or (
            "overlayfs" if overlayfs_works(self._paths.root) else "native")
        self._paths.config.write_text(containerd_toml(
            self._config, self._paths, snapshotter, self.systemd_cgroup, runc,
            restrict_oom_score_adj=not can_lower_oom_score()))
        conflist = cni_conflist(self._config.network, self._paths.cni_ipam_dir)
        (self._paths.cni_conf_dir / f"10-{self._config.network.name}.conflist").write_text(
            json.dumps(conflist, indent=2))
        if self._paths.socket.exists():
            self._paths.socket.unlink()

        with open(self._paths.log, "ab") as log:
            self._process = subprocess.Popen(
                [containerd, "--config", str(self._paths.config)],
                stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                # Its own process group: a Ctrl-C aimed at the CLI must not kill the node's runtime
                # before the kubelet has stopped its pods.
                start_new_session=True,
            )
        self._snapshotter = snapshotter
        try:
            self._wait_for_socket()
        except BaseException:
            self._terminate()
            raise

    def stop(self, purge: bool = False) -> None:
        """Stop containerd. Containers are stopped and removed first (through CRI) so no shim,
        mount or network namespace outlives it; `purge` also deletes the node directory and bridge."""
        if self._process is not None:
            try:
                self._remove_all_pods()
            finally:
                self._terminate()
        self._unmount_leftovers()
        if purge:
            self._delete_bridge()
            shutil.rmtree(self._paths.base, ignore_errors=True)

    def _prepare_directories(self) -> None:
        for directory in (self._paths.base, self._paths.root, self._paths.state,
                          self._paths.cni_conf_dir, self._paths.cni_ipam_dir,
                          self._paths.registry_config_dir):
            directory.mkdir(parents=True, exist_ok=True)
        # Whoever can reach the socket can run anything as root: keep the directory root-only.
        os.chmod(self._paths.base, 0o700)

    def _secure_registry_config(self) -> None:
        """Pin the portless loopback registries to HTTPS; refuse to start on an insecure hosts.toml."""
        certs_dir = self._paths.registry_config_dir
        for host in PINNED_LOOPBACK_HOSTS:
            pin_https(certs_dir, host)
        problems = registry_config_problems(certs_dir)
        if problems:
            raise ContainerdError("insecure registry configuration: " + "; ".join(problems))

    def _wait_for_socket(self) -> None:
        assert self._process is not None
        deadline = time.monotonic() + self._config.start_timeout_seconds
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise ContainerdError(
                    f"containerd exited with status {self._process.returncode} during start-up; "
                    f"see {self._paths.log}:\n{self._log_tail()}")
            if self._socket_accepts() and self._cri_initialized():
                return
            time.sleep(0.05)
        raise ContainerdError(
            f"containerd did not open {self._paths.socket} within "
            f"{self._config.start_timeout_seconds:g} s; see {self._paths.log}:\n{self._log_tail()}")

    def _socket_accepts(self) -> bool:
        if not self._paths.socket.exists():
            return False
        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as probe:
            probe.settimeout(1.0)
            try:
                probe.connect(str(self._paths.socket))
            except OSError:
                return False
        return True

    def _cri_initialized(self) -> bool:
        # The socket opens before the CRI plugin has recovered its state; until then every CRI
        # call fails with "server is not initialized yet".
        with CriClient(self._paths.socket, CriTimeouts(default=2.0)) as cri:
            try:
                cri.version()
            except CriError:
                return False
        return True

    def _log_tail(self, lines: int = 15) -> str:
        try:
            return "\n".join(self._paths.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def _remove_all_pods(self) -> None:
        if not self._socket_accepts():
            return
        timeout = self._config.stop_timeout_seconds
        timeouts = CriTimeouts(default=timeout, sandbox=timeout, container=timeout)
        with CriClient(self._paths.socket, timeouts) as cri:
            try:
                sandboxes = cri.list_pod_sandboxes()
            except CriError:
                return  # best effort: the mount clean-up after containerd stops still runs
            for sandbox in sandboxes:
                try:
                    cri.stop_pod_sandbox(sandbox.id)
                    cri.remove_pod_sandbox(sandbox.id)
                except CriError:
                    continue

    def _terminate(self) -> None:
        process, self._process = self._process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=self._config.stop_timeout_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=self._config.stop_timeout_seconds)

    def _unmount_leftovers(self) -> None:
        base = str(self._paths.base) + "/"
        mount_points = []
        with open("/proc/self/mountinfo", encoding="utf-8") as mountinfo:
            for line in mountinfo:
                # Field 5 is the mount point, with spaces etc. octal-escaped.
                point = line.split()[4].encode().decode("unicode_escape")
                if point.startswith(base):
                    mount_points.append(point)
        # Deepest first, so nested mounts (rootfs inside a state dir) come off before their parent.
        for point in sorted(mount_points, key=len, reverse=True):
            subprocess.run(["umount", "-l", point], capture_output=True, timeout=10, check=False)

    def _delete_bridge(self) -> None:
        if Path("/sys/class/net", self._config.network.bridge).exists():
            subprocess.run(["ip", "link", "delete", self._config.network.bridge],
                           capture_output=True, timeout=10, check=False)
