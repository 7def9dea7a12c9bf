"""Issuing X.509 certificates from profiles: self-signed CAs and the leaves they sign.

Every certificate carries SubjectKeyIdentifier and AuthorityKeyIdentifier (so chains
build unambiguously), critical BasicConstraints and KeyUsage, and is signed with
ECDSA-SHA256. Serial numbers are random (159 bits), so two issuances never collide.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID

from securekube.pki import files
from securekube.pki.errors import PkiError
from securekube.pki.keys import PrivateKey, PublicKey
from securekube.pki.names import merge_sans, parse_san, san_text
from securekube.pki.profiles import CertProfile, Subject, format_duration

# Certificates start a little in the past so that a machine whose clock is slightly
# behind the issuer's does not reject a certificate issued a moment ago.
BACKDATE = timedelta(minutes=5)

_EKU_OIDS = {
    "serverAuth": ExtendedKeyUsageOID.SERVER_AUTH,
    "clientAuth": ExtendedKeyUsageOID.CLIENT_AUTH,
}
_EKU_NAMES = {oid: name for name, oid in _EKU_OIDS.items()}
_KEY_USAGE_FLAGS = {
    "digitalSignature": "digital_signature",
    "contentCommitment": "content_commitment",
    "keyEncipherment": "key_encipherment",
    "dataEncipherment": "data_encipherment",
    "keyAgreement": "key_agreement",
    "keyCertSign": "key_cert_sign",
    "cRLSign": "crl_sign",
}


def utcnow() -> datetime:
    """The current time, timezone-aware UTC (all certificate times are compared in UTC)."""
    return datetime.now(UTC)


def subject_name(subject: Subject) -> x509.Name:
    """The X.509 name for a profile subject: O= entries (groups) then CN= (user)."""
    attributes = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, o) for o in subject.organizations]
    attributes.append(x509.NameAttribute(NameOID.COMMON_NAME, subject.common_name))
    return x509.Name(attributes)


def issue_ca(profile: CertProfile, key: PrivateKey, *, now: datetime) -> x509.Certificate:
    """A self-signed CA certificate for `profile`, signed by `key`."""
    if not profile.is_ca:
        raise PkiError(f"profile {profile.name!r} is not a CA")
    name = subject_name(profile.subject)
    ski = x509.SubjectKeyIdentifier.from_public_key(key.public_key())
    builder = (
        _base_builder(name, name, key.public_key(), now, now + profile.lifetime)
        # pathlen 0: this CA signs leaves only, never another CA.
        .add_extension(x509.BasicConstraints(ca=True, path_length=0), critical=True)
        .add_extension(_key_usage(profile.key_usages), critical=True)
        .add_extension(ski, critical=False)
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski), critical=False
        )
    )
    return builder.sign(key, hashes.SHA256())


def issue_leaf(
    profile: CertProfile,
    public_key: PublicKey,
    *,
    issuer_cert: x509.Certificate,
    issuer_key: PrivateKey,
    now: datetime,
    extra_sans: tuple[str, ...] | list[str] = (),
    lifetime: timedelta | None = None,
) -> x509.Certificate:
    """A leaf certificate for `public_key` signed by the CA, never outliving that CA.

    `extra_sans` are added only to profiles that accept them; `lifetime` overrides the
    profile's (it must not exceed the profile's maxLifetime, or its lifetime if none).
    """
    if profile.is_ca:
        raise PkiError(f"profile {profile.name!r} is a CA, not a leaf")
    if extra_sans and not profile.accepts_extra_sans:
        raise PkiError(f"certificate {profile.name!r} does not accept extra SANs")
    validity = lifetime or profile.lifetime
    allowed = profile.max_lifetime or profile.lifetime
    if validity > allowed:
        raise PkiError(
            f"requested lifetime {format_duration(validity)} for {profile.name!r} "
            f"exceeds its maximum {format_duration(allowed)}"
        )
    ca_expires = issuer_cert.not_valid_after_utc
    if now >= ca_expires:
        raise PkiError(f"CA for {profile.name!r} expired at {ca_expires.isoformat()}")

    builder = (
        _base_builder(
            subject_name(profile.subject),
            issuer_cert.subject,
            public_key,
            now,
            min(now + validity, ca_expires),
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(_key_usage(profile.key_usages), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([_EKU_OIDS[e] for e in profile.extended_key_usages]),
            critical=False,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(public_key), critical=False)
        .add_extension(_authority_key_identifier(issuer_cert, issuer_key), critical=False)
    )
    sans = merge_sans(profile.sans, tuple(extra_sans))
    if sans:
        builder = builder.add_extension(
            x509.SubjectAlternativeName([parse_san(s) for s in sans]), critical=False
        )
    return builder.sign(issuer_key, hashes.SHA256())


def certificate_pem(cert: x509.Certificate) -> bytes:
    """The certificate as PEM."""
    return cert.public_bytes(serialization.Encoding.PEM)


def load_certificate(path: Path) -> x509.Certificate:
    """Reads one PEM certificate."""
    try:
        return x509.load_pem_x509_certificate(path.read_bytes())
    except OSError as exc:
        raise PkiError(f"cannot read {path}: {exc.strerror}") from exc
    except ValueError as exc:
        raise PkiError(f"{path} is not a PEM certificate") from exc


def write_new_certificate(path: Path, cert: x509.Certificate) -> None:
    """Writes a certificate file that must not exist yet (mode 0644)."""
    files.write_new(path, certificate_pem(cert), files.PUBLIC_MODE)


def replace_certificate(path: Path, cert: x509.Certificate) -> None:
    """Atomically replaces a certificate file (mode 0644)."""
    files.replace(path, certificate_pem(cert), files.PUBLIC_MODE)


def is_ca(cert: x509.Certificate) -> bool:
    """Whether the certificate says it is a CA (BasicConstraints ca=true)."""
    try:
        return bool(cert.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def is_signed_by(cert: x509.Certificate, issuer: x509.Certificate) -> bool:
    """Whether `issuer` (by name and signature) directly issued `cert`."""
    try:
        cert.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature):
        return False
    return True


def certificate_sans(cert: x509.Certificate) -> tuple[str, ...]:
    """The certificate's SANs as text (empty when it has none)."""
    try:
        extension = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName)
    except x509.ExtensionNotFound:
        return ()
    return tuple(san_text(name) for name in extension.value)


