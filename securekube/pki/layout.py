"""The PKI directory: where every file lives, how it is checked, and how it is created.

Layout (names follow kubeadm's, so tools that know one know the other):

    ca.crt  ca.key                      cluster CA
    apiserver.crt  apiserver.key        API serving certificate
    admin.crt  admin.key                admin client (securekube:cluster-admins)
    apiserver-etcd-client.crt/.key      API server's client certificate for etcd
    sa.key  sa.pub                      ServiceAccount token signing key pair
    admin.kubeconfig                    written by `securekube pki init`
    etcd/ca.crt  etcd/ca.key            etcd CA (a profile `etcd-NAME` lives at etcd/NAME)
    etcd/server.crt/.key, etcd/peer.crt/.key

`bootstrap` is idempotent: it checks everything already on disk first and refuses a
layout it cannot trust (a key without its certificate, a certificate its CA on disk did
not sign, a key readable by others) before it writes anything.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from cryptography import x509

from securekube.pki import certs, files, keys
from securekube.pki.errors import PkiError
from securekube.pki.keys import PrivateKey
from securekube.pki.names import merge_sans
from securekube.pki.profiles import CertProfile, PkiProfiles

_ETCD_PREFIX = "etcd-"


@dataclass(frozen=True)
class PkiPaths:
    """Names every file in a PKI directory rooted at `root`."""

    root: Path

    def cert(self, name: str) -> Path:
        """The certificate file of profile `name`."""
        return self._base(name).with_suffix(".crt")

    def key(self, name: str) -> Path:
        """The private key file of profile `name`."""
        return self._base(name).with_suffix(".key")

    def name_of(self, cert_path: Path) -> str:
        """The profile name of a certificate file in this directory (inverse of `cert`)."""
        relative = Path(cert_path).relative_to(self.root).with_suffix("")
        if relative.parent == Path("etcd"):
            return _ETCD_PREFIX + relative.name
        return relative.as_posix()

    @property
    def sa_key(self) -> Path:
        """The ServiceAccount token signing key (private, 0600)."""
        return self.root / "sa.key"

    @property
    def sa_pub(self) -> Path:
        """The ServiceAccount token verification key (public)."""
        return self.root / "sa.pub"

    @property
    def admin_kubeconfig(self) -> Path:
        """The admin kubeconfig (0600; embeds the admin client key)."""
        return self.root / "admin.kubeconfig"

    def _base(self, name: str) -> Path:
        if name.startswith(_ETCD_PREFIX):
            return self.root / "etcd" / name[len(_ETCD_PREFIX) :]
        return self.root / name


@dataclass(frozen=True)
class KeyPair:
    """A certificate with its private key, both read from disk and checked to match."""

    cert: x509.Certificate
    key: PrivateKey = field(repr=False)


@dataclass(frozen=True)
class ExistingPki:
    """What a PKI directory already holds, after every check has passed.

    `leaf_keys` is empty when the layout was read without leaf keys (for rotation).
    """

    cas: dict[str, KeyPair]
    leaves: dict[str, x509.Certificate]
    leaf_keys: dict[str, PrivateKey] = field(repr=False)
    sa_key: PrivateKey | None = field(repr=False)


def bootstrap(
    root: Path,
    profiles: PkiProfiles,
    *,
    extra_sans: tuple[str, ...] | list[str] = (),
    now: datetime | None = None,
) -> PkiPaths:
    """Creates whatever the PKI directory lacks and reuses what it has (same serials).

    `extra_sans` (e.g. the machine's host name) go into every certificate whose profile
    accepts extra SANs. An existing certificate lacking one is refused with a hint to
    `securekube pki rotate --san`, because init never replaces anything.
    """
    paths = PkiPaths(Path(root))
    now = resolve_now(now)
    extra = resolve_extra_sans(profiles, extra_sans)
    existing = read_layout(paths, profiles, extra_sans=extra, require_complete=False)

    files.ensure_directory(paths.root)
    cas = dict(existing.cas)
    for profile in profiles.cas():
        if profile.name not in cas:
            key = keys.generate_private_key()
            cert = certs.issue_ca(profile, key, now=now)
            _publish_new(paths, profile.name, key, cert)
            cas[profile.name] = KeyPair(cert=cert, key=key)
    for profile in profiles.standing_leaves():
        if profile.name not in existing.leaves:
            issuer = cas[profile.issuer or ""]
            key = keys.generate_private_key()
            cert = certs.issue_leaf(
                profile,
                key.public_key(),
                issuer_cert=issuer.cert,
                issuer_key=issuer.key,
                now=now,
                extra_sans=extra if profile.accepts_extra_sans else (),
            )
            _publish_new(paths, profile.name, key, cert)
    if existing.sa_key is None:
        sa_key = keys.generate_private_key()
        keys.write_new_private_key(paths.sa_key, sa_key)
        files.write_new(paths.sa_pub, keys.public_key_pem(sa_key.public_key()), files.PUBLIC_MODE)
    return paths


def read_layout(
    paths: PkiPaths,
    profiles: PkiProfiles,
    *,
    extra_sans: tuple[str, ...] = (),
    require_complete: bool,
    check_profiles: bool = True,
    read_leaf_keys: bool = True,
) -> ExistingPki:
    """Loads and checks every CA, standing leaf and the SA key pair already on disk.

    Refuses (PkiError) a half pair, a key readable by others, a key that does not match
    its certificate, a leaf not signed by the CA on disk, and, with `check_profiles`, a
    leaf that no longer matches its profile. With `require_complete`, anything missing
    is refused too. Without `read_leaf_keys`, leaf keys are not read or checked at all:
    rotation replaces them, and that is how it repairs a rotation interrupted between
    a key and its certificate, or a leaf key that was exposed.
    """
    cas: dict[str, KeyPair] = {}
    for profile in profiles.cas():
        found = _read_pair(paths, profile.name, require_complete, read_key=True)
        if found is not None:
            cert, key = found
            if key is None:  # unreachable: read_key=True always returns the key
                raise PkiError(f"{paths.key(profile.name)} is missing")
            pair = KeyPair(cert=cert, key=key)
            _check_ca(paths, profile.name, pair)
            cas[profile.name] = pair
    leaves: dict[str, x509.Certificate] = {}
    leaf_keys: dict[str, PrivateKey] = {}
    for profile in profiles.standing_leaves():
        found = _read_pair(paths, profile.name, require_complete, read_key=read_leaf_keys)
        if found is not None:
            cert, key = found
            _check_leaf(paths, profile, cert, cas, extra_sans, check_profiles)
            leaves[profile.name] = cert
            if key is not None:
                leaf_keys[profile.name] = key
    return ExistingPki(
        cas=cas,
        leaves=leaves,
        leaf_keys=leaf_keys,
        sa_key=_read_sa_key(paths, require_complete),
    )


def load_ca(paths: PkiPaths, name: str) -> KeyPair:
    """One CA's certificate and key, checked (present, matching, self-signed, a CA)."""
    found = _read_pair(paths, name, require=True, read_key=True)
    if found is None or found[1] is None:  # unreachable: required pairs raise when missing
        raise PkiError(f"{paths.cert(name)} is missing")
    pair = KeyPair(cert=found[0], key=found[1])
    _check_ca(paths, name, pair)
    return pair


def _read_pair(
    paths: PkiPaths, name: str, require: bool, *, read_key: bool
) -> tuple[x509.Certificate, PrivateKey | None] | None:
    cert_path, key_path = paths.cert(name), paths.key(name)
    has_cert, has_key = cert_path.exists(), key_path.exists()
    if not read_key:
        if not has_cert and require:
            raise PkiError(f"{cert_path} is missing; run `securekube pki init` first")
        return (certs.load_certificate(cert_path), None) if has_cert else None
    if has_key and not has_cert:
        raise PkiError(
            f"{key_path} exists without its certificate {cert_path}; "
            "restore the certificate or remove the key, then run init again"
        )
    if has_cert and not has_key:
        raise PkiError(
            f"{cert_path} exists without its private key {key_path}; "
            "restore the key or remove the certificate, then run init again"
        )
    if not has_cert:
        if require:
            raise PkiError(f"{cert_path} is missing; run `securekube pki init` first")
        return None
    cert, key = certs.load_certificate(cert_path), keys.load_private_key(key_path)
    if not keys.same_public_key(cert.public_key(), key.public_key()):
        raise PkiError(f"{key_path} is not the private key of {cert_path}")
    return cert, key


def _check_ca(paths: PkiPaths, name: str, pair: KeyPair) -> None:
    if not certs.is_ca(pair.cert) or not certs.is_signed_by(pair.cert, pair.cert):
        raise PkiError(f"{paths.cert(name)} is not a self-signed CA certificate")


def _check_leaf(
    paths: PkiPaths,
    profile: CertProfile,
    cert: x509.Certificate,
    cas: dict[str, KeyPair],
    extra_sans: tuple[str, ...],
    check_profile: bool,
) -> None:
    cert_path = paths.cert(profile.name)
    issuer = cas.get(profile.issuer or "")
    if issuer is None or not certs.is_signed_by(cert, issuer.cert):
        raise PkiError(
            f"{cert_path} is not signed by the CA on disk ({paths.cert(profile.issuer or '')}); "
            "refusing to mix certificates from different CAs"
        )
    if not check_profile:
        return
    required = merge_sans(profile.sans, extra_sans if profile.accepts_extra_sans else ())
    reason = certs.leaf_mismatch(cert, profile, required)
    if reason is not None:
        raise PkiError(
            f"{cert_path} does not match its profile: {reason}; "
            "reissue it with `securekube pki rotate` (with --san for extra names)"
        )


def _read_sa_key(paths: PkiPaths, require: bool) -> PrivateKey | None:
    has_key, has_pub = paths.sa_key.exists(), paths.sa_pub.exists()
    if has_key != has_pub:
        present, absent = (paths.sa_key, paths.sa_pub) if has_key else (paths.sa_pub, paths.sa_key)
        raise PkiError(
            f"{present} exists without {absent}; restore it or remove {present}, "
            "then run init again (removing the key invalidates every ServiceAccount token)"
        )
    if not has_key:
        if require:
            raise PkiError(f"{paths.sa_key} is missing; run `securekube pki init` first")
        return None
    key = keys.load_private_key(paths.sa_key)
    if not keys.same_public_key(keys.load_public_key(paths.sa_pub), key.public_key()):
        raise PkiError(f"{paths.sa_pub} is not the public half of {paths.sa_key}")
    return key


def _publish_new(paths: PkiPaths, name: str, key: PrivateKey, cert: x509.Certificate) -> None:
    files.ensure_directory(paths.cert(name).parent)
    # Key first: an interrupted run leaves a key without a certificate, which the next
    # run reports, rather than a certificate whose key is gone.
    keys.write_new_private_key(paths.key(name), key)
    certs.write_new_certificate(paths.cert(name), cert)


def resolve_now(now: datetime | None) -> datetime:
    """`now`, or the current UTC time when None; a naive datetime is a programming error."""
    if now is None:
        return certs.utcnow()
    if now.tzinfo is None:
        raise ValueError("now must be timezone-aware")
    return now


def resolve_extra_sans(
    profiles: PkiProfiles, extra_sans: tuple[str, ...] | list[str]
) -> tuple[str, ...]:
    """The user's extra SANs, validated and de-duplicated, before anything is written."""
    extra = merge_sans(tuple(extra_sans))
    if extra and not any(p.accepts_extra_sans for p in profiles.standing_leaves()):
        raise PkiError("no certificate profile accepts extra SANs (acceptsExtraSans)")
    return extra
