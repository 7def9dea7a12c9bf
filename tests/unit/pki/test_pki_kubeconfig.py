"""Kubeconfig files: real v1 format that the official client reads, 0600, https only."""

from __future__ import annotations

import base64
import stat
from pathlib import Path

import pytest
import yaml

from securekube.pki.errors import PkiError
from securekube.pki.kubeconfig import write_admin_kubeconfig, write_kubeconfig
from securekube.pki.layout import PkiPaths
from securekube.pki.profiles import PkiProfiles


def test_admin_kubeconfig_loads_in_the_official_client(
    pki: PkiPaths, profiles: PkiProfiles
) -> None:
    from kubernetes import client, config

    path = write_admin_kubeconfig(pki, profiles, server_url="https://127.0.0.1:6443")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    configuration = client.Configuration()
    config.load_kube_config(config_file=str(path), client_configuration=configuration)
    assert configuration.host == "https://127.0.0.1:6443"
    assert Path(configuration.cert_file).read_bytes() == pki.cert("admin").read_bytes()
    assert Path(configuration.ssl_ca_cert).read_bytes() == pki.cert("ca").read_bytes()
    document = yaml.safe_load(path.read_text())
    assert document["current-context"] == "securekube-admin@securekube"
    assert document["users"][0]["name"] == "securekube-admin"
    key_pem = base64.b64decode(document["users"][0]["user"]["client-key-data"])
    assert key_pem == pki.key("admin").read_bytes()


@pytest.mark.parametrize("url", ["http://127.0.0.1:6443", "127.0.0.1:6443", "https://"])
def test_a_non_https_server_is_refused(tmp_path: Path, url: str) -> None:
    with pytest.raises(PkiError, match="expected https://HOST"):
        write_kubeconfig(
            tmp_path / "k",
            cluster_name="c",
            server_url=url,
            ca_pem=b"x",
            user_name="u",
            client_cert_pem=b"x",
            client_key_pem=b"x",
        )
    assert not (tmp_path / "k").exists()


def test_overwrite_false_keeps_an_existing_file(tmp_path: Path) -> None:
    target = tmp_path / "k"
    target.write_text("mine")
    with pytest.raises(PkiError, match="already exists"):
        write_kubeconfig(
            target,
            cluster_name="c",
            server_url="https://h",
            ca_pem=b"x",
            user_name="u",
            client_cert_pem=b"x",
            client_key_pem=b"x",
            overwrite=False,
        )
    assert target.read_text() == "mine"
