"""`securekube token create`: a bootstrap token a new node joins with (kubeadm's format).

The token `<id>.<secret>` is backed by a Secret `bootstrap-token-<id>` in kube-system of type
bootstrap.kubernetes.io/token, usable only for authentication and only for a limited time
(24 h by default). It is created through the running API server with the admin kubeconfig, so the
write is authorized and audited like any other. The token is printed once, on stdout, and is
never written anywhere else.
"""
from __future__ import annotations

import argparse
import datetime as dt
import secrets
from pathlib import Path

from securekube.cli.datadir import DataDir
from securekube.cli.errors import CliError

TOKEN_ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789"
TOKEN_ID_LENGTH, TOKEN_SECRET_LENGTH = 6, 16
DEFAULT_TTL = dt.timedelta(hours=24)
SECRETS_PATH = "/api/v1/namespaces/kube-system/secrets"


def register(groups: argparse._SubParsersAction) -> None:
    token = groups.add_parser("token", help="bootstrap tokens for joining nodes",
                              description="Manage bootstrap tokens: the credential a new node uses to ask for "
                                          "its client certificate (TLS bootstrap).")
    commands = token.add_subparsers(dest="token_command", metavar="COMMAND", required=True)
    create = commands.add_parser("create", help="create a bootstrap token and print it",
                                 description="Create a bootstrap token (valid 24 h, authentication only) through "
                                             "the running API server and print it.")
    create.add_argument("--data-dir", required=True, type=Path, help="the cluster's data directory")
    create.add_argument("--ttl-hours", type=int, default=24, help="hours until the token expires (default 24)")
    create.set_defaults(run=run_create)


def new_token() -> tuple[str, str]:
    """A fresh (token id, token secret) from the bootstrap token alphabet."""
    def draw(length: int) -> str:
        return "".join(secrets.choice(TOKEN_ALPHABET) for _ in range(length))

    return draw(TOKEN_ID_LENGTH), draw(TOKEN_SECRET_LENGTH)


def bootstrap_token_secret(token_id: str, token_secret: str, expires: dt.datetime,
                           description: str = "") -> dict:
    """The kube-system Secret that makes `<token_id>.<token_secret>` a bootstrap token until `expires`."""
    return {
        "apiVersion": "v1", "kind": "Secret", "type": "bootstrap.kubernetes.io/token",
        "metadata": {"name": f"bootstrap-token-{token_id}", "namespace": "kube-system"},
        "stringData": {
            "description": description or "created by securekube token create",
            "token-id": token_id,
            "token-secret": token_secret,
            "expiration": expires.astimezone(dt.timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
            "usage-bootstrap-authentication": "true",
        },
    }


def create_bootstrap_token(kubeconfig: Path, ttl: dt.timedelta = DEFAULT_TTL, description: str = "") -> str:
    """Creates a bootstrap token through the API server named in `kubeconfig`; returns `<id>.<secret>`."""
    from securekube.kubelet.apiclient import ApiClient, ApiClientError, load_kubeconfig

    token_id, token_secret = new_token()
    expires = dt.datetime.now(dt.timezone.utc) + ttl
    try:
        client = ApiClient(load_kubeconfig(kubeconfig))
        client.create(SECRETS_PATH, bootstrap_token_secret(token_id, token_secret, expires, description))
    except ApiClientError as exc:
        raise CliError(f"cannot create the bootstrap token: {exc} (is `securekube up` running?)") from None
    return f"{token_id}.{token_secret}"


def delete_bootstrap_token(kubeconfig: Path, token: str) -> None:
    """Deletes the Secret behind `token` (its id part) through the API server; a missing one is fine."""
    from securekube.kubelet.apiclient import ApiClient, ApiClientError, ApiStatusError, load_kubeconfig

    token_id = token.split(".", 1)[0]
    try:
        ApiClient(load_kubeconfig(kubeconfig)).delete(f"{SECRETS_PATH}/bootstrap-token-{token_id}")
    except ApiStatusError as exc:
        if exc.code != 404:
            raise CliError(f"cannot delete bootstrap token {token_id}: {exc.message}") from None
    except ApiClientError as exc:
        raise CliError(f"cannot delete bootstrap token {token_id}: {exc}") from None


def run_create(args: argparse.Namespace) -> int:
    if not 0 < args.ttl_hours <= 24 * 7:
        raise CliError("--ttl-hours must be between 1 and 168")
    data_dir = DataDir(args.data_dir.resolve())
    if not data_dir.admin_kubeconfig.exists():
        raise CliError(f"{data_dir.root} holds no admin kubeconfig (run `securekube up --data-dir {args.data_dir}`)")
    print(create_bootstrap_token(data_dir.admin_kubeconfig, dt.timedelta(hours=args.ttl_hours)), flush=True)
    return 0
