"""`bootstrap`: the PKI directory it creates, and its refusal of layouts it cannot trust."""

from __future__ import annotations

import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from cryptography.x509.verification import VerificationError

from securekube.pki import keys
from securekube.pki.certs import BACKDATE
from securekube.pki.errors import PkiError
from securekube.pki.layout import PkiPaths, bootstrap
from securekube.pki.profiles import PkiProfiles

API_SANS = [
    "localhost",
    "127.0.0.1",
    "::1",
    "kubernetes",
    "kubernetes.default",
    "kubernetes.default.svc",
    "kubernetes.default.svc.cluster.local",
]
ALL = ["ca", "etcd-ca", "apiserver", "admin", "apiserver-etcd-client", "etcd-server", "etcd-peer"]


def _snapshot(root: Path) -> dict[str, bytes]:
    return {
        str(p.relative_to(root)): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()
    }


def test_every_key_is_p256_and_owner_only(pki: PkiPaths) -> None:
    key_files = [pki.key(name) for name in ALL] + [pki.sa_key]
    for path in key_files:
        assert stat.S_IMODE(path.stat().st_mode) == 0o600, path
        assert isinstance(keys.load_private_key(path).curve, ec.SECP256R1), path
    assert isinstance(keys.load_public_key(pki.sa_pub).curve, ec.SECP256R1)
    assert sorted(p.name for p in (pki.root / "etcd").iterdir()) == [
        "ca.crt",
        "ca.key",
        "peer.crt",
        "peer.key",
        "server.crt",
        "server.key",
    ]


def test_the_serving_certificate_verifies_for_every_cluster_name(
    pki: PkiPaths, load_cert, verify_server, now: datetime
) -> None:
    ca, apiserver = load_cert(pki, "ca"), load_cert(pki, "apiserver")
    for host in API_SANS:
        chain = verify_server(apiserver, ca, host, now)
        assert chain[-1] == ca
    with pytest.raises(VerificationError, match="no matching subjectAltName"):
        verify_server(apiserver, ca, "attacker.example", now)


def test_the_serving_certificate_has_exactly_the_profile_sans(pki: PkiPaths, load_cert) -> None:
    san = load_cert(pki, "apiserver").extensions.get_extension_for_class(
        x509.SubjectAlternativeName
    )
    texts = [n.value if isinstance(n, x509.DNSName) else str(n.value) for n in san.value]
    assert texts == API_SANS


def test_extra_sans_go_into_the_api_serving_certificate_only(
    tmp_path: Path, profiles: PkiProfiles, load_cert, verify_server, now: datetime
) -> None:
    paths = bootstrap(tmp_path, profiles, extra_sans=["Node1.Lab.example", "192.0.2.10"], now=now)
    ca = load_cert(paths, "ca")
    verify_server(load_cert(paths, "apiserver"), ca, "node1.lab.example", now)
    verify_server(load_cert(paths, "apiserver"), ca, "192.0.2.10", now)
    with pytest.raises(VerificationError):
        verify_server(
            load_cert(paths, "etcd-server"), load_cert(paths, "etcd-ca"), "192.0.2.10", now
        )


def test_client_certificates_verify_as_clients_only(
    pki: PkiPaths, load_cert, verify_client, verify_server, now: datetime
) -> None:
    ca, admin = load_cert(pki, "ca"), load_cert(pki, "admin")
    assert verify_client(admin, ca, now).chain[-1] == ca
    # A serving certificate (serverAuth only) cannot log in as a client.
    with pytest.raises(VerificationError, match="EKU"):
        verify_client(load_cert(pki, "apiserver"), ca, now)
    # The etcd client certificate is from the other CA: useless against the API server.
    with pytest.raises(VerificationError):
        verify_client(load_cert(pki, "apiserver-etcd-client"), ca, now)
    etcd_ca = load_cert(pki, "etcd-ca")
    verify_client(load_cert(pki, "apiserver-etcd-client"), etcd_ca, now)
    verify_server(load_cert(pki, "etcd-server"), etcd_ca, "127.0.0.1", now)
    # etcd peers both serve and dial each other.
    verify_client(load_cert(pki, "etcd-peer"), etcd_ca, now)
    verify_server(load_cert(pki, "etcd-peer"), etcd_ca, "localhost", now)


def test_admin_identity_is_cluster_admins_not_system_masters(pki: PkiPaths, load_cert) -> None:
    subject = load_cert(pki, "admin").subject
    assert [a.value for a in subject.get_attributes_for_oid(NameOID.COMMON_NAME)] == [
        "securekube-admin"
    ]
    groups = [a.value for a in subject.get_attributes_for_oid(NameOID.ORGANIZATION_NAME)]
    assert groups == ["securekube:cluster-admins"]
    assert not any(p.name.startswith("breakglass") for p in pki.root.rglob("*"))


