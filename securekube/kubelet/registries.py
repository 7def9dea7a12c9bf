"""Which image registries a node trusts: containerd's hosts.toml files under the node's certs.d.

containerd reads `certs.d/<host[:port]>/hosts.toml` (its documented layout) on every pull, so a
registry becomes trusted the moment its file is written, without a restart. securekube writes
only one shape of file: HTTPS to the registry itself, verified with the CA the user gave:

    server = "https://registry.example:5000"
    ca = "<certs.d>/registry.example:5000/ca.crt"

    [host."https://registry.example:5000"]
      capabilities = ["pull", "resolve"]
      ca = "<certs.d>/registry.example:5000/ca.crt"

The `[host]` table is not decoration: containerd 1.6 ignores a hosts.toml without one and falls
back to its defaults. `server` is always written because containerd's default for a registry on
the loopback interface (localhost, 127.0.0.0/8, ::1) is plain HTTP without certificate checks;
measured with containerd 1.6.20, an unconfigured 127.0.0.1:PORT registry is pulled over HTTP.

Fail closed: plain HTTP and skip_verify are refused, never written; a file that would make
containerd pull insecurely is reported by `hosts_file_problems` (containerd.py refuses to start
with one), and `pull_refusal` tells the kubelet which pulls containerd would make insecurely.
Only certificates are ever written: a PEM with a private key in it is refused, and no message
quotes what was given.
"""
from __future__ import annotations

import ipaddress
import json
import os
import re
import tempfile
import tomllib
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding

HOSTS_FILE = "hosts.toml"
CA_FILE = "ca.crt"
# The names that reach this machine itself; containerd treats registries there as insecure.
LOOPBACK_NAMES = ("localhost",)
# The portless loopback registries securekube pins to verified HTTPS at start (see `pin_https`):
# the lab's default admission policy admits `localhost/...` images, and containerd would pull
# them from http://localhost otherwise.
PINNED_LOOPBACK_HOSTS = ("localhost", "127.0.0.1")

_LABEL = r"[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?"
_HOST = re.compile(rf"(?P<name>{_LABEL}(?:\.{_LABEL})*|\[[0-9A-Fa-f:.]+\])(?::(?P<port>[0-9]{{1,5}}))?")
_PEM_BLOCK = re.compile(rb"-----BEGIN ([A-Z0-9 ]+)-----")


class RegistryTrustError(ValueError):
    """A registry cannot be trusted as asked (bad host, plain HTTP, not a CA certificate, a key)."""


def validate_host(host: str) -> str:
    """The registry host as image names carry it (HOST or HOST:PORT), checked; raises RegistryTrustError.

    A scheme is refused: `https://` because the name is what containerd looks up, `http://` because
    plain HTTP is never configured. The check also keeps the name from leaving certs.d as a path.
    """
    if host.lower().startswith("http://"):
        raise RegistryTrustError(f"registry {host!r}: plain HTTP is refused; a registry is trusted over HTTPS only")
    if "://" in host:
        raise RegistryTrustError(f"registry {host!r}: give the host as HOST or HOST:PORT, without a scheme")
    match = _HOST.fullmatch(host)
    if match is None:
        raise RegistryTrustError(f"registry {host!r} is not a host name or IP address with an optional port")
    name, port = match["name"], match["port"]
    if name.startswith("["):
        try:
            ipaddress.IPv6Address(name[1:-1])
        except ValueError:
            raise RegistryTrustError(f"registry {host!r}: {name} is not an IPv6 address") from None
    if port is not None and not 0 < int(port) < 65536:
        raise RegistryTrustError(f"registry {host!r}: port {port} is not a TCP port")
    return host


def registry_host(image: str) -> str:
    """The registry host of an image reference, as containerd resolves it (docker.io when it names none)."""
    first, slash, _ = image.partition("/")
    if slash and ("." in first or ":" in first or first == "localhost"):
        return first
    return "docker.io"


