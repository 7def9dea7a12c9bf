"""Subject alternative names: parsing a user's text into X.509 names and back.

A SAN that parses as an IP address becomes an iPAddress entry, anything else must be a
plain DNS host name (no wildcards: securekube never issues them).
"""

from __future__ import annotations

import ipaddress
import re

from cryptography import x509

from securekube.pki.errors import PkiError

_DNS_LABEL = re.compile(r"^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$")

SanName = x509.DNSName | x509.IPAddress


def parse_san(text: str) -> SanName:
    """One SAN from text: an IPv4/IPv6 address or a lower-case DNS host name."""
    if not isinstance(text, str) or not text:
        raise PkiError(f"invalid subject alternative name {text!r}")
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text.lower()
    labels = name.split(".")
    if len(name) > 253 or not all(_DNS_LABEL.match(label) for label in labels):
        raise PkiError(
            f"invalid subject alternative name {text!r}: expected a host name or IP address"
        )
    return x509.DNSName(name)


def san_text(name: x509.GeneralName) -> str:
    """A SAN as text, the inverse of `parse_san` (other name types get a type prefix)."""
    if isinstance(name, x509.IPAddress):
        return str(name.value)
    if isinstance(name, x509.DNSName):
        return name.value
    return f"{type(name).__name__}:{name.value}"


def merge_sans(*groups: tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """The SANs of all groups in first-seen order, each once (compared after parsing)."""
    seen: dict[str, None] = {}
    for group in groups:
        for text in group:
            seen.setdefault(san_text(parse_san(text)), None)
    return tuple(seen)
