"""Bootstrap tokens: which credentials are recognised, which Secrets make them valid, and what identity results."""
from __future__ import annotations

import base64
import datetime as dt
from typing import Any, Mapping

import pytest

from securekube.authn.bootstrap import BootstrapTokenAuthenticator
from securekube.authn.interfaces import AuthenticationError, Credentials, UserInfo

NOW = dt.datetime(2025, 3, 1, 12, 0, 0, tzinfo=dt.timezone.utc)
TOKEN_ID, TOKEN_SECRET = "abcdef", "0123456789abcdef"
TOKEN = f"{TOKEN_ID}.{TOKEN_SECRET}"


def b64(value: str) -> str:
    return base64.b64encode(value.encode()).decode()


def bootstrap_secret(**data: str | None) -> dict[str, Any]:
    """A kube-system bootstrap token Secret for TOKEN as the API returns it; a None value drops that key."""
    values: dict[str, str | None] = {
        "token-id": TOKEN_ID,
        "token-secret": TOKEN_SECRET,
        "expiration": "2025-03-02T12:00:00Z",
        "usage-bootstrap-authentication": "true",
        "usage-bootstrap-signing": "true",
        "auth-extra-groups": "system:bootstrappers:kubeadm:default-node-token",
    }
    values.update(data)
    return {
        "apiVersion": "v1",
        "kind": "Secret",
        "metadata": {"name": f"bootstrap-token-{TOKEN_ID}", "namespace": "kube-system", "uid": "u-1"},
        "type": "bootstrap.kubernetes.io/token",
        "data": {key: b64(value) for key, value in values.items() if value is not None},
    }


class SecretStore:
    """kube-system Secrets by name, recording which names the authenticator asked for."""

    def __init__(self, *secrets: Mapping[str, Any]) -> None:
        self.secrets = {s["metadata"]["name"]: s for s in secrets}
        self.asked: list[str] = []

    def lookup(self, name: str) -> Mapping[str, Any] | None:
        self.asked.append(name)
        return self.secrets.get(name)


def authenticator(*secrets: Mapping[str, Any], now: dt.datetime = NOW) -> BootstrapTokenAuthenticator:
    return BootstrapTokenAuthenticator(SecretStore(*secrets).lookup, clock=lambda: now)


def bearer(token: str) -> Credentials:
    return Credentials(client_cert_chain=(), authorization=f"Bearer {token}")


def refusal(authn: BootstrapTokenAuthenticator, token: str = TOKEN) -> str:
    with pytest.raises(AuthenticationError) as info:
        authn.authenticate(bearer(token))
    reason = str(info.value)
    # The audit reason may name the (public) token id, never the secret half.
    assert token.split(".")[1] not in reason and TOKEN_SECRET not in reason
    return reason


def test_valid_token_authenticates_as_its_bootstrap_user() -> None:
    store = SecretStore(bootstrap_secret())
    user = BootstrapTokenAuthenticator(store.lookup, clock=lambda: NOW).authenticate(bearer(TOKEN))
    assert user == UserInfo(
        username="system:bootstrap:abcdef",
        groups=("system:bootstrappers", "system:bootstrappers:kubeadm:default-node-token"),
    )
    assert store.asked == ["bootstrap-token-abcdef"]


def test_extra_groups_are_deduplicated_and_sorted_after_the_default_group() -> None:
    secret = bootstrap_secret(**{"auth-extra-groups": "system:bootstrappers:z,system:bootstrappers:a,system:bootstrappers:z"})
    user = authenticator(secret).authenticate(bearer(TOKEN))
    assert user is not None
    assert user.groups == ("system:bootstrappers", "system:bootstrappers:a", "system:bootstrappers:z")


def test_without_extra_groups_only_the_default_group() -> None:
    user = authenticator(bootstrap_secret(**{"auth-extra-groups": None})).authenticate(bearer(TOKEN))
    assert user is not None and user.groups == ("system:bootstrappers",)


def test_token_without_expiration_does_not_expire() -> None:
    far_future = NOW + dt.timedelta(days=3650)
    assert authenticator(bootstrap_secret(expiration=None), now=far_future).authenticate(bearer(TOKEN)) is not None


