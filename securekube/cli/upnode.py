"""The node `securekube up` starts beside the API server, when this machine can run one.

Needs root, containerd, runc, busybox-static and the CNI plugins; without them `up` says which is
missing and runs the control plane alone. Joining goes through the real TLS bootstrap: a
bootstrap token (created through the API with the admin kubeconfig, only when the node has no
usable certificate yet), a CSR the approver and signer answer, then mTLS as system:node:<name>.
A node that fails to start is reported and stopped; the control plane keeps running.
"""
from __future__ import annotations

import argparse
import datetime as dt
from collections.abc import Callable
from pathlib import Path

from securekube.cli.datadir import DataDir

NODE_TOKEN_TTL = dt.timedelta(hours=1)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--no-node", action="store_true", help="run the control plane only, without a node")
    parser.add_argument("--node-name", default=None, help="name of the local node (default: this host's name)")
    parser.add_argument("--kubelet-port", type=int, default=10250,
                        help="port of the node's kubelet API on 127.0.0.1 (default 10250; 0 picks a free one)")
    parser.add_argument("--registry-ca", action="append", default=[], metavar="HOST[:PORT]=CAFILE",
                        help="trust the image registry at HOST[:PORT] (HTTPS only) with the CA certificate in "
                             "CAFILE; repeatable. Written as containerd's certs.d/HOST/hosts.toml")


class UpNode:
    """The local node of `securekube up`: `start()` after the API server listens, `stop()` after it stopped."""

    def __init__(self, data_dir: DataDir, server_url: str, node_name: str, kubelet_port: int,
                 report: Callable[[str], None], registry_cas: tuple[tuple[str, bytes], ...] = ()) -> None:
        from securekube.kubelet.localnode import LocalNode, LocalNodeConfig

        self._data_dir = data_dir
        self._report = report
        self._node = LocalNode(LocalNodeConfig(base_dir=data_dir.root / "node", pki_dir=data_dir.pki,
                                               server_url=server_url, node_name=node_name,
                                               kubelet_port=kubelet_port), report)
        self._started = False
        self._registry_cas = registry_cas

    def start(self) -> None:
        """Starts and joins the node; on failure reports why and leaves the control plane alone."""
        from securekube.cli.token import create_bootstrap_token, delete_bootstrap_token
        from securekube.pki.kubelet_certs import ensure_kubelet_client
        from securekube.pki.profiles import load_profiles

        token = ""
        try:
            if ensure_kubelet_client(self._data_dir.pki, load_profiles()):
                self._report("node: API server's kubelet client certificate issued")
            if self._node.needs_bootstrap():
                token = create_bootstrap_token(self._data_dir.admin_kubeconfig, NODE_TOKEN_TTL,
                                               description=f"joins node {self._node.config.node_name}")
                self._node.write_bootstrap_kubeconfig(token, (self._data_dir.pki / "ca.crt").read_bytes())
                self._report("node: bootstrap token created; joining through TLS bootstrap")
            self._trust_registries()
            self._started = True
            self._node.start()
        except Exception as exc:  # the cluster still serves; say why there is no node
            self._report(f"node: not started: {exc}")
            self.stop()
        finally:
            if token:  # used or not, this token has done its job: nobody else may join with it
                try:
                    delete_bootstrap_token(self._data_dir.admin_kubeconfig, token)
                except Exception as exc:
                    self._report(f"node: the bootstrap token could not be deleted (it expires in 1 h): {exc}")

    def _trust_registries(self) -> None:
        from securekube.kubelet.containerd import ContainerdPaths
        from securekube.kubelet.registries import trust_registry

        certs_dir = ContainerdPaths(self._data_dir.root / "node" / "containerd").registry_config_dir
        for host, ca_pem in self._registry_cas:
            trust_registry(certs_dir, host, ca_pem)
            self._report(f"node: registry {host} trusted (HTTPS, verified with the given CA)")

    def stop_agent(self) -> None:
        """Stops the kubelet's API traffic (its open watch) while the API server still runs."""
        if self._started:
            self._node.stop_agent()

    def stop(self) -> None:
        if self._started:
            self._started = False
            self._node.stop()
            self._report("node: stopped (its pods were stopped and removed)")


def plan_node(args: argparse.Namespace, data_dir: DataDir, server_url: str,
              report: Callable[[str], None], trusted_registries: tuple[tuple[str, bytes], ...] = ()) -> UpNode | None:
    """The node to start, or None (having said why) when there is none.

    `trusted_registries` are the checked --registry-ca options (see `registry_cas`)."""
    from securekube.kubelet.localnode import default_node_name, missing_parts, valid_node_name

    if args.no_node:
        report("node: none (--no-node)")
        return None
    missing = missing_parts()
    if missing:
        report("node: none runs on this machine: " + "; ".join(missing))
        return None
    if not 0 <= args.kubelet_port < 65536:
        report(f"node: none: --kubelet-port {args.kubelet_port} is not a valid TCP port")
        return None
    if args.node_name is not None and not valid_node_name(args.node_name):
        report(f"node: none: --node-name {args.node_name!r} is not a lower-case DNS subdomain")
        return None
    return UpNode(data_dir, server_url, args.node_name or default_node_name(), args.kubelet_port, report,
                  trusted_registries)


def registry_cas(values: list[str]) -> tuple[tuple[str, bytes], ...]:
    """The --registry-ca HOST=CAFILE options, each checked and read now (a mistake stops `up` at once)."""
    from securekube.cli.errors import CliError
    from securekube.kubelet.registries import RegistryTrustError, ca_certificates, validate_host

    result = []
    for value in values:
        host, sep, ca_file = value.partition("=")
        if not sep or not host or not ca_file:
            raise CliError(f"--registry-ca {value!r}: expected HOST[:PORT]=CAFILE")
        try:
            ca_pem = Path(ca_file).read_bytes()
        except OSError as exc:
            raise CliError(f"--registry-ca: cannot read {ca_file}: {exc.strerror}") from None
        try:
            validate_host(host)
            ca_certificates(ca_pem)
        except RegistryTrustError as exc:
            raise CliError(f"--registry-ca {host}: {exc}") from None
        result.append((host, ca_pem))
    return tuple(result)

