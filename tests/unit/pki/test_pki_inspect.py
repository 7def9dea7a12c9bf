"""`inspect`: what a person sees about each certificate."""

from __future__ import annotations

from datetime import datetime, timedelta
from pathlib import Path

import pytest

from securekube.pki.errors import PkiError
from securekube.pki.inspect import inspect
from securekube.pki.layout import PkiPaths


def test_inspect_lists_cas_first_with_subjects_sans_and_expiry(
    pki: PkiPaths, load_cert, now: datetime
) -> None:
    infos = inspect(pki.root)
    assert [i.name for i in infos] == [
        "ca",
        "etcd-ca",
        "admin",
        "apiserver",
        "apiserver-etcd-client",
        "etcd-peer",
        "etcd-server",
    ]
    by_name = {i.name: i for i in infos}
    admin = by_name["admin"]
    assert admin.subject == "CN=securekube-admin,O=securekube:cluster-admins"
    assert admin.issuer == "CN=securekube-ca"
    assert admin.sans == ()
    assert admin.extended_key_usages == ("clientAuth",)
    assert admin.not_after == now + timedelta(days=30)
    assert admin.serial == load_cert(pki, "admin").serial_number
    assert not admin.expired(now) and admin.expired(now + timedelta(days=31))
    etcd_server = by_name["etcd-server"]
    assert etcd_server.issuer == "CN=securekube-etcd-ca"
    assert etcd_server.sans == ("localhost", "127.0.0.1", "::1")
    assert etcd_server.path == pki.root / "etcd" / "server.crt"
    assert by_name["ca"].is_ca and by_name["ca"].not_after == now + timedelta(days=1095)


def test_inspect_of_a_missing_directory_is_an_error(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="is not a directory"):
        inspect(tmp_path / "absent")
