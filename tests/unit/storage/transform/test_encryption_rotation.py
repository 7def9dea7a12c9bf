"""Staged key rotation end to end: add, promote, re-encrypt, prune — against a fake store."""

from __future__ import annotations

import base64
import os
import stat
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
import yaml

from securekube.storage.interfaces import (
    ConflictError,
    KeyExistsError,
    KeyNotFoundError,
    KeyValue,
    RangeResult,
)
from securekube.storage.transform.config import (
    EncryptionConfigError,
    generate_default_config,
    load_encryption_config,
)
from securekube.storage.transform.interfaces import DecryptionError
from securekube.storage.transform.rotation import (
    RotationError,
    add_key,
    key_usage,
    promote_key,
    prune_key,
    reencrypt,
)

SECRETS = "/registry/secrets/"


class FakeStorage:
    """An in-memory Storage with etcd-style revisions and a hook to simulate other writers."""

    def __init__(self) -> None:
        self.kvs: dict[str, KeyValue] = {}
        self.revision = 0
        # Called with the key at the start of update(), before the compare-and-swap check.
        self.before_update: Callable[[str], None] = lambda key: None

    def current_revision(self) -> int:
        return self.revision

    def get(self, key: str, revision: int = 0) -> KeyValue | None:
        return self.kvs.get(key)

    def range(
        self, prefix: str, *, limit: int = 0, start_after: str = "", revision: int = 0
    ) -> RangeResult:
        keys = sorted(k for k in self.kvs if k.startswith(prefix) and k > start_after)
        page = keys[:limit] if limit else keys
        return RangeResult([self.kvs[k] for k in page], self.revision, len(page) < len(keys))

    def create(self, key: str, value: bytes) -> KeyValue:
        if key in self.kvs:
            raise KeyExistsError(key)
        self.revision += 1
        self.kvs[key] = KeyValue(key, value, self.revision, self.revision)
        return self.kvs[key]

    def update(self, key: str, value: bytes, expected_mod_revision: int) -> KeyValue:
        self.before_update(key)
        current = self.kvs.get(key)
        if current is None:
            raise KeyNotFoundError(key)
        if current.mod_revision != expected_mod_revision:
            raise ConflictError(key)
        self.revision += 1
        self.kvs[key] = KeyValue(key, value, current.create_revision, self.revision)
        return self.kvs[key]

    def put(self, key: str, value: bytes) -> None:
        """An unconditional write, as another API server would do."""
        if key in self.kvs:
            self.update(key, value, self.kvs[key].mod_revision)
        else:
            self.create(key, value)

    def delete(self, key: str, expected_mod_revision: int = 0) -> KeyValue:
        current = self.kvs.pop(key)
        self.revision += 1
        return KeyValue(key, current.value, current.create_revision, self.revision)

    def close(self) -> None:
        pass


class Clock:
    """A clock that moves one hour per reading, so each generated key name is distinct."""

    def __init__(self) -> None:
        self.now = datetime(2025, 1, 1, tzinfo=UTC)

    def __call__(self) -> datetime:
        self.now += timedelta(hours=1)
        return self.now


def secret_key(name: str) -> str:
    return f"{SECRETS}default/{name}"


def plaintext(name: str) -> bytes:
    return f'{{"kind":"Secret","metadata":{{"name":"{name}"}}}}'.encode()


def store_secret(storage, path, name: str) -> None:
    """Writes a secret the way an API server using the file at `path` would."""
    key = secret_key(name)
    value = (
        load_encryption_config(path)
        .transformer_for("secrets")
        .to_storage(plaintext(name), key.encode())
    )
    storage.put(key, value)


def read_secret(storage, path, name: str) -> tuple[bytes, bool]:
    key = secret_key(name)
    return (
        load_encryption_config(path)
        .transformer_for("secrets")
        .from_storage(storage.get(key).value, key.encode())
    )


def key_names(path) -> list[list[tuple[str, list[str]]]]:
    document = yaml.safe_load(Path(path).read_text())
    return [
        [
            (kind, [key["name"] for key in (body or {}).get("keys", [])])
            for provider in entry["providers"]
            for kind, body in provider.items()
        ]
        for entry in document["resources"]
    ]


@pytest.fixture
def clock():
    return Clock()


@pytest.fixture
def config_path(tmp_path, clock):
    path = tmp_path / "encryption.yaml"
    generate_default_config(path, clock=clock)
    return path