def is_loopback(host: str) -> bool:
    """Whether a registry host (HOST or HOST:PORT) is on the loopback interface, as containerd judges it."""
    name = host
    if host.startswith("["):
        name = host[1:host.index("]")] if "]" in host else host
    elif host.count(":") == 1:
        name = host.split(":", 1)[0]
    if name.lower() in LOOPBACK_NAMES:
        return True
    try:
        address = ipaddress.ip_address(name)
    except ValueError:
        return False
    # ::ffff:127.0.0.1 is loopback to Go (and so to containerd), not to Python's ipaddress.
    mapped = getattr(address, "ipv4_mapped", None)
    return address.is_loopback or (mapped is not None and mapped.is_loopback)


def host_dirs(certs_dir: Path, host: str) -> tuple[Path, ...]:
    """The directories containerd searches for a host's hosts.toml, in its order: newer releases
    look at `host_port_` before `host:port` (containerd 1.6 only at `host:port`)."""
    name, colon, port = host.rpartition(":")
    if colon and name and not host.endswith("]"):
        return certs_dir / f"{name}_{port}_", certs_dir / host
    return (certs_dir / host,)


def ca_certificates(ca_pem: bytes | str) -> list[x509.Certificate]:
    data = ca_pem.encode() if isinstance(ca_pem, str) else ca_pem
    labels = {label.decode() for label in _PEM_BLOCK.findall(data)}
    if any("PRIVATE KEY" in label for label in labels):
        raise RegistryTrustError("the registry CA file holds a private key; give the CA certificate only")
    if labels != {"CERTIFICATE"}:
        raise RegistryTrustError("the registry CA file must hold PEM certificates only")
    try:
        certificates = x509.load_pem_x509_certificates(data)
    except ValueError:
        raise RegistryTrustError("the registry CA file holds a certificate that cannot be read") from None
    for certificate in certificates:
        try:
            is_ca = certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca
        except x509.ExtensionNotFound:
            is_ca = False
        if not is_ca:
            raise RegistryTrustError(
                f"the registry CA file holds a certificate that is not a CA ({certificate.subject.rfc4514_string()}); "
                "give the certificate of the CA that issued the registry's certificate")
    return certificates


def _toml_string(value: str) -> str:
    # A JSON string is a valid TOML basic string for host names and paths.
    return json.dumps(value)


def hosts_toml(host: str, ca_file: Path | None) -> str:
    """The hosts.toml for pulling from `host` itself over HTTPS, verified with `ca_file` (None: the
    system's CAs)."""
    url = _toml_string(f"https://{host}")
    ca = [f"ca = {_toml_string(str(ca_file))}"] if ca_file is not None else []
    return "\n".join([
        "# Written by securekube: this registry over HTTPS only, its certificate verified.",
        f"server = {url}",
        *ca,
        "",
        f"[host.{url}]",
        '  capabilities = ["pull", "resolve"]',
        *(f"  {line}" for line in ca),
        "",
    ])


def _write_atomically(path: Path, content: bytes, mode: int) -> None:
    # Readers (containerd, on every pull) see the old file or the new one, never half of one.
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(descriptor, "wb") as handle:
            handle.write(content)
        os.chmod(temporary, mode)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise


def trust_registry(certs_dir: Path, host: str, ca_pem: bytes | str) -> Path:
    """Make a node trust the registry `host` (HOST or HOST:PORT) through the CA certificate(s) in
    `ca_pem`; returns the hosts.toml written.

    Writes certs.d/<host>/ca.crt (the certificates only, re-encoded, mode 0644) and then
    certs.d/<host>/hosts.toml (mode 0644), replacing what that host had. Raises RegistryTrustError
    for plain HTTP, a host that is not one, or a CA file that is not only CA certificates.
    """
    validate_host(host)
    certificates = ca_certificates(ca_pem)
    directory = certs_dir / host
    # A `host_port_` directory takes precedence in newer containerd releases: ours would be ignored.
    for other in host_dirs(certs_dir, host):
        if other != directory and (other / HOSTS_FILE).exists():
            raise RegistryTrustError(f"{other / HOSTS_FILE} also configures {host} and takes precedence; remove it")
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    ca_file = directory / CA_FILE
    _write_atomically(ca_file, b"".join(c.public_bytes(Encoding.PEM) for c in certificates), 0o644)
    hosts_file = directory / HOSTS_FILE
    _write_atomically(hosts_file, hosts_toml(host, ca_file).encode(), 0o644)
    return hosts_file


