"""Leaf certificate rotation: new keys and certificates from the same CAs.

CAs and the ServiceAccount key are never rotated here: replacing a CA would break every
client's trust, replacing the SA key would invalidate every token. Because the CAs stay,
clients keep trusting the new leaves, and the old ones stay valid until they expire:
rotation needs no downtime.

Each file is replaced atomically (temp file + rename), the key before its certificate,
so a server that reloads when the certificate changes always finds a complete, matching
pair, and one that reloads in between (new key, old certificate) fails to load and keeps
serving the old pair. Writing the certificate first would be worse: OpenSSL drops a
context's key when given a certificate that does not match it. A process that still has
an old file open keeps reading the old, complete bytes. A rotation interrupted between
a key and its certificate is repaired by running it again: leaf keys are not read.
"""

from __future__ import annotations

from datetime import datetime
from pathlib import Path

from cryptography import x509

from securekube.pki import certs, keys
from securekube.pki.kubeconfig import current_cluster, write_admin_kubeconfig
from securekube.pki.layout import PkiPaths, read_layout, resolve_extra_sans, resolve_now
from securekube.pki.names import merge_sans
from securekube.pki.profiles import PkiProfiles


def rotate_leaves(
    root: Path,
    profiles: PkiProfiles,
    *,
    extra_sans: tuple[str, ...] | list[str] = (),
    now: datetime | None = None,
) -> list[str]:
    """Reissues every standing leaf with a fresh key; returns their names in issue order.

    Certificates that accept extra SANs keep the ones they already have (a client may
    be using them) plus `extra_sans`. If `admin.kubeconfig` exists it is rewritten with
    the new admin credential and its current server. Everything is checked and issued
    in memory first, so a refused layout changes nothing on disk.
    """
    paths = PkiPaths(Path(root))
    now = resolve_now(now)
    extra = resolve_extra_sans(profiles, extra_sans)
    existing = read_layout(
        paths, profiles, require_complete=True, check_profiles=False, read_leaf_keys=False
    )
    kubeconfig_target = (
        current_cluster(paths.admin_kubeconfig) if paths.admin_kubeconfig.exists() else None
    )

    issued: list[tuple[str, keys.PrivateKey, x509.Certificate]] = []
    for profile in profiles.standing_leaves():
        issuer = existing.cas[profile.issuer or ""]
        kept_sans: tuple[str, ...] = ()
        if profile.accepts_extra_sans:
            kept_sans = merge_sans(certs.certificate_sans(existing.leaves[profile.name]), extra)
        key = keys.generate_private_key()
        cert = certs.issue_leaf(
            profile,
            key.public_key(),
            issuer_cert=issuer.cert,
            issuer_key=issuer.key,
            now=now,
            extra_sans=kept_sans,
        )
        issued.append((profile.name, key, cert))

    for name, key, cert in issued:
        keys.replace_private_key(paths.key(name), key)
        certs.replace_certificate(paths.cert(name), cert)
    if kubeconfig_target is not None:
        cluster_name, server_url = kubeconfig_target
        write_admin_kubeconfig(paths, profiles, server_url=server_url, cluster_name=cluster_name)
    return [name for name, _, _ in issued]