def test_full_rotation_rewrites_every_secret_and_removes_the_old_key(config_path, clock):
    storage = FakeStorage()
    storage.put(secret_key("legacy"), plaintext("legacy"))  # written before encryption was on
    for name in ("a", "b", "c"):
        store_secret(storage, config_path, name)
    old = "key-20250101T010000Z"

    new = add_key(config_path, clock=clock)
    assert key_names(config_path) == [[("secretbox", [old, new]), ("identity", [])]]
    store_secret(storage, config_path, "d")  # stage 1: still written with the old key
    assert storage.get(secret_key("d")).value.startswith(f"k8s:enc:secretbox:v1:{old}:".encode())

    assert promote_key(config_path, new) is True
    assert key_names(config_path) == [[("secretbox", [new, old]), ("identity", [])]]
    store_secret(storage, config_path, "e")  # stage 2: written with the new key
    assert read_secret(storage, config_path, "a") == (plaintext("a"), True)

    config = load_encryption_config(config_path)
    assert key_usage(storage, config) == {
        "identity": 1,
        f"secretbox:{old}": 4,
        f"secretbox:{new}": 1,
    }
    with pytest.raises(
        RotationError, match=f'key "{old}" \\(secretbox\\) still encrypts 4 stored value'
    ):
        prune_key(config_path, old, storage)

    result = reencrypt(storage, config)
    assert (result.examined, result.rewritten, result.current, result.vanished) == (6, 5, 1, 0)
    assert key_usage(storage, config) == {f"secretbox:{new}": 6}

    prune_key(config_path, old, storage)
    assert key_names(config_path) == [[("secretbox", [new]), ("identity", [])]]
    for name in ("legacy", "a", "b", "c", "d", "e"):
        assert read_secret(storage, config_path, name) == (plaintext(name), False)


def test_rewritten_values_keep_other_keys_and_unrelated_resources_untouched(config_path, clock):
    storage = FakeStorage()
    storage.put("/registry/configmaps/default/c", b'{"kind":"ConfigMap"}')
    store_secret(storage, config_path, "a")
    promote_key(config_path, add_key(config_path, clock=clock))

    reencrypt(storage, load_encryption_config(config_path))

    assert storage.get("/registry/configmaps/default/c").value == b'{"kind":"ConfigMap"}'


def test_reencrypt_never_overwrites_a_concurrent_write(config_path, clock):
    storage = FakeStorage()
    store_secret(storage, config_path, "a")
    promote_key(config_path, add_key(config_path, clock=clock))
    config = load_encryption_config(config_path)
    key = secret_key("a")
    newer = b'{"kind":"Secret","metadata":{"name":"a"},"data":{"v":"Mg=="}}'

    def other_server_writes_first(updated_key: str) -> None:
        storage.before_update = lambda _: None
        storage.put(updated_key, config.transformer_for("secrets").to_storage(newer, key.encode()))

    storage.before_update = other_server_writes_first
    result = reencrypt(storage, config)

    assert (result.rewritten, result.current, result.conflicts) == (0, 1, 1)
    assert config.transformer_for("secrets").from_storage(storage.get(key).value, key.encode()) == (
        newer,
        False,
    )


def test_reencrypt_retries_when_a_concurrent_write_used_the_old_key(config_path, clock):
    storage = FakeStorage()
    store_secret(storage, config_path, "a")
    stale_writer = load_encryption_config(config_path).transformer_for("secrets")
    promote_key(config_path, add_key(config_path, clock=clock))
    config = load_encryption_config(config_path)
    key = secret_key("a")
    newer = b'{"kind":"Secret","metadata":{"name":"a"},"data":{"v":"Mw=="}}'

    def straggler_writes_first(updated_key: str) -> None:
        storage.before_update = lambda _: None
        storage.put(updated_key, stale_writer.to_storage(newer, key.encode()))

    storage.before_update = straggler_writes_first
    result = reencrypt(storage, config)

    assert (result.rewritten, result.conflicts) == (1, 1)
    assert config.transformer_for("secrets").from_storage(storage.get(key).value, key.encode()) == (
        newer,
        False,
    )


def test_reencrypt_does_not_recreate_a_concurrently_deleted_value(config_path, clock):
    storage = FakeStorage()
    store_secret(storage, config_path, "a")
    promote_key(config_path, add_key(config_path, clock=clock))

    def deleted_meanwhile(updated_key: str) -> None:
        storage.before_update = lambda _: None
        storage.delete(updated_key)

    storage.before_update = deleted_meanwhile
    result = reencrypt(storage, load_encryption_config(config_path))

    assert (result.vanished, result.rewritten) == (1, 0)
    assert storage.get(secret_key("a")) is None


def test_reencrypt_pages_through_many_values(config_path, clock):
    storage = FakeStorage()
    for index in range(7):
        store_secret(storage, config_path, f"s{index}")
    promote_key(config_path, add_key(config_path, clock=clock))

    result = reencrypt(storage, load_encryption_config(config_path), page_size=2)

    assert (result.examined, result.rewritten) == (7, 7)


def test_reencrypt_stops_on_a_value_it_cannot_decrypt_and_names_it(config_path):
    storage = FakeStorage()
    storage.put(secret_key("broken"), b"k8s:enc:secretbox:v1:gone:" + bytes(60))
    with pytest.raises(DecryptionError, match=f'^{secret_key("broken")}: no key named "gone"'):
        reencrypt(storage, load_encryption_config(config_path))


def test_prune_refuses_the_write_key_and_unknown_keys(config_path):
    storage = FakeStorage()
    before = Path(config_path).read_bytes()
    with pytest.raises(RotationError, match="is the write key"):
        prune_key(config_path, "key-20250101T010000Z", storage)
    with pytest.raises(RotationError, match='no key named "nope"'):
        prune_key(config_path, "nope", storage)
    with pytest.raises(RotationError, match='no key named "nope"'):
        promote_key(config_path, "nope")
    assert Path(config_path).read_bytes() == before


