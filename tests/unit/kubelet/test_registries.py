"""A node trusts a registry only over verified HTTPS: the hosts.toml files registries.py writes and checks."""
from __future__ import annotations

import datetime as dt
import stat
import tomllib
from pathlib import Path

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from securekube.kubelet.containerd import CniNetwork, Containerd, ContainerdConfig, ContainerdError
from securekube.kubelet.registries import (
    RegistryTrustError,
    hosts_file_problems,
    is_loopback,
    pin_https,
    pull_refusal,
    registry_config_problems,
    registry_host,
    trust_registry,
)

HOST = "127.0.0.1:5000"


def _certificate(ca: bool) -> tuple[bytes, bytes]:
    """A self-signed certificate (a CA's, or a leaf's) and its key, both PEM."""
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "registry-ca" if ca else "registry")])
    now = dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateBuilder().subject_name(name).issuer_name(name).public_key(key.public_key())
               .serial_number(x509.random_serial_number()).not_valid_before(now)
               .not_valid_after(now + dt.timedelta(days=1)))
    if ca:
        builder = builder.add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    cert = builder.sign(key, hashes.SHA256())
    key_pem = key.private_bytes(serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                                serialization.NoEncryption())
    return cert.public_bytes(serialization.Encoding.PEM), key_pem


@pytest.fixture(scope="module")
def ca_pair() -> tuple[bytes, bytes]:
    return _certificate(ca=True)


def test_trusting_a_registry_writes_containerds_hosts_toml_and_the_ca(tmp_path: Path,
                                                                      ca_pair: tuple[bytes, bytes]) -> None:
    ca_pem, _ = ca_pair
    hosts_file = trust_registry(tmp_path, HOST, ca_pem)
    assert hosts_file == tmp_path / HOST / "hosts.toml"
    document = tomllib.loads(hosts_file.read_text())
    ca_file = str(tmp_path / HOST / "ca.crt")
    assert document["server"] == f"https://{HOST}" and document["ca"] == ca_file
    assert document["host"] == {f"https://{HOST}": {"capabilities": ["pull", "resolve"], "ca": ca_file}}
    assert "skip_verify" not in hosts_file.read_text()
    assert Path(ca_file).read_bytes() == ca_pem
    for path in (hosts_file, Path(ca_file)):
        assert stat.S_IMODE(path.stat().st_mode) == 0o644
    assert hosts_file_problems(hosts_file, HOST) == []
    assert pull_refusal(tmp_path, f"{HOST}/team/app:1") is None


def test_trusting_again_replaces_an_insecure_file(tmp_path: Path, ca_pair: tuple[bytes, bytes]) -> None:
    (tmp_path / HOST).mkdir()
    (tmp_path / HOST / "hosts.toml").write_text(f'server = "http://{HOST}"\n[host]\n')
    assert pull_refusal(tmp_path, f"{HOST}/app:1") is not None
    trust_registry(tmp_path, HOST, ca_pair[0])
    assert pull_refusal(tmp_path, f"{HOST}/app:1") is None


@pytest.mark.parametrize(("host", "says"), [
    (f"http://{HOST}", "plain HTTP is refused"),
    (f"https://{HOST}", "without a scheme"),
    ("../etc", "is not a host name"),
    ("registry.example/evil", "is not a host name"),
    ("registry.example:70000", "is not a TCP port"),
    ("[::fffff]:5000", "is not an IPv6 address"),
    ("_default", "is not a host name"),
])
def test_hosts_that_are_not_one_or_plain_http_are_refused(tmp_path: Path, ca_pair: tuple[bytes, bytes],
                                                          host: str, says: str) -> None:
    with pytest.raises(RegistryTrustError, match=says):
        trust_registry(tmp_path, host, ca_pair[0])
    assert list(tmp_path.iterdir()) == []


def test_a_private_key_is_refused_and_never_quoted(tmp_path: Path, ca_pair: tuple[bytes, bytes]) -> None:
    ca_pem, key_pem = ca_pair
    with pytest.raises(RegistryTrustError, match="private key") as refused:
        trust_registry(tmp_path, HOST, ca_pem + key_pem)
    body = key_pem.decode().splitlines()[1]
    assert body not in str(refused.value) and body not in repr(refused.value)
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("content", [b"", b"not a certificate", b"-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n"])
def test_something_that_is_not_a_certificate_is_refused(tmp_path: Path, content: bytes) -> None:
    with pytest.raises(RegistryTrustError, match="certificate"):
        trust_registry(tmp_path, HOST, content)
    assert list(tmp_path.iterdir()) == []


def test_a_leaf_certificate_is_not_a_ca(tmp_path: Path) -> None:
    leaf, _ = _certificate(ca=False)
    with pytest.raises(RegistryTrustError, match="not a CA"):
        trust_registry(tmp_path, HOST, leaf)


