"""Loading EncryptionConfiguration files: upstream examples, resource matching, every refusal."""

from __future__ import annotations

import base64
import json
import os
import stat
import textwrap
from datetime import UTC, datetime
from pathlib import Path

import pytest
import yaml

from securekube.storage.transform.config import (
    EncryptionConfigError,
    describe,
    generate_default_config,
    load_encryption_config,
)
from securekube.storage.transform.identity import IdentityTransformer
from securekube.storage.transform.interfaces import DecryptionError

CONTEXT = b"/registry/secrets/default/s1"
PLAINTEXT = b'{"kind":"Secret"}'
AES16 = "c2VjcmV0IGlzIHNlY3VyZQ=="  # "secret is secure" (upstream's test key)
AES16_B = "dGhpcyBpcyBwYXNzd29yZA=="  # "this is password"
BOX32 = "YWJjZGVmZ2hpamtsbW5vcHFyc3R1dnd4eXoxMjM0NTY="  # 32 bytes
SHORT8 = base64.b64encode(b"8bytes!!").decode()

# The shape of upstream's documented example (its key2/key3 secrets are not valid key lengths,
# so valid ones are used here).
UPSTREAM_EXAMPLE = f"""\
kind: EncryptionConfiguration
apiVersion: apiserver.config.k8s.io/v1
resources:
  - resources:
      - events
    providers:
      - identity: {{}}  # do not encrypt events even though *.* is specified below
  - resources:
      - secrets
      - configmaps
      - pandas.awesome.bears.example
    providers:
      - aescbc:
          keys:
            - name: key1
              secret: {AES16}
  - resources:
      - '*.apps'
    providers:
      - aesgcm:
          keys:
            - name: key2
              secret: {AES16_B}
  - resources:
      - '*.*'
    providers:
      - secretbox:
          keys:
            - name: key3
              secret: {BOX32}
"""


def write(tmp_path, text: str, mode: int = 0o600, name: str = "enc.yaml") -> str:
    path = tmp_path / name
    path.write_text(text)
    path.chmod(mode)
    return str(path)


def writer_prefix(config, resource: str, group: str = "") -> bytes:
    """What the resource's transformer writes (its prefix is what matters here)."""
    return config.transformer_for(resource, group).to_storage(PLAINTEXT, CONTEXT)


@pytest.fixture
def example(tmp_path):
    return load_encryption_config(write(tmp_path, UPSTREAM_EXAMPLE))


def test_upstream_example_routes_each_resource(example):
    assert example.transformer_for("events").to_storage(PLAINTEXT, CONTEXT) == PLAINTEXT
    assert writer_prefix(example, "secrets").startswith(b"k8s:enc:aescbc:v1:key1:")
    assert writer_prefix(example, "configmaps").startswith(b"k8s:enc:aescbc:v1:key1:")
    assert writer_prefix(example, "pandas", "awesome.bears.example").startswith(
        b"k8s:enc:aescbc:v1:key1:"
    )
    assert writer_prefix(example, "deployments", "apps").startswith(b"k8s:enc:aesgcm:v1:key2:")
    assert writer_prefix(example, "pods").startswith(b"k8s:enc:secretbox:v1:key3:")
    assert writer_prefix(example, "roles", "rbac.authorization.k8s.io").startswith(
        b"k8s:enc:secretbox:v1:key3:"
    )


def test_unmatched_resource_gets_identity(tmp_path):
    config = load_encryption_config(
        write(tmp_path, _single("secrets", f"- aescbc: {{keys: [{{name: k, secret: {AES16}}}]}}"))
    )
    assert isinstance(config.transformer_for("configmaps"), IdentityTransformer)
    assert isinstance(config.transformer_for("secrets", "example.com"), IdentityTransformer)


def test_core_wildcard_covers_core_resources_only(tmp_path):
    config = load_encryption_config(
        write(tmp_path, _single("'*.'", f"- aescbc: {{keys: [{{name: k, secret: {AES16}}}]}}"))
    )
    assert writer_prefix(config, "secrets").startswith(b"k8s:enc:aescbc:v1:k:")
    assert isinstance(config.transformer_for("deployments", "apps"), IdentityTransformer)


