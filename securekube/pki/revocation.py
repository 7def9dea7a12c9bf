"""Client-certificate revocation: a CRL signed by the cluster CA, checked on every request.

Upstream Kubernetes cannot revoke a client certificate; securekube can. `revoke` adds a serial
to `crl.pem` in the PKI directory (an X.509 CRL signed by the cluster CA, so a tampered list
is refused); the API server reloads the file when it changes and refuses revoked
certificates from then on, including on connections that are already open.
"""
from __future__ import annotations

import datetime as dt
import os
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization

from securekube.pki import files
from securekube.pki.errors import PkiError
from securekube.pki.layout import PkiPaths, load_ca

CRL_FILE = "crl.pem"
CA_NAME = "ca"
# The CRL is re-signed on every revocation; nextUpdate only tells readers how stale it may be.
NEXT_UPDATE = dt.timedelta(days=30)


def crl_path(paths: PkiPaths) -> Path:
    return paths.root / CRL_FILE


def format_serial(serial: int) -> str:
    """A serial as colon-separated hex bytes (the form openssl prints)."""
    raw = serial.to_bytes((serial.bit_length() + 7) // 8 or 1, "big")
    return ":".join(f"{b:02x}" for b in raw)


def parse_serial(text: str) -> int:
    """A serial as `inspect` prints it: hexadecimal with colons, 0x-prefixed hex, or decimal."""
    cleaned = text.strip().lower()
    try:
        if ":" in cleaned:
            return int(cleaned.replace(":", ""), 16)
        if cleaned.startswith("0x"):
            return int(cleaned, 16)
        return int(cleaned, 10)
    except ValueError:
        raise PkiError(f"{text!r} is not a certificate serial number (decimal, 0x-hex or aa:bb:.. hex)") from None


def read_revoked(paths: PkiPaths, ca_cert: x509.Certificate) -> frozenset[int]:
    """The revoked serials, after checking the CRL's signature and issuer; no CRL means none revoked."""
    path = crl_path(paths)
    if not path.exists():
        return frozenset()
    try:
        crl = x509.load_pem_x509_crl(path.read_bytes())
    except ValueError:
        raise PkiError(f"{path} is not a PEM certificate revocation list") from None
    if crl.issuer != ca_cert.subject or not crl.is_signature_valid(ca_cert.public_key()):  # type: ignore[arg-type]
        raise PkiError(f"{path} is not signed by the cluster CA; refusing to trust it")
    return frozenset(entry.serial_number for entry in crl)


def revoke(root: Path, serial: int, *, now: dt.datetime | None = None) -> bool:
    """Adds `serial` to the CRL (re-signed, written atomically). False if it was already revoked."""
    paths = PkiPaths(Path(root))
    ca = load_ca(paths, CA_NAME)
    revoked = read_revoked(paths, ca.cert)
    if serial in revoked:
        return False
    now = now or dt.datetime.now(dt.timezone.utc)
    builder = (x509.CertificateRevocationListBuilder().issuer_name(ca.cert.subject)
               .last_update(now).next_update(now + NEXT_UPDATE))
    for number in sorted(revoked | {serial}):
        builder = builder.add_revoked_certificate(
            x509.RevokedCertificateBuilder().serial_number(number).revocation_date(now).build())
    crl = builder.sign(ca.key, hashes.SHA256())
    files.replace(crl_path(paths), crl.public_bytes(serialization.Encoding.PEM), files.PUBLIC_MODE)
    return True


class RevocationList:
    """The revoked serials as the API server sees them, reloaded when the CRL file changes."""

    def __init__(self, paths: PkiPaths, ca_cert: x509.Certificate) -> None:
        self._paths, self._ca = paths, ca_cert
        self._stamp = self._current_stamp()
        self.serials = read_revoked(paths, ca_cert)  # a bad CRL at start-up stops start-up

    def _current_stamp(self) -> int | None:
        try:
            return os.stat(crl_path(self._paths)).st_mtime_ns
        except FileNotFoundError:
            return None

    def check(self) -> bool:
        """Reloads if the file changed. A CRL that fails its checks keeps the previous list in force."""
        stamp = self._current_stamp()
        if stamp == self._stamp:
            return False
        try:
            serials = read_revoked(self._paths, self._ca)
        except (PkiError, OSError):
            return False
        self.serials, self._stamp = serials, stamp
        return True
