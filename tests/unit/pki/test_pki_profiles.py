"""Certificate profiles: the shipped policy, and the loader refusing unsafe or mistyped files."""

from __future__ import annotations

from datetime import timedelta
from pathlib import Path

import pytest

from securekube.pki.errors import PkiError
from securekube.pki.profiles import PkiProfiles, load_profiles, parse_duration, parse_profiles

MINIMAL = """
version: 1
certificates:
  ca:
    ca: true
    subject: {commonName: test-ca}
    lifetime: 10d
  web:
    issuer: ca
    subject: {commonName: web}
    lifetime: 1d
    keyUsages: [digitalSignature]
    extendedKeyUsages: [serverAuth]
    sans: [localhost]
"""


def test_shipped_profiles_have_short_lifetimes(profiles: PkiProfiles) -> None:
    assert profiles.get("ca").lifetime == timedelta(days=1095)
    assert profiles.get("etcd-ca").lifetime == timedelta(days=1095)
    for leaf in profiles.standing_leaves():
        assert leaf.lifetime == timedelta(days=30), leaf.name
    breakglass = profiles.get("breakglass")
    assert (breakglass.lifetime, breakglass.max_lifetime) == (
        timedelta(hours=1),
        timedelta(hours=8),
    )
    assert breakglass.on_demand


def test_shipped_profiles_issue_from_the_right_ca(profiles: PkiProfiles) -> None:
    issuers = {p.name: p.issuer for p in profiles.standing_leaves()}
    assert issuers == {
        "apiserver": "ca",
        "admin": "ca",
        "apiserver-etcd-client": "etcd-ca",
        "etcd-server": "etcd-ca",
        "etcd-peer": "etcd-ca",
    }


def test_admin_profile_is_not_in_system_masters(profiles: PkiProfiles) -> None:
    admin = profiles.get("admin").subject
    assert admin.common_name == "securekube-admin"
    assert admin.organizations == ("securekube:cluster-admins",)
    assert profiles.get("breakglass").subject.organizations == ("system:masters",)


def test_a_missing_profiles_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(PkiError, match="certificate profiles not found at .*nope.yaml"):
        load_profiles(tmp_path / "nope.yaml")


@pytest.mark.parametrize(
    ("edit", "message"),
    [
        (("lifetime: 1d", "lifetme: 1d"), "unknown field.*lifetme"),
        (("[digitalSignature]", "[digitalSignature, keyCertSign]"), "may never sign"),
        (("lifetime: 1d", "lifetime: 11d"), "longer than its CA"),
        (("issuer: ca", "issuer: web"), "not a CA profile"),
        (("sans: [localhost]", "sans: []"), "needs at least one SAN"),
        (("sans: [localhost]", "sans: ['*.example.com']"), "invalid subject alternative name"),
        (("[serverAuth]", "[codeSigning]"), "serverAuth and/or clientAuth"),
        (("lifetime: 10d", "lifetime: 0d"), "longer than zero"),
    ],
)
def test_unsafe_or_mistyped_profiles_are_refused(edit: tuple[str, str], message: str) -> None:
    old, new = edit
    assert old in MINIMAL
    with pytest.raises(PkiError, match=message):
        parse_profiles(MINIMAL.replace(old, new, 1))


def test_a_profiles_file_holding_a_private_key_is_refused() -> None:
    text = MINIMAL + "# -----BEGIN EC PRIVATE KEY-----\n"
    with pytest.raises(PkiError, match="must never hold key material"):
        parse_profiles(text)


def test_minimal_profiles_parse() -> None:
    parsed = parse_profiles(MINIMAL)
    assert [p.name for p in parsed.cas()] == ["ca"]
    assert parsed.get("web").sans == ("localhost",)
    with pytest.raises(PkiError, match="'nothing' is missing"):
        parsed.get("nothing")


@pytest.mark.parametrize(
    ("text", "expected"),
    [("30d", timedelta(days=30)), ("1h", timedelta(hours=1)), ("1h30m", timedelta(minutes=90))],
)
def test_durations(text: str, expected: timedelta) -> None:
    assert parse_duration(text) == expected


@pytest.mark.parametrize("text", ["", "1", "h", "1w", "1h 30m", "-1h", "0s"])
def test_bad_durations_are_refused(text: str) -> None:
    with pytest.raises(PkiError, match="invalid duration"):
        parse_duration(text)