def test_resource_in_two_entries_gets_both_providers_first_entry_writes(tmp_path):
    text = f"""\
apiVersion: apiserver.config.k8s.io/v1
kind: EncryptionConfiguration
resources:
- resources: [secrets]
  providers: [{{secretbox: {{keys: [{{name: new, secret: {BOX32}}}]}}}}]
- resources: [secrets]
  providers: [{{aescbc: {{keys: [{{name: old, secret: {AES16}}}]}}}}]
"""
    config = load_encryption_config(write(tmp_path, text))
    old_value = b"k8s:enc:aescbc:v1:old:" + _cbc_value(AES16)
    transformer = config.transformer_for("secrets")

    assert transformer.to_storage(PLAINTEXT, CONTEXT).startswith(b"k8s:enc:secretbox:v1:new:")
    assert transformer.from_storage(old_value, CONTEXT) == (PLAINTEXT, True)


def test_json_file_is_accepted(tmp_path):
    document = yaml.safe_load(UPSTREAM_EXAMPLE)
    config = load_encryption_config(write(tmp_path, json.dumps(document), name="enc.json"))
    assert writer_prefix(config, "secrets").startswith(b"k8s:enc:aescbc:v1:key1:")


def test_group_in_resource_name_is_refused(example):
    with pytest.raises(ValueError, match="pass the API group as `group`"):
        example.transformer_for("deployments.apps")


def test_config_repr_and_describe_never_show_secrets(example):
    described = describe(example)
    text = repr(example) + repr(described) + json.dumps(described)
    for secret in (AES16, AES16_B, BOX32, "secret is secure", "abcdefghijklmnop"):
        assert secret not in text
    assert described[1] == {
        "resources": ["secrets", "configmaps", "pandas.awesome.bears.example"],
        "writes_with": "aescbc:key1",
        "providers": [{"type": "aescbc", "keys": ["key1"]}],
        "notes": [
            "aescbc: not recommended upstream: CBC has no integrity check (padding-oracle risk)"
        ],
    }
    assert described[0]["writes_with"] == "identity"
    assert "written unencrypted" in described[0]["notes"][0]


# --- refusals -----------------------------------------------------------------------------

HEADER = "apiVersion: apiserver.config.k8s.io/v1\nkind: EncryptionConfiguration\n"


def _single(resource: str, provider_yaml: str) -> str:
    providers = textwrap.indent(provider_yaml, "  ")
    return f"{HEADER}resources:\n- resources: [{resource}]\n  providers:\n{providers}\n"


def _cbc_value(secret_b64: str) -> bytes:
    from securekube.storage.transform.aescbc import AESCBCTransformer

    return AESCBCTransformer(base64.b64decode(secret_b64), "k").to_storage(PLAINTEXT, CONTEXT)


