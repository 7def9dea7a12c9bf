"""The two certificates of the kubelet API: the API server's client certificate and a kubelet's serving one.

Both come from the cluster CA on request (onDemand profiles `kubelet-client`, `kubelet-serving`),
when `securekube up` starts a node:
- `kubelet-client` lives in the PKI directory (pki/kubelet-client.crt/.key) and is reissued once
  two thirds of its lifetime are gone; the API server reads it for every call to a kubelet.
- `kubelet-serving` is written to the node's own directory: subject system:node:<name> in
  system:nodes, the node's name and addresses as SANs, so the API server can verify the kubelet
  it connects to by address.
"""

from __future__ import annotations

import dataclasses
from datetime import datetime
from pathlib import Path

from cryptography import x509

from securekube.pki import certs, files, keys
from securekube.pki.layout import PkiPaths, load_ca, resolve_now
from securekube.pki.profiles import PkiProfiles, Subject

CLIENT_PROFILE = "kubelet-client"
SERVING_PROFILE = "kubelet-serving"
REISSUE_AFTER = 2 / 3  # of the lifetime


def _due(cert_path: Path, now: datetime) -> bool:
    if not cert_path.exists():
        return True
    cert = certs.load_certificate(cert_path)
    start, end = cert.not_valid_before_utc, cert.not_valid_after_utc
    return now >= start + (end - start) * REISSUE_AFTER


def ensure_kubelet_client(root: Path, profiles: PkiProfiles, now: datetime | None = None) -> bool:
    """Issues pki/kubelet-client.crt/.key when missing or due; True when it issued a new pair."""
    paths, now = PkiPaths(Path(root)), resolve_now(now)
    profile = profiles.get(CLIENT_PROFILE)
    if not _due(paths.cert(profile.name), now):
        return False
    ca = load_ca(paths, profile.issuer or "")
    key = keys.generate_private_key()
    cert = certs.issue_leaf(profile, key.public_key(), issuer_cert=ca.cert, issuer_key=ca.key, now=now)
    # Key first: a reader between the two writes sees a mismatched pair and retries, never a stale key.
    keys.replace_private_key(paths.key(profile.name), key)
    certs.replace_certificate(paths.cert(profile.name), cert)
    return True


def issue_kubelet_serving(root: Path, profiles: PkiProfiles, node_name: str, addresses: tuple[str, ...],
                          cert_path: Path, key_path: Path, now: datetime | None = None) -> x509.Certificate:
    """Writes a serving certificate for node `node_name` reachable at `addresses` (key 0600)."""
    paths, now = PkiPaths(Path(root)), resolve_now(now)
    profile = profiles.get(SERVING_PROFILE)
    node_profile = dataclasses.replace(profile, subject=Subject(f"system:node:{node_name}", ("system:nodes",)))
    ca = load_ca(paths, profile.issuer or "")
    key = keys.generate_private_key()
    cert = certs.issue_leaf(node_profile, key.public_key(), issuer_cert=ca.cert, issuer_key=ca.key, now=now,
                            extra_sans=(node_name, *addresses))
    files.ensure_directory(Path(key_path).parent)
    keys.replace_private_key(Path(key_path), key)
    certs.replace_certificate(Path(cert_path), cert)
    return cert
