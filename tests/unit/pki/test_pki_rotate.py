"""`rotate_leaves`: fresh leaves from the same CAs, atomically, CAs and SA key untouched."""

from __future__ import annotations

import stat
from datetime import datetime, timedelta
from pathlib import Path

import pytest

from securekube.pki import keys
from securekube.pki.errors import PkiError
from securekube.pki.kubeconfig import current_cluster, write_admin_kubeconfig
from securekube.pki.layout import PkiPaths, bootstrap
from securekube.pki.profiles import PkiProfiles
from securekube.pki.rotate import rotate_leaves

LEAVES = ["apiserver", "admin", "apiserver-etcd-client", "etcd-server", "etcd-peer"]
KEPT = ["ca.crt", "ca.key", "etcd/ca.crt", "etcd/ca.key", "sa.key", "sa.pub"]


def test_rotate_reissues_every_leaf_from_the_same_ca(
    pki: PkiPaths, profiles: PkiProfiles, load_cert, verify_client, verify_server, now: datetime
) -> None:
    kept_before = {name: (pki.root / name).read_bytes() for name in KEPT}
    old = {name: load_cert(pki, name) for name in LEAVES}
    old_keys = {name: pki.key(name).read_bytes() for name in LEAVES}
    later = now + timedelta(days=20)

    assert rotate_leaves(pki.root, profiles, now=later) == LEAVES

    assert {name: (pki.root / name).read_bytes() for name in KEPT} == kept_before
    for name in LEAVES:
        new = load_cert(pki, name)
        assert new.serial_number != old[name].serial_number, name
        assert new.subject == old[name].subject, name
        assert new.issuer == old[name].issuer, name
        assert new.not_valid_after_utc == later + timedelta(days=30), name
        assert pki.key(name).read_bytes() != old_keys[name], name
        assert stat.S_IMODE(pki.key(name).stat().st_mode) == 0o600, name
        assert keys.same_public_key(
            new.public_key(), keys.load_private_key(pki.key(name)).public_key()
        )
    ca, etcd_ca = load_cert(pki, "ca"), load_cert(pki, "etcd-ca")
    verify_server(load_cert(pki, "apiserver"), ca, "kubernetes.default.svc", later)
    verify_client(load_cert(pki, "admin"), ca, later)
    verify_server(load_cert(pki, "etcd-server"), etcd_ca, "127.0.0.1", later)
    # No downtime: the old serving certificate is still trusted until it expires.
    verify_server(old["apiserver"], ca, "localhost", later)


def test_rotate_replaces_files_atomically(pki: PkiPaths, profiles: PkiProfiles) -> None:
    # A process that opened the old key (a server mid-reload) still reads it whole;
    # the path now names a different, complete file. In-place rewriting would fail this.
    with open(pki.key("apiserver"), "rb") as old_handle:
        old_bytes = pki.key("apiserver").read_bytes()
        rotate_leaves(pki.root, profiles)
        assert old_handle.read() == old_bytes
    assert pki.key("apiserver").read_bytes() != old_bytes
    assert not [p for p in pki.root.rglob("*") if p.name.endswith(".tmp")]


def test_rotate_keeps_extra_sans_and_adds_new_ones(
    tmp_path: Path, profiles: PkiProfiles, load_cert, verify_server, now: datetime
) -> None:
    paths = bootstrap(tmp_path, profiles, extra_sans=["node1.example"], now=now)
    rotate_leaves(paths.root, profiles, extra_sans=["10.0.0.5"], now=now)
    apiserver, ca = load_cert(paths, "apiserver"), load_cert(paths, "ca")
    for host in ["node1.example", "10.0.0.5", "kubernetes.default"]:
        verify_server(apiserver, ca, host, now)
    # After rotation, init accepts the new name as present.
    bootstrap(paths.root, profiles, extra_sans=["10.0.0.5"])


def test_rotate_refreshes_the_admin_kubeconfig(pki: PkiPaths, profiles: PkiProfiles) -> None:
    write_admin_kubeconfig(pki, profiles, server_url="https://node1.example:6443")
    before = pki.admin_kubeconfig.read_bytes()
    rotate_leaves(pki.root, profiles)
    assert pki.admin_kubeconfig.read_bytes() != before
    assert current_cluster(pki.admin_kubeconfig) == ("securekube", "https://node1.example:6443")
    assert stat.S_IMODE(pki.admin_kubeconfig.stat().st_mode) == 0o600


def test_rotate_needs_a_complete_directory(tmp_path: Path, profiles: PkiProfiles) -> None:
    with pytest.raises(PkiError, match="ca.crt is missing; run `securekube pki init` first"):
        rotate_leaves(tmp_path, profiles)


def test_rotate_refuses_a_tampered_directory_and_changes_nothing(
    pki: PkiPaths, profiles: PkiProfiles, tmp_path: Path
) -> None:
    other = bootstrap(tmp_path / "other", profiles)
    pki.cert("admin").write_bytes(other.cert("admin").read_bytes())
    pki.key("admin").write_bytes(other.key("admin").read_bytes())
    before = {p: p.read_bytes() for p in pki.root.rglob("*") if p.is_file()}
    with pytest.raises(PkiError, match="admin.crt is not signed by the CA on disk"):
        rotate_leaves(pki.root, profiles)
    assert {p: p.read_bytes() for p in pki.root.rglob("*") if p.is_file()} == before