BAD_CONFIGS = {
    "wrong kind": (
        UPSTREAM_EXAMPLE.replace("kind: EncryptionConfiguration", "kind: EncryptionConfig"),
        'kind "EncryptionConfiguration"',
    ),
    "legacy apiVersion": (
        UPSTREAM_EXAMPLE.replace("apiserver.config.k8s.io/v1", "v1"),
        "apiVersion must be",
    ),
    "no resources": (
        HEADER + "resources: []\n",
        "resources: Required value: at least one resources is required",
    ),
    "empty resource list": (
        f"{HEADER}resources:\n- resources: []\n  providers: [{{identity: {{}}}}]\n",
        "resources[0].resources: Required value",
    ),
    "no providers": (
        f"{HEADER}resources:\n- resources: [secrets]\n",
        "resources[0].providers: Required value",
    ),
    "typo field": (
        _single(
            "secrets", f"- aescbc: {{keys: [{{name: k, secret: {AES16}}}], pandas: are the best}}"
        ),
        'strict decoding error: unknown field "resources[0].providers[0].aescbc.pandas"',
    ),
    "unknown top field": (UPSTREAM_EXAMPLE + "extra: 1\n", 'unknown field "extra"'),
    "unknown provider": (
        _single("secrets", f"- aesfoo: {{keys: [{{name: k, secret: {AES16}}}]}}"),
        'unknown field "resources[0].providers[0].aesfoo"',
    ),
    "empty provider": (
        _single("secrets", "- {}"),
        "provider does not contain any of the expected providers",
    ),
    "two providers in one element": (
        _single("secrets", f"- identity: {{}}\n  aescbc: {{keys: [{{name: k, secret: {AES16}}}]}}"),
        "more than one provider specified in a single element",
    ),
    "identity with fields": (
        _single("secrets", "- identity: {keys: []}"),
        'unknown field "resources[0].providers[0].identity.keys"',
    ),
    "kms": (
        _single("secrets", "- kms: {apiVersion: v2, name: p, endpoint: 'unix:///tmp/p.sock'}"),
        "resources[0].providers[0].kms: kms providers are not supported by securekube yet",
    ),
    "no keys": (
        _single("secrets", "- secretbox: {keys: []}"),
        "resources[0].providers[0].secretbox.keys: Required value",
    ),
    "key without name": (
        _single("secrets", f"- aesgcm: {{keys: [{{secret: {AES16}}}]}}"),
        "resources[0].providers[0].aesgcm.keys[0].name: "
        "Required value: name is a mandatory field for a key",
    ),
    "key without secret": (
        _single("secrets", "- aesgcm: {keys: [{name: k}]}"),
        "keys[0].secret: Required value: secret is a mandatory field for a key",
    ),
    "secret not base64": (
        _single("secrets", "- aesgcm: {keys: [{name: k, secret: 'not*base64!'}]}"),
        'keys[0].secret: Invalid value: "REDACTED": secrets must be base64 encoded',
    ),
    "aes key too short": (
        _single("secrets", f"- aescbc: {{keys: [{{name: k, secret: '{SHORT8}'}}]}}"),
        'aescbc.keys[0].secret: Invalid value: "REDACTED": secret is not of the expected length, '
        "got 8, expected one of [16 24 32]",
    ),
    "secretbox key 16 bytes": (
        _single("secrets", f"- secretbox: {{keys: [{{name: k, secret: {AES16}}}]}}"),
        "got 16, expected one of [32]",
    ),
    "capital letters": (
        _single("Secrets", "- identity: {}"),
        "resource name should not contain capital letters",
    ),
    "bare star": (
        _single("'*'", "- identity: {}"),
        "use '*.' to encrypt all the resources from core API group",
    ),
    "events group": (_single("'*.events.k8s.io'", "- identity: {}"), "Use 'events' instead"),
    "extensions group": (
        _single("ingresses.extensions", "- identity: {}"),
        "'extensions' group has been removed",
    ),
    "resource across groups": (
        _single("'secrets.*'", "- identity: {}"),
        "encrypting the same resource across groups",
    ),
    "non-REST resource": (
        _single("serviceipallocations", "- identity: {}"),
        "do not have REST API/s",
    ),
    "duplicate resource": (
        _single("secrets, secrets", "- identity: {}"),
        "the same resource cannot be specified multiple times",
    ),
    "overlap in one list": (
        _single("secrets, '*.'", "- identity: {}"),
        "using overlapping resources such as",
    ),
    "masked by earlier wildcard": (
        f"{HEADER}resources:\n- resources: ['*.apps']\n  providers: [{{identity: {{}}}}]\n"
        f"- resources: [deployments.apps]\n  providers: [{{identity: {{}}}}]\n",
        'resource "deployments.apps" is masked by earlier rule "*.apps"',
    ),
    "masked by any-any": (
        f"{HEADER}resources:\n- resources: ['*.*']\n  providers: [{{identity: {{}}}}]\n"
        f"- resources: [secrets]\n  providers: [{{identity: {{}}}}]\n",
        'resource "secrets" is masked by earlier rule "*.*"',
    ),
    "duplicate yaml field": (
        _single(
            "secrets", f"- aescbc: {{keys: [{{name: k, secret: {AES16}, secret: {AES16_B}}}]}}"
        ),
        'strict decoding error: duplicate field "secret"',
    ),
    "not a mapping": ("- just\n- a list\n", "one EncryptionConfiguration object"),
    "empty file": ("   \n", "is empty"),
}


@pytest.mark.parametrize("case", sorted(BAD_CONFIGS))
def test_bad_config_is_refused_with_field_path_and_no_secret(tmp_path, case):
    text, expected = BAD_CONFIGS[case]
    with pytest.raises(EncryptionConfigError) as caught:
        load_encryption_config(write(tmp_path, text))
    message = str(caught.value)
    assert expected in message
    for secret in (AES16, AES16_B, BOX32, SHORT8, "not*base64!"):
        assert secret not in message


