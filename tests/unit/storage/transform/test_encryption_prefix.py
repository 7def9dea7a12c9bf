"""Prefix routing: first provider key writes, every provider key reads, identity rules."""

from __future__ import annotations

import nacl.bindings
import pytest

from securekube.storage.transform.aescbc import AESCBCTransformer
from securekube.storage.transform.aesgcm import AESGCMTransformer
from securekube.storage.transform.config import EncryptionConfig
from securekube.storage.transform.identity import IdentityTransformer
from securekube.storage.transform.interfaces import DecryptionError
from securekube.storage.transform.model import KeySpec, ProviderSpec, ResourceRule
from securekube.storage.transform.prefix import PrefixedTransformer, PrefixTransformers
from securekube.storage.transform.secretbox import SecretboxTransformer

CONTEXT = b"/registry/secrets/default/s1"
PLAINTEXT = b'{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}'
KEY_A = bytes(range(32))
KEY_B = bytes(range(1, 33))


def cbc(name: str, key: bytes = KEY_A) -> PrefixedTransformer:
    prefix = f"k8s:enc:aescbc:v1:{name}:".encode()
    return PrefixedTransformer(prefix, "aescbc", name, AESCBCTransformer(key, name))


def gcm(name: str, key: bytes = KEY_A) -> PrefixedTransformer:
    prefix = f"k8s:enc:aesgcm:v1:{name}:".encode()
    return PrefixedTransformer(prefix, "aesgcm", name, AESGCMTransformer(key, name))


def box(name: str, key: bytes = KEY_A) -> PrefixedTransformer:
    prefix = f"k8s:enc:secretbox:v1:{name}:".encode()
    return PrefixedTransformer(prefix, "secretbox", name, SecretboxTransformer(key, name))


IDENTITY = PrefixedTransformer(b"", "identity", "", IdentityTransformer())


def test_full_stored_value_matches_upstream_format():
    nonce = bytes(range(24))
    rules = (ResourceRule(("secrets",), (ProviderSpec("secretbox", (KeySpec("key1", KEY_A),)),)),)
    config = EncryptionConfig.from_rules(rules, "test", random_bytes=lambda size: nonce)

    stored = config.transformer_for("secrets").to_storage(PLAINTEXT, CONTEXT)

    assert stored == b"k8s:enc:secretbox:v1:key1:" + nonce + nacl.bindings.crypto_secretbox_easy(
        PLAINTEXT, nonce, KEY_A
    )


def test_identity_stores_plaintext_and_refuses_encrypted_data():
    identity = IdentityTransformer()
    assert identity.to_storage(PLAINTEXT, CONTEXT) == PLAINTEXT
    assert identity.from_storage(PLAINTEXT, CONTEXT) == (PLAINTEXT, False)
    with pytest.raises(DecryptionError, match="cannot read an encrypted value"):
        identity.from_storage(b"k8s:enc:aescbc:v1:key1:xxxx", CONTEXT)


def test_first_key_writes_and_reads_fresh():
    chain = PrefixTransformers([cbc("key1"), cbc("key2", KEY_B)])
    stored = chain.to_storage(PLAINTEXT, CONTEXT)
    assert stored.startswith(b"k8s:enc:aescbc:v1:key1:")
    assert chain.from_storage(stored, CONTEXT) == (PLAINTEXT, False)


def test_value_from_a_later_key_reads_as_stale():
    old = PrefixTransformers([cbc("key1")])
    rotated = PrefixTransformers([cbc("key2", KEY_B), cbc("key1")])
    assert rotated.from_storage(old.to_storage(PLAINTEXT, CONTEXT), CONTEXT) == (PLAINTEXT, True)


def test_value_from_a_later_provider_reads_as_stale():
    old = PrefixTransformers([gcm("key1")])
    rotated = PrefixTransformers([box("key9"), gcm("key1")])
    assert rotated.from_storage(old.to_storage(PLAINTEXT, CONTEXT), CONTEXT) == (PLAINTEXT, True)


def test_missing_key_names_the_key_and_provider():
    stored = PrefixTransformers([cbc("key2", KEY_B)]).to_storage(PLAINTEXT, CONTEXT)
    with pytest.raises(DecryptionError) as caught:
        PrefixTransformers([cbc("key1"), IDENTITY]).from_storage(stored, CONTEXT)
    assert str(caught.value) == (
        'no key named "key2" for provider aescbc is configured; the value cannot be decrypted'
    )
    assert (caught.value.provider, caught.value.key_name) == ("aescbc", "key2")


def test_unconfigured_provider_is_an_error_not_plaintext():
    stored = PrefixTransformers([box("key1")]).to_storage(PLAINTEXT, CONTEXT)
    with pytest.raises(
        DecryptionError, match=r'provider secretbox \(key "key1"\) is not configured'
    ):
        PrefixTransformers([IDENTITY, cbc("key1")]).from_storage(stored, CONTEXT)


def test_plaintext_is_refused_when_identity_is_not_configured():
    with pytest.raises(DecryptionError, match="identity is not among the configured providers"):
        PrefixTransformers([cbc("key1")]).from_storage(PLAINTEXT, CONTEXT)


def test_identity_second_reads_old_plaintext_as_stale():
    chain = PrefixTransformers([box("key1"), IDENTITY])
    assert chain.from_storage(PLAINTEXT, CONTEXT) == (PLAINTEXT, True)


def test_identity_first_writes_plaintext_and_still_reads_encrypted_values():
    encrypted = PrefixTransformers([box("key1")]).to_storage(PLAINTEXT, CONTEXT)
    chain = PrefixTransformers([IDENTITY, box("key1")])

    assert chain.to_storage(PLAINTEXT, CONTEXT) == PLAINTEXT
    assert chain.from_storage(PLAINTEXT, CONTEXT) == (PLAINTEXT, False)
    assert chain.from_storage(encrypted, CONTEXT) == (PLAINTEXT, True)


def test_same_prefix_in_two_providers_falls_through_to_the_one_that_decrypts():
    # Upstream's rotation example: two aesgcm providers both with a key named "key1".
    stored = PrefixTransformers([gcm("key1", KEY_B)]).to_storage(PLAINTEXT, CONTEXT)
    chain = PrefixTransformers([gcm("key1", KEY_A), gcm("key1", KEY_B)])
    assert chain.from_storage(stored, CONTEXT) == (PLAINTEXT, True)


def test_failure_under_a_matching_prefix_reports_that_key():
    stored = PrefixTransformers([gcm("key1", KEY_B)]).to_storage(PLAINTEXT, CONTEXT)
    with pytest.raises(DecryptionError, match='provider aesgcm, key "key1": authentication failed'):
        PrefixTransformers([gcm("key1", KEY_A), IDENTITY]).from_storage(stored, CONTEXT)


def test_garbage_in_stored_prefix_is_not_echoed_raw():
    data = b"k8s:enc:aescbc:v1:\x1b[31m" + b"A" * 200 + b":rest"
    with pytest.raises(DecryptionError) as caught:
        PrefixTransformers([cbc("key1")]).from_storage(data, CONTEXT)
    message = str(caught.value)
    assert "\x1b" not in message and "A" * 65 not in message


def test_needs_at_least_one_provider():
    with pytest.raises(ValueError):
        PrefixTransformers([])