def test_leaf_extensions_and_lifetime(pki: PkiPaths, load_cert, now: datetime) -> None:
    ca = load_cert(pki, "ca")
    ca_ski = ca.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    for name in ["apiserver", "admin"]:
        cert = load_cert(pki, name)
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert basic.critical and basic.value.ca is False
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.digital_signature
        assert not (
            usage.value.key_cert_sign or usage.value.crl_sign or usage.value.key_encipherment
        )
        aki = cert.extensions.get_extension_for_class(x509.AuthorityKeyIdentifier).value
        assert aki.key_identifier == ca_ski.digest
        cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier)
        assert cert.not_valid_before_utc == now - BACKDATE
        assert cert.not_valid_after_utc == now + timedelta(days=30)
    ekus = load_cert(pki, "apiserver").extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    assert list(ekus.value) == [ExtendedKeyUsageOID.SERVER_AUTH]


def test_ca_extensions_and_lifetime(pki: PkiPaths, load_cert, now: datetime) -> None:
    for name in ["ca", "etcd-ca"]:
        cert = load_cert(pki, name)
        basic = cert.extensions.get_extension_for_class(x509.BasicConstraints)
        assert basic.critical and basic.value.ca and basic.value.path_length == 0
        usage = cert.extensions.get_extension_for_class(x509.KeyUsage)
        assert usage.critical and usage.value.key_cert_sign and usage.value.crl_sign
        assert cert.not_valid_after_utc == now + timedelta(days=1095)
    assert load_cert(pki, "ca").public_key() != load_cert(pki, "etcd-ca").public_key()


def test_bootstrap_twice_reuses_everything(pki: PkiPaths, profiles: PkiProfiles) -> None:
    before = _snapshot(pki.root)
    bootstrap(pki.root, profiles)
    assert _snapshot(pki.root) == before


def test_bootstrap_recreates_only_what_is_missing(
    pki: PkiPaths, profiles: PkiProfiles, load_cert, verify_client, now: datetime
) -> None:
    before = _snapshot(pki.root)
    pki.cert("admin").unlink()
    pki.key("admin").unlink()
    bootstrap(pki.root, profiles, now=now)
    after = _snapshot(pki.root)
    changed = {name for name in before if before[name] != after[name]}
    assert changed == {"admin.crt", "admin.key"}
    verify_client(load_cert(pki, "admin"), load_cert(pki, "ca"), now)


def test_a_key_without_its_certificate_is_refused_and_nothing_is_written(
    pki: PkiPaths, profiles: PkiProfiles
) -> None:
    pki.cert("ca").unlink()
    before = _snapshot(pki.root)
    with pytest.raises(PkiError, match=r"ca.key exists without its certificate"):
        bootstrap(pki.root, profiles)
    assert _snapshot(pki.root) == before


def test_a_certificate_from_another_ca_is_refused(
    pki: PkiPaths, profiles: PkiProfiles, tmp_path: Path
) -> None:
    other = bootstrap(tmp_path / "other", profiles)
    for path in (pki.cert("etcd-server"), pki.key("etcd-server")):
        path.unlink()
    pki.cert("etcd-server").write_bytes(other.cert("etcd-server").read_bytes())
    pki.key("etcd-server").write_bytes(other.key("etcd-server").read_bytes())
    pki.key("etcd-server").chmod(0o600)
    with pytest.raises(PkiError, match=r"etcd/server.crt is not signed by the CA on disk"):
        bootstrap(pki.root, profiles)


def test_a_key_that_does_not_match_its_certificate_is_refused(
    pki: PkiPaths, profiles: PkiProfiles
) -> None:
    pki.key("apiserver").unlink()
    keys.write_new_private_key(pki.key("apiserver"), keys.generate_private_key())
    with pytest.raises(PkiError, match="apiserver.key is not the private key of"):
        bootstrap(pki.root, profiles)


def test_a_key_others_can_read_is_refused(pki: PkiPaths, profiles: PkiProfiles) -> None:
    pki.sa_key.chmod(0o640)
    with pytest.raises(PkiError, match="sa.key is readable by group or others"):
        bootstrap(pki.root, profiles)


def test_a_replaced_service_account_public_key_is_refused(
    pki: PkiPaths, profiles: PkiProfiles
) -> None:
    pki.sa_pub.write_bytes(keys.public_key_pem(keys.generate_private_key().public_key()))
    with pytest.raises(PkiError, match="sa.pub is not the public half"):
        bootstrap(pki.root, profiles)


def test_a_newly_requested_san_is_refused_with_a_rotate_hint(
    pki: PkiPaths, profiles: PkiProfiles
) -> None:
    before = _snapshot(pki.root)
    with pytest.raises(PkiError, match=r"lacks the SAN\(s\) node1.example; .*pki rotate"):
        bootstrap(pki.root, profiles, extra_sans=["node1.example"])
    assert _snapshot(pki.root) == before


def test_an_invalid_extra_san_is_refused_before_anything_is_written(
    tmp_path: Path, profiles: PkiProfiles
) -> None:
    with pytest.raises(PkiError, match="invalid subject alternative name"):
        bootstrap(tmp_path / "pki", profiles, extra_sans=["bad name"])
    assert not (tmp_path / "pki").exists()
