"""Known-answer and failure tests for the secretbox provider (upstream byte layout, no AAD)."""

from __future__ import annotations

import nacl.bindings
import pytest

from securekube.storage.transform.interfaces import DecryptionError, EncryptionError
from securekube.storage.transform.secretbox import SecretboxTransformer

CONTEXT = b"/registry/secrets/default/s1"
KEY = bytes(range(32))
NONCE = bytes(range(24))
PLAINTEXT = b'{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}'


def fixed(value: bytes):
    return lambda size: value


def test_nacl_reference_vector():
    # The vector golang.org/x/crypto/nacl/secretbox (used by kube-apiserver) checks against the
    # C NaCl implementation: key 0x01*32, nonce 0x02*24, message 0x03*64.
    nonce = b"\x02" * 24
    expected_box = bytes.fromhex(
        "8442bc313f4626f1359e3b50122b6ce6fe66ddfe7d39d14e637eb4fd5b45bead"
        "ab55198df6ab5368439792a23c87db70acb6156dc5ef957ac04f6276cf6093b8"
        "4be77ff0849cc33e34b7254d5a8f65ad"
    )
    transformer = SecretboxTransformer(b"\x01" * 32, "nacl", random_bytes=fixed(nonce))

    assert transformer.to_storage(b"\x03" * 64, CONTEXT) == nonce + expected_box
    assert transformer.from_storage(nonce + expected_box, CONTEXT) == (b"\x03" * 64, False)


def test_layout_is_nonce_then_tag_and_ciphertext():
    expected = NONCE + nacl.bindings.crypto_secretbox_easy(PLAINTEXT, NONCE, KEY)

    stored = SecretboxTransformer(KEY, "key1", random_bytes=fixed(NONCE)).to_storage(
        PLAINTEXT, CONTEXT
    )

    assert stored == expected
    assert type(stored) is bytes


def test_value_is_not_bound_to_its_storage_key_like_upstream():
    # Upstream passes no additional data to secretbox, so the value reads under any key.
    transformer = SecretboxTransformer(KEY, "key1")
    stored = transformer.to_storage(PLAINTEXT, CONTEXT)
    assert transformer.from_storage(stored, b"/registry/secrets/other/s2") == (PLAINTEXT, False)


@pytest.mark.parametrize("position", [0, 24, 40, -1])
def test_any_altered_byte_is_refused(position):
    transformer = SecretboxTransformer(KEY, "key1", random_bytes=fixed(NONCE))
    stored = bytearray(transformer.to_storage(PLAINTEXT, CONTEXT))
    stored[position] ^= 0x20

    with pytest.raises(DecryptionError, match="authentication failed") as caught:
        transformer.from_storage(bytes(stored), CONTEXT)
    assert (caught.value.provider, caught.value.key_name) == ("secretbox", "key1")
    assert "aHVudGVyMg" not in str(caught.value)


def test_wrong_key_and_short_value_are_refused():
    stored = SecretboxTransformer(KEY, "key1").to_storage(PLAINTEXT, CONTEXT)
    with pytest.raises(DecryptionError, match="authentication failed"):
        SecretboxTransformer(bytes(32), "key1").from_storage(stored, CONTEXT)
    with pytest.raises(DecryptionError, match="shorter than the required size"):
        SecretboxTransformer(KEY, "key1").from_storage(stored[:39], CONTEXT)


def test_only_32_byte_keys_and_full_nonces_are_accepted():
    with pytest.raises(ValueError, match="32 bytes, got 16"):
        SecretboxTransformer(bytes(16), "key1")
    with pytest.raises(EncryptionError, match="24 bytes"):
        SecretboxTransformer(KEY, "key1", random_bytes=fixed(bytes(23))).to_storage(
            PLAINTEXT, CONTEXT
        )
