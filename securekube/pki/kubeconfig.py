"""Kubeconfig files (kind Config, apiVersion v1) with embedded credentials.

The file embeds a client private key, so it is written like one: mode 0600 from
creation, atomically. The server must be https: securekube never hands out a
credential that would travel in clear text.
"""

from __future__ import annotations

import base64
from pathlib import Path
from urllib.parse import urlsplit

import yaml

from securekube.pki import certs, files, keys
from securekube.pki.errors import PkiError
from securekube.pki.layout import PkiPaths, read_layout
from securekube.pki.profiles import PkiProfiles

DEFAULT_CLUSTER_NAME = "securekube"


def write_kubeconfig(
    path: Path,
    *,
    cluster_name: str,
    server_url: str,
    ca_pem: bytes,
    user_name: str,
    client_cert_pem: bytes,
    client_key_pem: bytes,
    overwrite: bool = True,
) -> None:
    """Writes a one-cluster, one-user kubeconfig whose current context is that pair.

    With `overwrite=False` an existing file is refused instead of replaced.
    """
    check_server_url(server_url)
    context = f"{user_name}@{cluster_name}"
    document = {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {
                    "server": server_url,
                    "certificate-authority-data": _b64(ca_pem),
                },
            }
        ],
        "users": [
            {
                "name": user_name,
                "user": {
                    "client-certificate-data": _b64(client_cert_pem),
                    "client-key-data": _b64(client_key_pem),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": user_name}}],
        "current-context": context,
        "preferences": {},
    }
    data = yaml.safe_dump(document, sort_keys=False).encode("utf-8")
    if overwrite:
        files.replace(Path(path), data, files.PRIVATE_MODE)
    else:
        files.write_new(Path(path), data, files.PRIVATE_MODE)


def write_admin_kubeconfig(
    paths: PkiPaths,
    profiles: PkiProfiles,
    *,
    server_url: str,
    cluster_name: str = DEFAULT_CLUSTER_NAME,
    overwrite: bool = True,
) -> Path:
    """Writes `admin.kubeconfig` in the PKI directory from the admin certificate on disk."""
    admin = profiles.get("admin")
    # Reads through the layout checks: the key matches and the CA on disk signed it.
    existing = read_layout(paths, profiles, require_complete=True, check_profiles=False)
    ca = existing.cas[admin.issuer or ""]
    client_cert, client_key = existing.leaves[admin.name], existing.leaf_keys[admin.name]
    write_kubeconfig(
        paths.admin_kubeconfig,
        cluster_name=cluster_name,
        server_url=server_url,
        ca_pem=certs.certificate_pem(ca.cert),
        user_name=admin.subject.common_name,
        client_cert_pem=certs.certificate_pem(client_cert),
        client_key_pem=keys.private_key_pem(client_key),
        overwrite=overwrite,
    )
    return paths.admin_kubeconfig


def current_cluster(path: Path) -> tuple[str, str]:
    """The (cluster name, server URL) of a kubeconfig's current context."""
    try:
        document = yaml.safe_load(Path(path).read_text(encoding="utf-8"))
        contexts = {c["name"]: c["context"] for c in document["contexts"]}
        cluster_name = contexts[document["current-context"]]["cluster"]
        clusters = {c["name"]: c["cluster"] for c in document["clusters"]}
        return cluster_name, clusters[cluster_name]["server"]
    except OSError as exc:
        raise PkiError(f"cannot read {path}: {exc.strerror}") from exc
    except (yaml.YAMLError, KeyError, TypeError) as exc:
        # No details: the file holds a private key and parser messages quote content.
        raise PkiError(f"{path} is not a kubeconfig with a current context") from exc


def check_server_url(server_url: str) -> None:
    """Refuses a server URL that is not https://HOST[:PORT]."""
    try:
        parts = urlsplit(server_url)
        valid = parts.scheme == "https" and bool(parts.hostname) and (parts.port or 443) > 0
    except ValueError:
        valid = False
    if not valid:
        raise PkiError(f"invalid server URL {server_url!r}: expected https://HOST[:PORT]")


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")