def extended_key_usages(cert: x509.Certificate) -> tuple[str, ...]:
    """The certificate's extended key usages by name (dotted OID for unknown ones)."""
    try:
        extension = cert.extensions.get_extension_for_class(x509.ExtendedKeyUsage)
    except x509.ExtensionNotFound:
        return ()
    return tuple(_EKU_NAMES.get(oid, oid.dotted_string) for oid in extension.value)


def leaf_mismatch(
    cert: x509.Certificate, profile: CertProfile, required_sans: tuple[str, ...]
) -> str | None:
    """Why an existing leaf does not satisfy its profile, or None when it does."""
    if is_ca(cert):
        return "it is a CA certificate"
    if cert.subject != subject_name(profile.subject):
        return f"its subject is {cert.subject.rfc4514_string()!r}"
    if set(extended_key_usages(cert)) != set(profile.extended_key_usages):
        return "its extended key usages differ from the profile"
    missing = [s for s in merge_sans(required_sans) if s not in certificate_sans(cert)]
    if missing:
        return f"it lacks the SAN(s) {', '.join(missing)}"
    return None


def _base_builder(
    subject: x509.Name,
    issuer: x509.Name,
    public_key: PublicKey,
    now: datetime,
    not_after: datetime,
) -> x509.CertificateBuilder:
    return (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(issuer)
        .public_key(public_key)
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - BACKDATE)
        .not_valid_after(not_after)
    )


def _key_usage(names: tuple[str, ...]) -> x509.KeyUsage:
    flags = {flag: name in names for name, flag in _KEY_USAGE_FLAGS.items()}
    return x509.KeyUsage(
        digital_signature=flags["digital_signature"],
        content_commitment=flags["content_commitment"],
        key_encipherment=flags["key_encipherment"],
        data_encipherment=flags["data_encipherment"],
        key_agreement=flags["key_agreement"],
        key_cert_sign=flags["key_cert_sign"],
        crl_sign=flags["crl_sign"],
        # Only meaningful with keyAgreement, which no shipped profile uses.
        encipher_only=False,
        decipher_only=False,
    )


def _authority_key_identifier(
    issuer_cert: x509.Certificate, issuer_key: PrivateKey
) -> x509.AuthorityKeyIdentifier:
    # Copy the CA's own SubjectKeyIdentifier so chain building matches it byte for byte;
    # derive one from the CA key only for a CA certificate that lacks it.
    try:
        ski = issuer_cert.extensions.get_extension_for_class(x509.SubjectKeyIdentifier).value
    except x509.ExtensionNotFound:
        return x509.AuthorityKeyIdentifier.from_issuer_public_key(issuer_key.public_key())
    return x509.AuthorityKeyIdentifier.from_issuer_subject_key_identifier(ski)
