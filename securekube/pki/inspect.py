"""Reading a PKI directory's certificates for people: subjects, SANs, validity.

Only certificates are read, never private keys, so the output can be shared.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from pathlib import Path

from securekube.pki import certs
from securekube.pki.errors import PkiError
from securekube.pki.layout import PkiPaths


@dataclass(frozen=True)
class CertInfo:
    """What a person checks about one certificate."""

    name: str
    path: Path
    subject: str
    issuer: str
    sans: tuple[str, ...]
    not_before: datetime
    not_after: datetime
    serial: int
    is_ca: bool
    extended_key_usages: tuple[str, ...]

    def expired(self, now: datetime) -> bool:
        """Whether the certificate is no longer valid at `now`."""
        return now >= self.not_after


def inspect(root: Path) -> list[CertInfo]:
    """Every certificate in the PKI directory, CAs first, then by name."""
    paths = PkiPaths(Path(root))
    if not paths.root.is_dir():
        raise PkiError(f"{paths.root} is not a directory")
    infos = [
        _info(paths, path) for path in paths.root.rglob("*.crt") if not path.name.startswith(".")
    ]
    return sorted(infos, key=lambda info: (not info.is_ca, info.name))


def _info(paths: PkiPaths, path: Path) -> CertInfo:
    cert = certs.load_certificate(path)
    return CertInfo(
        name=paths.name_of(path),
        path=path,
        subject=cert.subject.rfc4514_string(),
        issuer=cert.issuer.rfc4514_string(),
        sans=certs.certificate_sans(cert),
        not_before=cert.not_valid_before_utc,
        not_after=cert.not_valid_after_utc,
        serial=cert.serial_number,
        is_ca=certs.is_ca(cert),
        extended_key_usages=certs.extended_key_usages(cert),
    )