def test_a_host_port_directory_that_would_win_is_refused(tmp_path: Path, ca_pair: tuple[bytes, bytes]) -> None:
    (tmp_path / "127.0.0.1_5000_").mkdir()
    (tmp_path / "127.0.0.1_5000_" / "hosts.toml").write_text("[host]\n")
    with pytest.raises(RegistryTrustError, match="takes precedence"):
        trust_registry(tmp_path, HOST, ca_pair[0])


@pytest.mark.parametrize(("content", "says"), [
    (f'server = "http://{HOST}"\n[host]\n', "server must be an https:// URL"),
    (f'server = "https://{HOST}"\nskip_verify = true\n[host]\n', "skip_verify is refused"),
    (f'server = "https://{HOST}"\n[host."https://{HOST}"]\nskip_verify = true\n', "sets skip_verify"),
    (f'server = "https://{HOST}"\n[host."http://{HOST}"]\n', "is not https://"),
    (f'server = "https://{HOST}"\nca = "ca.crt"\n', "no [host] table"),
    ('[host."https://mirror.example"]\n', "needs an explicit https:// server"),
    ('server = "https://\n', "cannot be read as TOML"),
])
def test_insecure_hosts_files_are_found(tmp_path: Path, content: str, says: str) -> None:
    (tmp_path / HOST).mkdir()
    (tmp_path / HOST / "hosts.toml").write_text(content)
    problems = registry_config_problems(tmp_path)
    assert len(problems) == 1 and says in problems[0]
    refusal = pull_refusal(tmp_path, f"{HOST}/app:1")
    assert refusal is not None and says in refusal


def test_an_unconfigured_loopback_registry_is_refused_and_others_are_left_to_https(tmp_path: Path) -> None:
    refusal = pull_refusal(tmp_path, f"{HOST}/app:1")
    assert refusal is not None and "plain HTTP" in refusal and "not trusted" in refusal
    assert pull_refusal(tmp_path, "localhost:5000/app:1") is not None
    assert pull_refusal(tmp_path, "registry.k8s.io/pause:3.9") is None
    assert pull_refusal(tmp_path, "busybox:1.36") is None
    assert "is not a host name" in (pull_refusal(tmp_path, "../../app:1") or "")


def test_pinning_makes_a_portless_loopback_name_https_only_and_keeps_a_users_file(tmp_path: Path) -> None:
    assert pull_refusal(tmp_path, "localhost/securekube/busybox:test") is not None
    pinned = pin_https(tmp_path, "localhost")
    assert pinned is not None
    document = tomllib.loads(pinned.read_text())
    assert document["server"] == "https://localhost" and "ca" not in document  # the system's CAs
    assert pull_refusal(tmp_path, "localhost/securekube/busybox:test") is None
    pinned.write_text("# the user's own\n" + pinned.read_text())
    assert pin_https(tmp_path, "localhost") is None
    assert pinned.read_text().startswith("# the user's own")


@pytest.mark.parametrize(("image", "host", "loopback"), [
    ("busybox", "docker.io", False),
    ("library/busybox:1", "docker.io", False),
    ("registry.k8s.io/pause:3.9", "registry.k8s.io", False),
    ("localhost/securekube/busybox:test", "localhost", True),
    ("localhost:5000/app", "localhost:5000", True),
    ("127.0.0.1:5000/app@sha256:00", "127.0.0.1:5000", True),
    ("127.1.2.3/app", "127.1.2.3", True),
    ("[::1]:5000/app", "[::1]:5000", True),
    ("[::ffff:7f00:1]:5000/app", "[::ffff:7f00:1]:5000", True),  # IPv4-mapped 127.0.0.1, loopback to Go
    ("[::ffff:a00:1]:5000/app", "[::ffff:a00:1]:5000", False),
    ("10.0.0.1:5000/app", "10.0.0.1:5000", False),
])
def test_the_registry_of_an_image(image: str, host: str, loopback: bool) -> None:
    assert registry_host(image) == host
    assert is_loopback(host) is loopback


def test_containerd_does_not_start_with_an_insecure_registry_file(tmp_path: Path) -> None:
    plugins = tmp_path / "cni"
    plugins.mkdir()
    (plugins / "bridge").touch()
    base = tmp_path / "node"
    (base / "certs.d" / "registry.example").mkdir(parents=True)
    (base / "certs.d" / "registry.example" / "hosts.toml").write_text(
        '[host."https://registry.example"]\nskip_verify = true\n')
    # `true` stands in for the binaries: the registry check comes before anything is run.
    containerd = Containerd(ContainerdConfig(base_dir=base, network=CniNetwork(plugin_dir=plugins),
                                             containerd_binary="true", runc_binary="true"))
    with pytest.raises(ContainerdError, match="insecure registry configuration: .*skip_verify"):
        containerd.start()
    assert not (base / "config.toml").exists()
    pinned = tomllib.loads((base / "certs.d" / "localhost" / "hosts.toml").read_text())
    assert pinned["server"] == "https://localhost"
