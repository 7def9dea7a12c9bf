"""The Ed25519 key that signs audit log checkpoints, kept in the cluster's PKI directory.

    audit-signing.key   private key, PKCS#8 PEM, mode 0600 (refused if group or others can read it)
    audit-signing.pub   public key, SubjectPublicKeyInfo PEM, mode 0644 - give it to whoever verifies

The key is separate from every TLS and token key: a leaked serving key must not let anyone forge
an audit history, and verifiers need only the public half.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric.ed25519 import Ed25519PrivateKey, Ed25519PublicKey

from securekube.audit.errors import AuditKeyError
from securekube.pki import files
from securekube.pki.errors import PkiError

PRIVATE_KEY_NAME = "audit-signing.key"
PUBLIC_KEY_NAME = "audit-signing.pub"


def load_or_create_audit_key(pki_dir: Path) -> Ed25519PrivateKey:
    """The audit signing key in `pki_dir`, created (with its .pub) on first use."""
    pki_dir = Path(pki_dir)
    private_path, public_path = pki_dir / PRIVATE_KEY_NAME, pki_dir / PUBLIC_KEY_NAME
    try:
        files.ensure_directory(pki_dir)
        if not private_path.exists():
            key = Ed25519PrivateKey.generate()
            # Public half first: a crash in between leaves a .pub without a key, which is replaced
            # below on the next start, never a key whose signatures nobody can check.
            files.replace(public_path, _public_pem(key.public_key()), files.PUBLIC_MODE)
            files.write_new(private_path, _private_pem(key), files.PRIVATE_MODE)
    except PkiError as exc:
        if not private_path.exists():
            raise AuditKeyError(f"cannot create the audit signing key: {exc}") from None
        # Another process created it at the same moment: use theirs.
    key = load_audit_private_key(private_path)
    expected = _public_pem(key.public_key())
    try:
        current = public_path.read_bytes() if public_path.exists() else None
        if current != expected:
            if current is not None and _loads_as_other_key(current, key.public_key()):
                raise AuditKeyError(f"{public_path} does not belong to {private_path}; "
                                    "remove the stale one (verifiers use the .pub)")
            files.replace(public_path, expected, files.PUBLIC_MODE)
    except PkiError as exc:
        raise AuditKeyError(f"cannot write {public_path}: {exc}") from None
    return key


def load_audit_private_key(path: Path) -> Ed25519PrivateKey:
    """Reads the signing key, refusing a file others can read or a key that is not Ed25519."""
    path = Path(path)
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NOFOLLOW)
    except OSError as exc:
        raise AuditKeyError(f"cannot read audit signing key {path}: {exc.strerror}") from None
    with os.fdopen(fd, "rb") as handle:
        mode = os.fstat(handle.fileno()).st_mode
        if not stat.S_ISREG(mode):
            raise AuditKeyError(f"{path} is not a regular file")
        if mode & 0o077:
            raise AuditKeyError(f"{path} is readable by group or others (mode {stat.S_IMODE(mode):04o}); "
                                "the audit signing key must be mode 0600")
        data = handle.read()
    try:
        key = serialization.load_pem_private_key(data, password=None)
    except (ValueError, TypeError):
        # The parser's message is dropped on purpose: it may quote the file's bytes.
        raise AuditKeyError(f"{path} is not an unencrypted PEM private key") from None
    if not isinstance(key, Ed25519PrivateKey):
        raise AuditKeyError(f"{path} is not an Ed25519 key")
    return key


def load_audit_public_key(path: Path) -> Ed25519PublicKey:
    """Reads the public key verifiers check checkpoints with."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise AuditKeyError(f"cannot read audit public key {path}: {exc.strerror}") from None
    try:
        key = serialization.load_pem_public_key(data)
    except (ValueError, TypeError):
        raise AuditKeyError(f"{path} is not a PEM public key") from None
    if not isinstance(key, Ed25519PublicKey):
        raise AuditKeyError(f"{path} is not an Ed25519 public key")
    return key


def _private_pem(key: Ed25519PrivateKey) -> bytes:
    return key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                             serialization.NoEncryption())


def _public_pem(key: Ed25519PublicKey) -> bytes:
    return key.public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)


def _loads_as_other_key(pem: bytes, mine: Ed25519PublicKey) -> bool:
    # A .pub that is a valid, different key is a mix-up to report; an unreadable one is just replaced.
    try:
        other = serialization.load_pem_public_key(pem)
    except (ValueError, TypeError):
        return False
    return isinstance(other, Ed25519PublicKey) and _public_pem(other) != _public_pem(mine)