def test_promote_of_the_write_key_changes_nothing(config_path):
    before = Path(config_path).read_bytes()
    assert promote_key(config_path, "key-20250101T010000Z") is False
    assert Path(config_path).read_bytes() == before


def test_enabling_encryption_from_identity_adds_a_second_provider(tmp_path, clock):
    path = tmp_path / "encryption.yaml"
    path.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
        "resources:\n- resources: [secrets]\n  providers:\n  - identity: {}\n"
    )
    path.chmod(0o600)
    storage = FakeStorage()
    store_secret(storage, path, "a")

    name = add_key(path, "aesgcm", clock=clock)
    assert key_names(path) == [[("identity", []), ("aesgcm", [name])]]
    store_secret(storage, path, "b")
    assert storage.get(secret_key("b")).value == plaintext("b")  # stage 1 still writes plaintext

    promote_key(path, name)
    assert key_names(path) == [[("aesgcm", [name]), ("identity", [])]]
    result = reencrypt(storage, load_encryption_config(path))
    assert result.rewritten == 2
    assert key_usage(storage, load_encryption_config(path)) == {f"aesgcm:{name}": 2}


def test_switching_provider_type_keeps_the_old_one_readable(config_path, clock):
    name = add_key(config_path, "aescbc", clock=clock)
    assert key_names(config_path)[0][1] == ("aescbc", [name])
    key = yaml.safe_load(Path(config_path).read_text())["resources"][0]["providers"][1]["aescbc"][
        "keys"
    ][0]
    assert len(base64.b64decode(key["secret"])) == 32


def test_add_key_refuses_unknown_provider_and_uncovered_resource(config_path):
    with pytest.raises(RotationError, match="add_key supports"):
        add_key(config_path, "kms")
    with pytest.raises(RotationError, match=r'no entry in .* covers resource "configmaps"'):
        add_key(config_path, resource="configmaps")


def test_rotation_refuses_to_edit_an_unsafe_or_invalid_file(config_path, tmp_path):
    os.chmod(config_path, 0o644)
    with pytest.raises(EncryptionConfigError, match="chmod 600"):
        add_key(config_path)
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\nresources: []\n"
    )
    broken.chmod(0o600)
    with pytest.raises(EncryptionConfigError, match="at least one resources"):
        add_key(broken)
    assert broken.read_text().endswith("resources: []\n")


def test_rewritten_file_is_owner_only_and_leaves_no_temporary_files(config_path, clock):
    os.chmod(config_path, 0o400)
    add_key(config_path, clock=clock)
    assert stat.S_IMODE(os.stat(config_path).st_mode) == 0o600
    assert os.listdir(os.path.dirname(config_path)) == ["encryption.yaml"]


def test_key_usage_reads_prefixes_only(config_path):
    storage = FakeStorage()
    storage.put(secret_key("a"), b"k8s:enc:aescbc:v1:retired:" + bytes(32))
    storage.put(secret_key("b"), b"k8s:enc:kms:v2:vault:" + bytes(32))
    storage.put(secret_key("c"), b"k8s\x00protobuf")
    assert key_usage(storage, load_encryption_config(config_path)) == {
        "aescbc:retired": 1,
        "identity": 1,
        "kms:vault": 1,
    }


def test_key_usage_matches_configured_names_containing_colons(tmp_path):
    secret = base64.b64encode(bytes(32)).decode()
    path = tmp_path / "encryption.yaml"
    path.write_text(
        "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"
        "resources:\n- resources: [secrets]\n  providers:\n"
        f"  - secretbox: {{keys: [{{name: 'a:b', secret: '{secret}'}}]}}\n"
    )
    path.chmod(0o600)
    storage = FakeStorage()
    store_secret(storage, path, "x")
    assert key_usage(storage, load_encryption_config(path)) == {"secretbox:a:b": 1}


def test_rotation_against_the_sqlite_backend(config_path, clock, tmp_path):
    sqlite = pytest.importorskip("securekube.storage.sqlite")
    storage = sqlite.SqliteStorage(tmp_path / "state.db")
    try:
        for name in ("a", "b"):
            key = secret_key(name)
            value = (
                load_encryption_config(config_path)
                .transformer_for("secrets")
                .to_storage(plaintext(name), key.encode())
            )
            storage.create(key, value)
        old = "key-20250101T010000Z"
        new = add_key(config_path, clock=clock)
        promote_key(config_path, new)
        config = load_encryption_config(config_path)

        assert reencrypt(storage, config).rewritten == 2
        prune_key(config_path, old, storage)

        config = load_encryption_config(config_path)
        assert key_usage(storage, config) == {f"secretbox:{new}": 2}
        for name in ("a", "b"):
            key = secret_key(name)
            assert config.transformer_for("secrets").from_storage(
                storage.get(key).value, key.encode()
            ) == (plaintext(name), False)
    finally:
        storage.close()