@pytest.mark.parametrize(
    "authorization",
    [
        None,
        "",
        "Basic YWJjZGVmOjAxMjM0NTY3ODlhYmNkZWY=",
        "Bearer ABCDEF.0123456789ABCDEF",  # upper case is not the bootstrap alphabet
        "Bearer abcdef.0123456789abcde",  # secret one short
        "Bearer abcdefg.0123456789abcdef",  # id one long
        "Bearer abcdef0123456789abcdef",
        "Bearer eyJhbGciOiJFUzI1NiJ9.eyJpc3MiOiJ4In0.c2ln",  # a JWT
        f"Bearer {TOKEN} trailing",
    ],
)
def test_other_credentials_are_not_recognised(authorization: str | None) -> None:
    store = SecretStore(bootstrap_secret())
    assert BootstrapTokenAuthenticator(store.lookup, clock=lambda: NOW).authenticate(Credentials((), authorization)) is None
    assert store.asked == []  # nothing is looked up for a credential that is not ours


def test_bearer_scheme_is_case_insensitive() -> None:
    assert authenticator(bootstrap_secret()).authenticate(Credentials((), f"bearer {TOKEN}")) is not None


def test_token_without_a_secret_is_refused() -> None:
    assert "does not exist" in refusal(authenticator())


def test_wrong_token_secret_is_refused() -> None:
    assert "token-secret" in refusal(authenticator(bootstrap_secret()), f"{TOKEN_ID}.fedcba9876543210")


def test_secret_whose_token_id_differs_is_refused() -> None:
    assert "token-id" in refusal(authenticator(bootstrap_secret(**{"token-id": "zzzzzz"})))


def test_wrong_secret_type_is_refused() -> None:
    secret = bootstrap_secret()
    secret["type"] = "Opaque"
    assert "invalid type" in refusal(authenticator(secret))


@pytest.mark.parametrize("usage", [None, "false", "True", "yes"])
def test_token_not_marked_for_authentication_is_refused(usage: str | None) -> None:
    assert "usage-bootstrap-authentication" in refusal(
        authenticator(bootstrap_secret(**{"usage-bootstrap-authentication": usage}))
    )


def test_token_is_refused_from_its_expiration_on() -> None:
    secret = bootstrap_secret(expiration="2025-03-01T13:00:00+01:00")  # == NOW
    assert authenticator(secret, now=NOW - dt.timedelta(seconds=1)).authenticate(bearer(TOKEN)) is not None
    assert "expired" in refusal(authenticator(secret, now=NOW))


@pytest.mark.parametrize("expiration", ["tomorrow", "2030-01-01", "2030-01-01T00:00:00", "2030-01-01 00:00:00Z", "2030-13-01T00:00:00Z"])
def test_unreadable_expiration_counts_as_expired(expiration: str) -> None:
    assert "unparseable expiration" in refusal(authenticator(bootstrap_secret(expiration=expiration)))


@pytest.mark.parametrize(
    "groups",
    ["system:masters", "system:bootstrappers", "system:bootstrappers:", "system:bootstrappers:Upper", "system:bootstrappers:a,"],
)
def test_extra_groups_outside_the_bootstrap_pattern_are_refused(groups: str) -> None:
    assert "is invalid (must match" in refusal(authenticator(bootstrap_secret(**{"auth-extra-groups": groups})))


def test_secret_being_deleted_is_refused() -> None:
    secret = bootstrap_secret()
    secret["metadata"]["deletionTimestamp"] = "2025-03-01T11:59:00Z"
    assert "deleted" in refusal(authenticator(secret))


def test_secret_from_another_namespace_is_refused() -> None:
    secret = bootstrap_secret()
    secret["metadata"]["namespace"] = "default"
    assert "namespace" in refusal(authenticator(secret))


def test_data_that_is_not_base64_is_refused_without_quoting_it() -> None:
    secret = bootstrap_secret()
    secret["data"]["token-secret"] = "not base64!"
    reason = refusal(authenticator(secret))
    assert "not base64" in reason and "not base64!" not in reason


def test_a_failing_lookup_refuses() -> None:
    def broken(name: str) -> Mapping[str, Any] | None:
        raise OSError("storage is down")

    assert "could not be read" in refusal(BootstrapTokenAuthenticator(broken, clock=lambda: NOW))
