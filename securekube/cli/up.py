"""`securekube up`: start a lab cluster on the embedded defaults, every control on."""
from __future__ import annotations

import argparse
from pathlib import Path

from securekube.cli.datadir import DataDir
from securekube.cli.errors import CliError
from securekube.cli.upnode import add_arguments as add_node_arguments
from securekube.cli.upnode import plan_node


def register(groups: argparse._SubParsersAction) -> None:
    parser = groups.add_parser(
        "up", help="start a lab cluster (API server on mTLS, RBAC, secrets encrypted at rest)",
        description="Start a lab cluster. The first run creates the PKI, an encryption key and the database in "
                    "--data-dir; later runs reuse them, so a restart keeps all data. Stops cleanly on Ctrl-C/SIGTERM.")
    parser.add_argument("--data-dir", required=True, type=Path, help="directory for the cluster's keys and state")
    parser.add_argument("--port", type=int, default=6443, help="HTTPS port on 127.0.0.1 (default 6443)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    parser.add_argument("--audit-policy", type=Path, default=None,
                        help="an audit.k8s.io/v1 Policy file (default: the shipped docs/audit-policy.yaml)")
    add_node_arguments(parser)
    parser.set_defaults(run=run)


def _step(message: str) -> None:
    print(f"securekube: {message}", flush=True)


def prepare(data_dir: DataDir, server_url: str) -> None:
    """First run: PKI, admin kubeconfig and encryption config; later runs: check and reuse them."""
    from securekube.pki.errors import PkiError
    from securekube.pki.kubeconfig import write_admin_kubeconfig
    from securekube.pki.layout import bootstrap
    from securekube.pki.profiles import load_profiles
    from securekube.storage.transform.config import generate_default_config
    from securekube.storage.transform.model import EncryptionConfigError

    try:
        data_dir.root.mkdir(mode=0o700, parents=True, exist_ok=True)
    except OSError as exc:
        raise CliError(f"cannot create data directory {data_dir.root}: {exc.strerror}") from None
    try:
        profiles = load_profiles()
        fresh = not data_dir.pki.exists()
        paths = bootstrap(data_dir.pki, profiles)
        _step(f"pki: {'created' if fresh else 'reused'} in {data_dir.pki}")
        write_admin_kubeconfig(paths, profiles, server_url=server_url)
        # The kubeconfig lives with the PKI so `securekube pki rotate` refreshes it; link it where users look.
        if not data_dir.admin_kubeconfig.is_symlink():
            data_dir.admin_kubeconfig.unlink(missing_ok=True)
            data_dir.admin_kubeconfig.symlink_to(paths.admin_kubeconfig.relative_to(data_dir.root))
    except PkiError as exc:
        raise CliError(str(exc)) from None
    if not data_dir.encryption_config.exists():
        try:
            generate_default_config(data_dir.encryption_config)
        except EncryptionConfigError as exc:
            raise CliError(str(exc)) from None
        _step(f"encryption: new secretbox key for secrets in {data_dir.encryption_config}")


def run(args: argparse.Namespace) -> int:
    from securekube.apiserver.controlplane import ControlPlaneConfig, serve
    from securekube.apiserver.tls import ServingCerts
    from securekube.pki.errors import PkiError
    from securekube.pki.layout import PkiPaths
    from securekube.policy.interfaces import PolicyError
    from securekube.audit.errors import AuditError
    from securekube.storage.transform.model import EncryptionConfigError

    if not 0 < args.port < 65536:
        raise CliError(f"--port {args.port} is not a valid TCP port")
    data_dir = DataDir(args.data_dir.resolve())
    server_url = f"https://{args.host}:{args.port}"
    prepare(data_dir, server_url)
    pki = PkiPaths(data_dir.pki)
    config = ControlPlaneConfig(
        database=data_dir.database, encryption_config=data_dir.encryption_config, pki_dir=data_dir.pki,
        serving=ServingCerts(str(pki.cert("apiserver")), str(pki.key("apiserver")), str(pki.cert("ca"))),
        host=args.host, port=args.port, audit_log=data_dir.audit_log, audit_policy=args.audit_policy)

    node = plan_node(args, data_dir, server_url, _step)

    def ready() -> None:
        if node is not None:
            node.start()  # joins through the API server that now listens
        _step("ready")
        print(f"\nUse the cluster with:\n  export KUBECONFIG={data_dir.admin_kubeconfig}\n  kubectl get namespaces\n",
              flush=True)

    try:
        serve(config, report=_step, on_listening=ready,
              on_stopping=lambda: node.stop_agent() if node is not None else None)
    except (EncryptionConfigError, PkiError, PolicyError, AuditError) as exc:
        raise CliError(str(exc)) from None
    except OSError as exc:
        raise CliError(f"cannot start the API server: {exc.strerror or exc}") from None
    finally:
        if node is not None:
            node.stop()
    return 0
