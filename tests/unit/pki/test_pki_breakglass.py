"""The break-glass credential: system:masters, short-lived, on request, outside the PKI dir."""

from __future__ import annotations

import base64
import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
import yaml
from cryptography import x509
from cryptography.x509.oid import NameOID

from securekube.pki.breakglass import issue_breakglass
from securekube.pki.errors import PkiError
from securekube.pki.layout import PkiPaths
from securekube.pki.profiles import PkiProfiles


def _client_cert(kubeconfig: Path) -> x509.Certificate:
    user = yaml.safe_load(kubeconfig.read_text())["users"][0]["user"]
    return x509.load_pem_x509_certificate(base64.b64decode(user["client-certificate-data"]))


def test_breakglass_is_system_masters_for_one_hour(
    pki: PkiPaths, profiles: PkiProfiles, tmp_path: Path, load_cert, verify_client, now: datetime
) -> None:
    before = sorted(p.name for p in pki.root.rglob("*"))
    out = tmp_path / "breakglass.kubeconfig"
    cert = issue_breakglass(
        pki.root, profiles, server_url="https://127.0.0.1:6443", out=out, now=now
    )
    assert stat.S_IMODE(out.stat().st_mode) == 0o600
    written = _client_cert(out)
    assert written == cert
    groups = [a.value for a in written.subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert groups == ["system:masters"]
    assert written.not_valid_after_utc == now + timedelta(hours=1)
    verify_client(written, load_cert(pki, "ca"), now)
    assert sorted(p.name for p in pki.root.rglob("*")) == before  # nothing kept in the PKI dir


def test_breakglass_ttl_is_honoured_up_to_its_maximum(
    pki: PkiPaths, profiles: PkiProfiles, tmp_path: Path, now: datetime
) -> None:
    cert = issue_breakglass(
        pki.root,
        profiles,
        server_url="https://h:6443",
        out=tmp_path / "a",
        ttl=timedelta(minutes=15),
        now=now,
    )
    assert cert.not_valid_after_utc == now + timedelta(minutes=15)
    with pytest.raises(
        PkiError, match="requested lifetime 9h for 'breakglass' exceeds its maximum 8h"
    ):
        issue_breakglass(
            pki.root,
            profiles,
            server_url="https://h:6443",
            out=tmp_path / "b",
            ttl=timedelta(hours=9),
            now=now,
        )
    assert not (tmp_path / "b").exists()


def test_breakglass_never_overwrites_a_file(
    pki: PkiPaths, profiles: PkiProfiles, tmp_path: Path
) -> None:
    out = tmp_path / "existing"
    out.write_text("keep me")
    with pytest.raises(PkiError, match="already exists"):
        issue_breakglass(pki.root, profiles, server_url="https://h", out=out)
    assert out.read_text() == "keep me"


def test_breakglass_needs_the_ca(tmp_path: Path, profiles: PkiProfiles) -> None:
    with pytest.raises(PkiError, match="ca.crt is missing"):
        issue_breakglass(tmp_path, profiles, server_url="https://h", out=tmp_path / "o")
