"""Known-answer and failure tests for the aesgcm provider (upstream byte layout, key as AAD)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from securekube.storage.transform.aesgcm import AESGCMTransformer
from securekube.storage.transform.interfaces import DecryptionError, EncryptionError

CONTEXT = b"/registry/secrets/default/s1"
KEY = bytes(range(32))
NONCE = bytes(range(200, 212))
PLAINTEXT = b'{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}'


def fixed(value: bytes):
    return lambda size: value


def test_gcm_spec_test_case_4_with_aad_as_context():
    # McGrew & Viega, "The Galois/Counter Mode of Operation", test case 4 (AES-128, 96-bit IV,
    # 20 bytes of additional data). Stored layout: nonce || ciphertext || tag.
    key = bytes.fromhex("feffe9928665731c6d6a8f9467308308")
    nonce = bytes.fromhex("cafebabefacedbaddecaf888")
    aad = bytes.fromhex("feedfacedeadbeeffeedfacedeadbeefabaddad2")
    plaintext = bytes.fromhex(
        "d9313225f88406e5a55909c5aff5269a86a7a9531534f7da2e4c303d8a318a72"
        "1c3c0c95956809532fcf0e2449a6b525b16aedf5aa0de657ba637b39"
    )
    expected = nonce + bytes.fromhex(
        "42831ec2217774244b7221b784d0d49ce3aa212f2c02a4e035c17e2329aca12e"
        "21d514b25466931c7d8f6a5aac84aa051ba30b396a0aac973d58e091"
        "5bc94fbc3221a5db94fae95ae7121a47"
    )
    transformer = AESGCMTransformer(key, "spec", random_bytes=fixed(nonce))

    assert transformer.to_storage(plaintext, aad) == expected
    assert transformer.from_storage(expected, aad) == (plaintext, False)


def test_layout_is_nonce_then_ciphertext_and_tag_with_storage_key_as_aad():
    encryptor = Cipher(algorithms.AES(KEY), modes.GCM(NONCE)).encryptor()
    encryptor.authenticate_additional_data(CONTEXT)
    ciphertext = encryptor.update(PLAINTEXT) + encryptor.finalize()
    expected = NONCE + ciphertext + encryptor.tag

    stored = AESGCMTransformer(KEY, "key1", random_bytes=fixed(NONCE)).to_storage(
        PLAINTEXT, CONTEXT
    )

    assert stored == expected


@pytest.mark.parametrize("key_size", [16, 24, 32])
def test_round_trip_for_every_valid_key_size(key_size):
    transformer = AESGCMTransformer(bytes(key_size), "key1")
    for plaintext in (b"", PLAINTEXT):
        assert transformer.from_storage(transformer.to_storage(plaintext, CONTEXT), CONTEXT) == (
            plaintext,
            False,
        )


def test_value_moved_to_another_storage_key_is_refused():
    transformer = AESGCMTransformer(KEY, "key1")
    stored = transformer.to_storage(PLAINTEXT, CONTEXT)

    with pytest.raises(DecryptionError, match="copied from another storage key") as caught:
        transformer.from_storage(stored, b"/registry/secrets/attacker/s1")
    assert (caught.value.provider, caught.value.key_name) == ("aesgcm", "key1")


@pytest.mark.parametrize("position", [0, 12, 20, -1])
def test_any_altered_byte_is_refused(position):
    transformer = AESGCMTransformer(KEY, "key1", random_bytes=fixed(NONCE))
    stored = bytearray(transformer.to_storage(PLAINTEXT, CONTEXT))
    stored[position] ^= 0x01

    with pytest.raises(DecryptionError, match="authentication failed") as caught:
        transformer.from_storage(bytes(stored), CONTEXT)
    assert "aHVudGVyMg" not in str(caught.value)


def test_wrong_key_and_short_value_are_refused():
    stored = AESGCMTransformer(KEY, "key1").to_storage(PLAINTEXT, CONTEXT)
    with pytest.raises(DecryptionError, match="authentication failed"):
        AESGCMTransformer(bytes(32), "key1").from_storage(stored, CONTEXT)
    with pytest.raises(DecryptionError, match="shorter than the required size"):
        AESGCMTransformer(KEY, "key1").from_storage(stored[:27], CONTEXT)


def test_invalid_key_size_and_short_nonce_fail_closed():
    with pytest.raises(ValueError, match="got 20"):
        AESGCMTransformer(bytes(20), "key1")
    with pytest.raises(EncryptionError, match="12 bytes"):
        AESGCMTransformer(KEY, "key1", random_bytes=fixed(b"")).to_storage(PLAINTEXT, CONTEXT)
