"""`securekube up`: start a lab cluster on the embedded defaults, every control on."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import TYPE_CHECKING

from securekube.cli.datadir import DataDir
from securekube.cli.errors import CliError
from securekube.cli.upnode import add_arguments as add_node_arguments
from securekube.cli.upnode import plan_node, registry_cas

if TYPE_CHECKING:
    from securekube.audit.webhook import WebhookTarget
    from securekube.policy.remote import RemoteEngineConfig


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
    parser.add_argument("--audit-webhook-config-file", type=Path, default=None, metavar="KUBECONFIG",
                        help="also send audit events, batched, to the server of this kubeconfig-format file "
                             "(as kube-apiserver's flag: its CA and client certificate are used; https only)")
    opa = parser.add_argument_group("remote OPA (optional; admission policies are evaluated in-process by default)")
    opa.add_argument("--opa-url", metavar="https://HOST:PORT",
                     help="evaluate admission policies on this OPA server (its REST API; `opa run --server` or "
                          "`securekube policy serve`)")
    opa.add_argument("--opa-ca-file", type=Path, metavar="FILE", help="CA that signed the OPA server's certificate")
    opa.add_argument("--opa-client-cert-file", type=Path, metavar="FILE", help="client certificate for the OPA server")
    opa.add_argument("--opa-client-key-file", type=Path, metavar="FILE", help="its private key")
    opa.add_argument("--opa-token-file", type=Path, metavar="FILE",
                     help="a file holding the bearer token the OPA server requires")
    parser.add_argument("--admission-parameters", metavar="FILE",
                        help="YAML mapping of shipped policy name to its parameters (input.parameters), e.g. "
                             "allowed-image-registries: {registries: [...]}; the same file `policy eval "
                             "--parameters` reads")
    parser.add_argument("--node-monitor-grace-period", type=float, default=40.0, metavar="SECONDS",
                        help="seconds without a kubelet lease renewal before its node is marked unreachable "
                             "(default 40, as upstream)")
    add_node_arguments(parser)
    parser.set_defaults(run=run, runs_policy_engine=True)


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


def audit_webhook_target(path: Path) -> "WebhookTarget":
    """The webhook of an upstream --audit-webhook-config-file: the current context's server and credentials."""
    from securekube.audit.webhook import WebhookTarget
    from securekube.cli.kubeconfig import load_kubeconfig, tls_context

    access = load_kubeconfig(explicit=str(path), environ={})
    if access.token is not None:
        raise CliError(f"audit webhook config {path}: token authentication is not supported; use a client "
                       "certificate")
    if access.tls_server_name:
        raise CliError(f"audit webhook config {path}: tls-server-name is not supported; the server URL's host "
                       "must match the receiver's certificate")
    return WebhookTarget(access.server, tls_context(access))


def remote_opa_config(args: argparse.Namespace) -> "RemoteEngineConfig | None":
    """The remote admission engine the --opa-* options ask for; None without --opa-url."""
    from securekube.policy.remote import RemoteEngineConfig

    given = [name for name in ("opa_ca_file", "opa_client_cert_file", "opa_client_key_file", "opa_token_file")
             if getattr(args, name) is not None]
    if args.opa_url is None:
        if given:
            raise CliError(f"--{given[0].replace('_', '-')} needs --opa-url")
        return None
    if args.opa_ca_file is None:
        raise CliError("--opa-url needs --opa-ca-file (the OPA server's certificate is always verified)")
    token = None
    if args.opa_token_file is not None:
        try:
            token = args.opa_token_file.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise CliError(f"cannot read --opa-token-file {args.opa_token_file}: {exc.strerror}") from None
        except UnicodeDecodeError:  # the error would quote bytes of the token
            raise CliError(f"--opa-token-file {args.opa_token_file} is not UTF-8 text") from None
    try:
        return RemoteEngineConfig(args.opa_url, args.opa_ca_file, args.opa_client_cert_file,
                                  args.opa_client_key_file, bearer_token=token)
    except ValueError as exc:
        raise CliError(str(exc)) from None


def run(args: argparse.Namespace) -> int:
    from securekube.apiserver.controlplane import DEFAULT_POLICIES_DIR, ControlPlaneConfig, serve
    from securekube.cli.policy import read_parameters
    from securekube.apiserver.tls import ServingCerts
    from securekube.pki.errors import PkiError
    from securekube.pki.layout import PkiPaths
    from securekube.policy.interfaces import PolicyError
    from securekube.policy.loader import policy_dirs
    from securekube.audit.errors import AuditError
    from securekube.storage.transform.model import EncryptionConfigError

    if not 0 < args.port < 65536:
        raise CliError(f"--port {args.port} is not a valid TCP port")
    if not args.node_monitor_grace_period > 0:
        raise CliError("--node-monitor-grace-period must be a positive number of seconds")
    data_dir = DataDir(args.data_dir.resolve())
    server_url = f"https://{args.host}:{args.port}"
    webhook = audit_webhook_target(args.audit_webhook_config_file) if args.audit_webhook_config_file else None
    remote_opa = remote_opa_config(args)
    parameters = read_parameters(args.admission_parameters)
    shipped = {d.name for d in policy_dirs(DEFAULT_POLICIES_DIR)}
    unknown = sorted(set(parameters) - shipped)
    if unknown:  # refused before anything is created, not when the control plane installs them
        raise CliError(f"--admission-parameters: no shipped policy is named {', '.join(unknown)}")
    trusted_registries = registry_cas(args.registry_ca)
    prepare(data_dir, server_url)
    pki = PkiPaths(data_dir.pki)
    config = ControlPlaneConfig(
        database=data_dir.database, encryption_config=data_dir.encryption_config, pki_dir=data_dir.pki,
        serving=ServingCerts(str(pki.cert("apiserver")), str(pki.key("apiserver")), str(pki.cert("ca"))),
        host=args.host, port=args.port, audit_log=data_dir.audit_log, audit_policy=args.audit_policy,
        audit_webhook=webhook, remote_opa=remote_opa, admission_parameters=parameters,
        node_monitor_grace_period=args.node_monitor_grace_period)

    node = plan_node(args, data_dir, server_url, _step, trusted_registries)

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