def pin_https(certs_dir: Path, host: str) -> Path | None:
    """Pin `host` to verified HTTPS with the system's CAs, unless it has a hosts.toml already;
    returns the file written (None: left as it was).

    For loopback registries, where containerd's own default is plain HTTP without verification.
    """
    validate_host(host)
    if any((directory / HOSTS_FILE).exists() for directory in host_dirs(certs_dir, host)):
        return None
    directory = certs_dir / host
    directory.mkdir(mode=0o755, parents=True, exist_ok=True)
    hosts_file = directory / HOSTS_FILE
    _write_atomically(hosts_file, hosts_toml(host, None).encode(), 0o644)
    return hosts_file


def _skips_verify(table: object) -> bool:
    return isinstance(table, dict) and table.get("skip_verify") not in (None, False)


def hosts_file_problems(path: Path, host: str) -> list[str]:
    """What would make containerd pull from `host` insecurely with this hosts.toml (empty: nothing).

    `host` is the namespace the file configures (its directory's name as an image names it).
    """
    try:
        document = tomllib.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as error:
        # Not the text: the file might hold something that should not reach a log.
        return [f"{path}: cannot be read as TOML ({type(error).__name__})"]
    problems = []
    server = document.get("server")
    if server is not None and not (isinstance(server, str) and server.startswith("https://")):
        problems.append(f"{path}: server must be an https:// URL (plain HTTP is refused)")
    if server is None and is_loopback(host):
        problems.append(f"{path}: a loopback registry needs an explicit https:// server "
                        "(containerd's default for one is plain HTTP without verification)")
    if _skips_verify(document):
        problems.append(f"{path}: skip_verify is refused")
    hosts = document.get("host")
    if not isinstance(hosts, dict):
        problems.append(f"{path}: has no [host] table, so containerd 1.6 ignores the file and uses its defaults")
        hosts = {}
    for url, table in hosts.items():
        if not url.startswith("https://"):
            problems.append(f"{path}: host {url!r} is not https:// (plain HTTP is refused)")
        if _skips_verify(table):
            problems.append(f"{path}: host {url!r} sets skip_verify, which is refused")
    return problems


def registry_config_problems(certs_dir: Path) -> list[str]:
    """Every hosts.toml under certs.d that would make containerd pull insecurely, with why."""
    if not certs_dir.is_dir():
        return []
    problems = []
    for hosts_file in sorted(certs_dir.glob(f"*/{HOSTS_FILE}")):
        namespace = hosts_file.parent.name
        # Newer containerd's `host_port_` spelling of HOST:PORT.
        spelled = re.fullmatch(r"(.+)_([0-9]+)_", namespace)
        host = f"{spelled[1]}:{spelled[2]}" if spelled else namespace
        problems += hosts_file_problems(hosts_file, host)
    return problems


def pull_refusal(certs_dir: Path | None, image: str) -> str | None:
    """Why the node must not ask containerd to pull `image` (None: the pull would be verified HTTPS).

    A loopback registry must have a hosts.toml (containerd's default for one is plain HTTP without
    verification); any registry's hosts.toml must pass `hosts_file_problems`. `certs_dir` None
    means containerd has no registry configuration: loopback registries are then refused.
    """
    host = registry_host(image)
    try:
        validate_host(host)  # also keeps a crafted name from reading files outside certs.d
    except RegistryTrustError as error:
        return str(error)
    for directory in host_dirs(certs_dir, host) if certs_dir is not None else ():
        hosts_file = directory / HOSTS_FILE
        if hosts_file.exists():
            problems = hosts_file_problems(hosts_file, host)
            if problems:
                return f"registry {host} is configured insecurely on this node: {'; '.join(problems)}"
            return None
    if is_loopback(host):
        return (f"registry {host} is on this node's loopback interface and is not trusted: without a "
                "hosts.toml for it containerd would pull from it over plain HTTP without verifying it; "
                "trust the registry's CA first (securekube up --registry-ca HOST=CAFILE)")
    return None
