"""The break-glass credential: a short-lived system:masters kubeconfig, on request only.

system:masters bypasses RBAC and cannot be revoked, so this credential is never kept in
the PKI directory, never renewed, lives one hour by default, and its key exists only
inside the kubeconfig it is written to.
"""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

from cryptography import x509

from securekube.pki import certs, keys
from securekube.pki.errors import PkiError
from securekube.pki.kubeconfig import DEFAULT_CLUSTER_NAME, check_server_url, write_kubeconfig
from securekube.pki.layout import PkiPaths, load_ca, resolve_now
from securekube.pki.profiles import PkiProfiles

PROFILE_NAME = "breakglass"


def issue_breakglass(
    root: Path,
    profiles: PkiProfiles,
    *,
    server_url: str,
    out: Path,
    ttl: timedelta | None = None,
    cluster_name: str = DEFAULT_CLUSTER_NAME,
    now: datetime | None = None,
) -> x509.Certificate:
    """Issues the break-glass certificate and writes it as a kubeconfig to `out` (0600).

    `ttl` defaults to the profile's lifetime and may not exceed its maxLifetime. An
    existing `out` is refused rather than overwritten. Returns the certificate.
    """
    profile = profiles.get(PROFILE_NAME)
    if not profile.on_demand:
        raise PkiError(f"profile {PROFILE_NAME!r} must be onDemand")
    check_server_url(server_url)
    out = Path(out)
    if out.exists():
        raise PkiError(f"{out} already exists; remove it or choose another --out")
    paths = PkiPaths(Path(root))
    now = resolve_now(now)
    ca = load_ca(paths, profile.issuer or "")
    key = keys.generate_private_key()
    cert = certs.issue_leaf(
        profile, key.public_key(), issuer_cert=ca.cert, issuer_key=ca.key, now=now, lifetime=ttl
    )
    write_kubeconfig(
        out,
        cluster_name=cluster_name,
        server_url=server_url,
        ca_pem=certs.certificate_pem(ca.cert),
        user_name=profile.subject.common_name,
        client_cert_pem=certs.certificate_pem(cert),
        client_key_pem=keys.private_key_pem(key),
        overwrite=False,
    )
    return cert
