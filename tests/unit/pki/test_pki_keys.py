"""Private keys: ECDSA P-256, owner-only from creation, refused when exposed."""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest
from cryptography.hazmat.primitives.asymmetric import ec

from securekube.pki import files, keys
from securekube.pki.errors import PkiError


def test_new_key_is_p256_and_0600_even_with_a_permissive_umask(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    old_umask = os.umask(0)
    try:
        keys.write_new_private_key(path, keys.generate_private_key())
    finally:
        os.umask(old_umask)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    loaded = keys.load_private_key(path)
    assert isinstance(loaded.curve, ec.SECP256R1)
    assert path.read_bytes().startswith(b"-----BEGIN PRIVATE KEY-----")


def test_writing_a_new_key_never_overwrites_an_existing_file(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    path.write_bytes(b"precious")
    with pytest.raises(PkiError, match="already exists"):
        keys.write_new_private_key(path, keys.generate_private_key())
    assert path.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["k.key"]  # no temp file left behind


def test_a_key_readable_by_others_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    files.write_new(path, keys.private_key_pem(keys.generate_private_key()), 0o644)
    with pytest.raises(PkiError, match="readable by group or others .*0644"):
        keys.load_private_key(path)


def test_a_key_on_another_curve_is_refused(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    other = ec.generate_private_key(ec.SECP384R1())
    files.write_new(path, keys.private_key_pem(other), files.PRIVATE_MODE)
    with pytest.raises(PkiError, match="not an ECDSA P-256 key"):
        keys.load_private_key(path)


def test_an_unreadable_key_error_does_not_quote_the_file(tmp_path: Path) -> None:
    path = tmp_path / "k.key"
    secret = b"-----BEGIN PRIVATE KEY-----\nTOPSECRETBYTES\n-----END PRIVATE KEY-----\n"
    files.write_new(path, secret, files.PRIVATE_MODE)
    with pytest.raises(PkiError) as caught:
        keys.load_private_key(path)
    assert "TOPSECRET" not in str(caught.value)
