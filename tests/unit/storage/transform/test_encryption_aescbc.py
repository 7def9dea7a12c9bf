"""Known-answer and failure tests for the aescbc provider (upstream byte layout)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.ciphers import Cipher, algorithms, modes

from securekube.storage.transform.aescbc import AESCBCTransformer
from securekube.storage.transform.interfaces import DecryptionError, EncryptionError

CONTEXT = b"/registry/secrets/default/s1"
KEY = bytes(range(32))
IV = bytes(range(100, 116))
PLAINTEXT = b'{"kind":"Secret","data":{"password":"aHVudGVyMg=="}}'


def fixed(value: bytes):
    return lambda size: value


def test_nist_sp800_38a_vector_plus_pkcs7_block():
    # NIST SP 800-38A F.2.1 (CBC-AES128); the last block is the full PKCS#7 padding block
    # for a 64-byte plaintext, computed independently with `openssl enc -aes-128-cbc`.
    key = bytes.fromhex("2b7e151628aed2a6abf7158809cf4f3c")
    iv = bytes.fromhex("000102030405060708090a0b0c0d0e0f")
    plaintext = bytes.fromhex(
        "6bc1bee22e409f96e93d7e117393172aae2d8a571e03ac9c9eb76fac45af8e51"
        "30c81c46a35ce411e5fbc1191a0a52eff69f2445df4f9b17ad2b417be66c3710"
    )
    expected = iv + bytes.fromhex(
        "7649abac8119b246cee98e9b12e9197d5086cb9b507219ee95db113a917678b2"
        "73bed6b8e3c1743b7116e69e222295163ff1caa1681fac09120eca307586e1a7"
        "8cb82807230e1321d3fae00d18cc2012"
    )
    transformer = AESCBCTransformer(key, "nist", random_bytes=fixed(iv))

    assert transformer.to_storage(plaintext, CONTEXT) == expected
    assert transformer.from_storage(expected, CONTEXT) == (plaintext, False)


def test_layout_is_iv_then_cbc_of_pkcs7_padded_plaintext():
    pad = 16 - len(PLAINTEXT) % 16
    encryptor = Cipher(algorithms.AES(KEY), modes.CBC(IV)).encryptor()
    expected = IV + encryptor.update(PLAINTEXT + bytes([pad]) * pad) + encryptor.finalize()

    stored = AESCBCTransformer(KEY, "key1", random_bytes=fixed(IV)).to_storage(PLAINTEXT, CONTEXT)

    assert stored == expected


@pytest.mark.parametrize("key_size", [16, 24, 32])
def test_round_trip_for_every_valid_key_size(key_size):
    transformer = AESCBCTransformer(bytes(key_size), "key1")
    for plaintext in (b"", b"x" * 15, b"x" * 16, PLAINTEXT):
        assert transformer.from_storage(transformer.to_storage(plaintext, CONTEXT), CONTEXT) == (
            plaintext,
            False,
        )


def test_each_write_uses_a_fresh_iv():
    transformer = AESCBCTransformer(KEY, "key1")
    assert transformer.to_storage(PLAINTEXT, CONTEXT) != transformer.to_storage(PLAINTEXT, CONTEXT)


@pytest.mark.parametrize(
    ("mangle", "reason"),
    [
        (lambda v: v[:-1] + bytes([v[-1] ^ 1]), "invalid padding"),
        (lambda v: v[:-1], "not a multiple of the block size"),
        (lambda v: v[:16], "shorter than the required size"),
        (lambda v: v[:5], "shorter than the required size"),
    ],
)
def test_damaged_value_is_refused_without_leaking(mangle, reason):
    transformer = AESCBCTransformer(KEY, "key1", random_bytes=fixed(IV))
    stored = transformer.to_storage(PLAINTEXT, CONTEXT)

    with pytest.raises(DecryptionError) as caught:
        transformer.from_storage(mangle(stored), CONTEXT)

    message = str(caught.value)
    assert reason in message
    assert 'provider aescbc, key "key1"' in message
    assert (caught.value.provider, caught.value.key_name) == ("aescbc", "key1")
    assert "aHVudGVyMg" not in message and KEY.hex() not in message


def test_wrong_key_is_refused():
    stored = AESCBCTransformer(KEY, "key1", random_bytes=fixed(IV)).to_storage(PLAINTEXT, CONTEXT)
    with pytest.raises(DecryptionError, match="invalid padding"):
        AESCBCTransformer(bytes(32), "key1").from_storage(stored, CONTEXT)


def test_invalid_key_size_is_refused_without_showing_the_key():
    with pytest.raises(ValueError, match="16, 24 or 32 bytes, got 8") as caught:
        AESCBCTransformer(b"secret!!", "key1")
    assert "secret!!" not in str(caught.value)


def test_short_random_source_fails_closed():
    transformer = AESCBCTransformer(KEY, "key1", random_bytes=fixed(b"\x00" * 8))
    with pytest.raises(EncryptionError, match="16 bytes"):
        transformer.to_storage(PLAINTEXT, CONTEXT)


def test_repr_hides_key_material():
    text = repr(AESCBCTransformer(KEY, "key1"))
    assert "key1" in text and KEY.hex() not in text and repr(KEY) not in text
