"""ECDSA P-256 private keys: generation, PEM encoding, and reading them back safely.

Private keys are written owner-only (0600) from the moment the file exists, and a key
file that group or others can read is refused when loaded: a leaked key is worse than
a cluster that will not start.
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.hazmat.primitives.asymmetric.types import CertificatePublicKeyTypes

from securekube.pki import files
from securekube.pki.errors import PkiError

PrivateKey = ec.EllipticCurvePrivateKey
PublicKey = ec.EllipticCurvePublicKey


def generate_private_key() -> PrivateKey:
    """A fresh ECDSA key on curve P-256 (secp256r1), the only key type securekube issues."""
    return ec.generate_private_key(ec.SECP256R1())


def private_key_pem(key: PrivateKey) -> bytes:
    """The key as unencrypted PKCS#8 PEM (`BEGIN PRIVATE KEY`), as kubeconfig and etcd read it."""
    return key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )


def public_key_pem(key: PublicKey) -> bytes:
    """The public key as SubjectPublicKeyInfo PEM (`BEGIN PUBLIC KEY`)."""
    return key.public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )


def same_public_key(a: CertificatePublicKeyTypes, b: CertificatePublicKeyTypes) -> bool:
    """Whether two public keys are the same key (compared by their DER encoding)."""
    der = serialization.Encoding.DER
    spki = serialization.PublicFormat.SubjectPublicKeyInfo
    return a.public_bytes(der, spki) == b.public_bytes(der, spki)


def write_new_private_key(path: Path, key: PrivateKey) -> None:
    """Writes a key file that must not exist yet, mode 0600."""
    files.write_new(path, private_key_pem(key), files.PRIVATE_MODE)


def replace_private_key(path: Path, key: PrivateKey) -> None:
    """Atomically replaces a key file, mode 0600; a reader sees the old or the new key."""
    files.replace(path, private_key_pem(key), files.PRIVATE_MODE)


def load_private_key(path: Path) -> PrivateKey:
    """Reads a PEM private key, refusing one others can read or that is not ECDSA P-256."""
    data = _read_owner_only(path)
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError) as exc:
        # The parser's message is dropped on purpose: it may quote the file's bytes.
        raise PkiError(f"{path} is not an unencrypted PEM private key") from exc
    if not isinstance(key, ec.EllipticCurvePrivateKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PkiError(f"{path} is not an ECDSA P-256 key")
    return key


def load_public_key(path: Path) -> PublicKey:
    """Reads a PEM public key, refusing one that is not ECDSA P-256."""
    try:
        key = serialization.load_pem_public_key(path.read_bytes())
    except OSError as exc:
        raise PkiError(f"cannot read {path}: {exc.strerror}") from exc
    except (ValueError, TypeError) as exc:
        raise PkiError(f"{path} is not a PEM public key") from exc
    if not isinstance(key, ec.EllipticCurvePublicKey) or not isinstance(key.curve, ec.SECP256R1):
        raise PkiError(f"{path} is not an ECDSA P-256 key")
    return key


def _read_owner_only(path: Path) -> bytes:
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError as exc:
        raise PkiError(f"cannot read {path}: {exc.strerror}") from exc
    # Checking the opened file (not the path) leaves no window to swap it underneath.
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise PkiError(f"{path} is not a regular file")
        if mode & 0o077:
            raise PkiError(
                f"{path} is readable by group or others (mode {stat.S_IMODE(mode):04o}); "
                "a private key must be mode 0600"
            )
        return handle.read()
