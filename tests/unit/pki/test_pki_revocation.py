"""The revocation list: signed by the cluster CA, tamper-evident, reloaded by the server."""
from __future__ import annotations

import pytest

from securekube.pki.certs import load_certificate
from securekube.pki.errors import PkiError
from securekube.pki.layout import PkiPaths, bootstrap
from securekube.pki.profiles import load_profiles
from securekube.pki.revocation import RevocationList, crl_path, format_serial, parse_serial, read_revoked, revoke


@pytest.fixture()
def paths(tmp_path) -> PkiPaths:
    return bootstrap(tmp_path / "pki", load_profiles())


def test_revoke_adds_serials_and_is_idempotent(paths):
    ca = load_certificate(paths.cert("ca"))
    assert read_revoked(paths, ca) == frozenset()
    assert revoke(paths.root, 1234) is True
    assert revoke(paths.root, 0xABCDEF) is True
    assert revoke(paths.root, 1234) is False
    assert read_revoked(paths, ca) == {1234, 0xABCDEF}


def test_serial_forms(paths):
    assert parse_serial("0x4d2") == parse_serial("1234") == parse_serial("04:d2") == 1234
    assert format_serial(1234) == "04:d2"
    with pytest.raises(PkiError):
        parse_serial("not-a-serial")


def test_crl_signed_by_another_ca_is_refused(paths, tmp_path):
    other = bootstrap(tmp_path / "other", load_profiles())
    revoke(other.root, 99)
    crl_path(paths).write_bytes(crl_path(other).read_bytes())
    with pytest.raises(PkiError, match="not signed by the cluster CA"):
        read_revoked(paths, load_certificate(paths.cert("ca")))


def test_server_list_reloads_and_keeps_the_last_good_list(paths):
    revocations = RevocationList(paths, load_certificate(paths.cert("ca")))
    assert revocations.serials == frozenset()
    revoke(paths.root, 7)
    assert revocations.check() is True and revocations.serials == {7}
    crl_path(paths).write_text("garbage")
    assert revocations.check() is False and revocations.serials == {7}
