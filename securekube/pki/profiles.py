"""Certificate profiles: the policy in pki/profiles.yaml as frozen dataclasses.

The loader is strict on purpose. An unknown field (a typo such as `lifetme`) is an
error rather than a silent default, and a profile that would issue something unsafe
(a leaf that can sign certificates, a leaf outliving its CA) is refused at load time.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

import yaml

from securekube.pki.errors import PkiError
from securekube.pki.names import merge_sans

# The repository's top-level pki/ directory: securekube/pki/profiles.py -> parents[2].
DEFAULT_PROFILES_PATH = Path(__file__).resolve().parents[2] / "pki" / "profiles.yaml"

LEAF_KEY_USAGES = frozenset(
    {"digitalSignature", "contentCommitment", "keyEncipherment", "dataEncipherment", "keyAgreement"}
)
CA_KEY_USAGES = ("digitalSignature", "keyCertSign", "cRLSign")
EXTENDED_KEY_USAGES = frozenset({"serverAuth", "clientAuth"})

_NAME = re.compile(r"^[a-z0-9]([a-z0-9-]*[a-z0-9])?$")
_DURATION_PART = re.compile(r"(\d+)([dhms])")
_DURATION_UNITS = {"d": "days", "h": "hours", "m": "minutes", "s": "seconds"}
_CA_FIELDS = {"ca", "subject", "lifetime"}
_LEAF_FIELDS = {
    "ca",
    "issuer",
    "subject",
    "lifetime",
    "maxLifetime",
    "keyUsages",
    "extendedKeyUsages",
    "sans",
    "acceptsExtraSans",
    "onDemand",
}


@dataclass(frozen=True)
class Subject:
    """A certificate subject: CN is the Kubernetes user name, each O one group."""

    common_name: str
    organizations: tuple[str, ...] = ()


@dataclass(frozen=True)
class CertProfile:
    """How one certificate is issued: its issuer, subject, lifetime, usages and SANs."""

    name: str
    subject: Subject
    lifetime: timedelta
    is_ca: bool = False
    issuer: str | None = None
    key_usages: tuple[str, ...] = ()
    extended_key_usages: tuple[str, ...] = ()
    sans: tuple[str, ...] = ()
    accepts_extra_sans: bool = False
    on_demand: bool = False
    max_lifetime: timedelta | None = None


@dataclass(frozen=True)
class PkiProfiles:
    """All certificate profiles, CAs first, in file order otherwise."""

    certificates: tuple[CertProfile, ...]
    source: str = "<memory>"

    def get(self, name: str) -> CertProfile:
        """The profile called `name`; a missing one is an error naming the profiles file."""
        for profile in self.certificates:
            if profile.name == name:
                return profile
        raise PkiError(f"certificate profile {name!r} is missing from {self.source}")

    def cas(self) -> tuple[CertProfile, ...]:
        """The certificate authorities."""
        return tuple(p for p in self.certificates if p.is_ca)

    def standing_leaves(self) -> tuple[CertProfile, ...]:
        """The leaf certificates kept in the PKI directory (issued by init, renewed by rotate)."""
        return tuple(p for p in self.certificates if not p.is_ca and not p.on_demand)


def parse_duration(text: str) -> timedelta:
    """A positive duration such as `30d`, `1h`, `1h30m` or `90s`."""
    if not isinstance(text, str):
        raise PkiError(f"invalid duration {text!r}: expected e.g. 30d, 1h or 1h30m")
    parts = _DURATION_PART.findall(text)
    if not parts or "".join(n + u for n, u in parts) != text:
        raise PkiError(f"invalid duration {text!r}: expected e.g. 30d, 1h or 1h30m")
    total = sum(
        (timedelta(**{_DURATION_UNITS[unit]: int(number)}) for number, unit in parts),
        timedelta(),
    )
    if total <= timedelta():
        raise PkiError(f"invalid duration {text!r}: must be longer than zero")
    return total


def format_duration(duration: timedelta) -> str:
    """A duration in the notation `parse_duration` reads, e.g. `1d2h` or `30m`."""
    seconds = int(duration.total_seconds())
    parts = []
    for unit, size in (("d", 86400), ("h", 3600), ("m", 60), ("s", 1)):
        count, seconds = divmod(seconds, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts) or "0s"


def load_profiles(path: Path | None = None) -> PkiProfiles:
    """Reads and validates a profiles file (the repository's pki/profiles.yaml by default)."""
    source = Path(path) if path is not None else DEFAULT_PROFILES_PATH
    try:
        text = source.read_text(encoding="utf-8")
    except FileNotFoundError as exc:
        hint = "" if path is not None else "; pass --profiles FILE"
        raise PkiError(f"certificate profiles not found at {source}{hint}") from exc
    except (OSError, UnicodeDecodeError) as exc:
        raise PkiError(f"cannot read certificate profiles {source}: {exc}") from exc
    return parse_profiles(text, source=str(source))


def parse_profiles(text: str, *, source: str = "<memory>") -> PkiProfiles:
    """Validates profiles given as YAML text; see pki/profiles.yaml for the format."""
    if "PRIVATE KEY" in text:
        raise PkiError(f"{source} contains a private key; profiles must never hold key material")
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        raise PkiError(f"{source} is not valid YAML") from exc
    if not isinstance(document, dict):
        raise PkiError(f"{source}: expected a mapping with 'version' and 'certificates'")
    _reject_unknown(document, {"version", "certificates"}, source)
    if document.get("version") != 1:
        raise PkiError(f"{source}: unsupported version {document.get('version')!r}; expected 1")
    entries = document.get("certificates")
    if not isinstance(entries, dict) or not entries:
        raise PkiError(f"{source}: 'certificates' must be a non-empty mapping")

    parsed = [_parse_one(str(name), entry, source) for name, entry in entries.items()]
    by_name = {p.name: p for p in parsed}
    for profile in parsed:
        if not profile.is_ca:
            _check_issuer(profile, by_name, source)
    ordered = tuple(p for p in parsed if p.is_ca) + tuple(p for p in parsed if not p.is_ca)
    return PkiProfiles(certificates=ordered, source=source)


def _parse_one(name: str, entry: Any, source: str) -> CertProfile:
    where = f"{source}: certificate {name!r}"
    if not _NAME.match(name):
        raise PkiError(f"{where}: names are lower-case letters, digits and '-'")
    if not isinstance(entry, dict):
        raise PkiError(f"{where}: expected a mapping")
    is_ca = entry.get("ca", False)
    if not isinstance(is_ca, bool):
        raise PkiError(f"{where}: 'ca' must be true or false")
    _reject_unknown(entry, _CA_FIELDS if is_ca else _LEAF_FIELDS, where)
    subject = _parse_subject(entry.get("subject"), where)
    lifetime = _duration_field(entry, "lifetime", where)
    if lifetime is None:
        raise PkiError(f"{where}: 'lifetime' is required")
    if is_ca:
        return CertProfile(
            name=name, subject=subject, lifetime=lifetime, is_ca=True, key_usages=CA_KEY_USAGES
        )

    issuer = entry.get("issuer")
    if not isinstance(issuer, str) or not issuer:
        raise PkiError(f"{where}: 'issuer' must name a CA profile")
    key_usages = _string_list(entry, "keyUsages", where)
    if not key_usages or not set(key_usages) <= LEAF_KEY_USAGES:
        raise PkiError(
            f"{where}: 'keyUsages' must be a non-empty subset of {sorted(LEAF_KEY_USAGES)} "
            "(a leaf may never sign certificates)"
        )
    ekus = _string_list(entry, "extendedKeyUsages", where)
    if not ekus or not set(ekus) <= EXTENDED_KEY_USAGES:
        raise PkiError(f"{where}: 'extendedKeyUsages' must be serverAuth and/or clientAuth")
    sans = merge_sans(_string_list(entry, "sans", where))
    accepts_extra_sans = _bool_field(entry, "acceptsExtraSans", where)
    if "serverAuth" in ekus and not sans:
        # Clients match the host against SANs only; a serving cert without one is useless.
        raise PkiError(f"{where}: a serverAuth certificate needs at least one SAN")
    on_demand = _bool_field(entry, "onDemand", where)
    max_lifetime = _duration_field(entry, "maxLifetime", where)
    if max_lifetime is not None and not on_demand:
        raise PkiError(f"{where}: 'maxLifetime' applies to onDemand certificates only")
    if max_lifetime is not None and lifetime > max_lifetime:
        raise PkiError(f"{where}: 'lifetime' is longer than 'maxLifetime'")
    return CertProfile(
        name=name,
        subject=subject,
        lifetime=lifetime,
        issuer=issuer,
        key_usages=tuple(dict.fromkeys(key_usages)),
        extended_key_usages=tuple(dict.fromkeys(ekus)),
        sans=sans,
        accepts_extra_sans=accepts_extra_sans,
        on_demand=on_demand,
        max_lifetime=max_lifetime,
    )


def _check_issuer(profile: CertProfile, by_name: dict[str, CertProfile], source: str) -> None:
    where = f"{source}: certificate {profile.name!r}"
    issuer = by_name.get(profile.issuer or "")
    if issuer is None or not issuer.is_ca:
        raise PkiError(f"{where}: issuer {profile.issuer!r} is not a CA profile")
    longest = max(profile.lifetime, profile.max_lifetime or profile.lifetime)
    if longest > issuer.lifetime:
        raise PkiError(f"{where}: lifetime is longer than its CA {issuer.name!r}")


def _parse_subject(value: Any, where: str) -> Subject:
    if not isinstance(value, dict):
        raise PkiError(f"{where}: 'subject' with a 'commonName' is required")
    _reject_unknown(value, {"commonName", "organizations"}, f"{where} subject")
    common_name = value.get("commonName")
    if not isinstance(common_name, str) or not common_name:
        raise PkiError(f"{where}: 'subject.commonName' must be a non-empty string")
    organizations = _string_list(value, "organizations", where)
    return Subject(common_name=common_name, organizations=tuple(organizations))


def _string_list(entry: dict[str, Any], key: str, where: str) -> list[str]:
    value = entry.get(key, [])
    if not isinstance(value, list) or not all(isinstance(v, str) and v for v in value):
        raise PkiError(f"{where}: '{key}' must be a list of non-empty strings")
    return value


def _bool_field(entry: dict[str, Any], key: str, where: str) -> bool:
    value = entry.get(key, False)
    if not isinstance(value, bool):
        raise PkiError(f"{where}: '{key}' must be true or false")
    return value


def _duration_field(entry: dict[str, Any], key: str, where: str) -> timedelta | None:
    if key not in entry:
        return None
    try:
        return parse_duration(entry[key])
    except PkiError as exc:
        raise PkiError(f"{where}: '{key}': {exc}") from exc


def _reject_unknown(mapping: dict[str, Any], allowed: set[str], where: str) -> None:
    unknown = sorted(str(k) for k in mapping if k not in allowed)
    if unknown:
        raise PkiError(f"{where}: unknown field(s) {', '.join(unknown)}")