def test_all_problems_are_reported_at_once(tmp_path):
    text = _single("Secrets", f"- aescbc: {{keys: [{{name: '', secret: '{SHORT8}'}}]}}")
    with pytest.raises(EncryptionConfigError) as caught:
        load_encryption_config(write(tmp_path, text))
    assert len(caught.value.problems) == 3


def test_invalid_yaml_error_does_not_quote_the_file(tmp_path):
    unterminated = f"[{{aescbc: {{keys: [{{name: k, secret: {AES16}\n"
    text = f"{HEADER}resources:\n- resources: [secrets]\n  providers: {unterminated}"
    with pytest.raises(EncryptionConfigError, match=r"not valid YAML at line \d+") as caught:
        load_encryption_config(write(tmp_path, text))
    assert AES16 not in str(caught.value)
    assert caught.value.__cause__ is None and caught.value.__suppress_context__


@pytest.mark.parametrize("mode", [0o644, 0o604, 0o660, 0o606, 0o602])
def test_file_open_to_other_users_is_refused(tmp_path, mode):
    path = write(tmp_path, UPSTREAM_EXAMPLE, mode=mode)
    with pytest.raises(EncryptionConfigError, match=f"has mode {mode:04o}.*chmod 600"):
        load_encryption_config(path)


@pytest.mark.parametrize("mode", [0o600, 0o400, 0o640])
def test_owner_only_or_group_readable_file_is_accepted(tmp_path, mode):
    assert load_encryption_config(write(tmp_path, UPSTREAM_EXAMPLE, mode=mode)).rules


def test_missing_file_and_directory_are_refused(tmp_path):
    with pytest.raises(
        EncryptionConfigError, match="error reading encryption provider configuration file"
    ):
        load_encryption_config(tmp_path / "absent.yaml")
    with pytest.raises(EncryptionConfigError, match="is not a regular file"):
        load_encryption_config(tmp_path)


# --- the default configuration -------------------------------------------------------------


def fixed_clock():
    return datetime(2025, 3, 4, 5, 6, 7, tzinfo=UTC)


def test_generated_default_encrypts_secrets_with_secretbox_and_reads_old_plaintext(tmp_path):
    path = tmp_path / "enc.yaml"
    config = generate_default_config(path, clock=fixed_clock)

    assert stat.S_IMODE(os.stat(path).st_mode) == 0o600
    document = yaml.safe_load(path.read_text())
    assert document["apiVersion"] == "apiserver.config.k8s.io/v1"
    assert document["kind"] == "EncryptionConfiguration"
    [entry] = document["resources"]
    assert entry["resources"] == ["secrets"]
    [secretbox, identity] = entry["providers"]
    assert identity == {"identity": {}}
    [key] = secretbox["secretbox"]["keys"]
    assert key["name"] == "key-20250304T050607Z"
    assert len(base64.b64decode(key["secret"])) == 32

    transformer = config.transformer_for("secrets")
    assert transformer.to_storage(PLAINTEXT, CONTEXT).startswith(
        b"k8s:enc:secretbox:v1:key-20250304T050607Z:"
    )
    assert transformer.from_storage(PLAINTEXT, CONTEXT) == (PLAINTEXT, True)
    assert [name for name in os.listdir(tmp_path)] == ["enc.yaml"]


def test_generated_keys_are_random(tmp_path):
    generate_default_config(tmp_path / "a.yaml")
    generate_default_config(tmp_path / "b.yaml")
    secret = [
        yaml.safe_load((tmp_path / n).read_text())["resources"][0]["providers"][0]
        for n in ("a.yaml", "b.yaml")
    ]
    assert secret[0] != secret[1]


def test_generate_refuses_to_overwrite_existing_keys(tmp_path):
    path = write(tmp_path, UPSTREAM_EXAMPLE)
    with pytest.raises(EncryptionConfigError, match="already exists"):
        generate_default_config(path)
    assert Path(path).read_text() == UPSTREAM_EXAMPLE


def test_config_decrypt_error_names_key_not_secret(example):
    stored = b"k8s:enc:aescbc:v1:key9:" + bytes(32)
    with pytest.raises(DecryptionError) as caught:
        example.transformer_for("secrets").from_storage(stored, CONTEXT)
    assert 'no key named "key9" for provider aescbc' in str(caught.value)
