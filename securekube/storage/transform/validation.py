"""Validation of a decoded EncryptionConfiguration document into frozen rules.

Follows upstream's decoder (strict: unknown fields are errors) and
`ValidateEncryptionConfiguration`, reusing its messages and field paths so a user recognises
them. Every problem is collected before failing, and no message ever contains a secret: values
of `secret` fields are shown as "REDACTED", as upstream does.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from securekube.storage.transform.model import (
    API_VERSION,
    IDENTITY,
    KEY_SIZES,
    KIND,
    KMS,
    PROVIDER_FIELDS,
    EncryptionConfigError,
    KeySpec,
    ProviderSpec,
    ResourceRule,
)
from securekube.storage.transform.resources import (
    GroupResource,
    list_problems,
    masking_rule,
    name_problem,
    parse_group_resource,
)

_TOP_FIELDS = ("apiVersion", "kind", "resources")
_RULE_FIELDS = ("resources", "providers")
_KEYED_FIELDS = ("keys",)
_KEY_FIELDS = ("name", "secret")


def parse_document(document: Any, source: str) -> tuple[ResourceRule, ...]:
    """The rules of a decoded configuration; EncryptionConfigError listing every problem.

    `source` names the file in the error message.
    """
    problems: list[str] = []
    rules = _parse_top(document, problems)
    if not problems:
        _check_masking(rules, problems)
    if problems:
        summary = "; ".join(problems)
        raise EncryptionConfigError(
            f"invalid encryption provider configuration {source}: {summary}", tuple(problems)
        )
    return rules


def _parse_top(document: Any, problems: list[str]) -> tuple[ResourceRule, ...]:
    if not isinstance(document, dict):
        problems.append("the file must contain one EncryptionConfiguration object")
        return ()
    _unknown_fields(document, _TOP_FIELDS, "", problems)
    if document.get("apiVersion") != API_VERSION or document.get("kind") != KIND:
        problems.append(
            f'apiVersion must be "{API_VERSION}" and kind "{KIND}" '
            f"(got apiVersion {document.get('apiVersion')!r}, kind {document.get('kind')!r})"
        )
    entries = document.get("resources")
    if entries is None or entries == []:
        problems.append("resources: Required value: at least one resources is required")
        return ()
    if not isinstance(entries, list):
        problems.append("resources: must be a list")
        return ()
    return tuple(
        rule
        for index, entry in enumerate(entries)
        if (rule := _parse_rule(entry, f"resources[{index}]", problems)) is not None
    )


def _parse_rule(entry: Any, path: str, problems: list[str]) -> ResourceRule | None:
    if not isinstance(entry, dict):
        problems.append(f"{path}: must be an object with resources and providers")
        return None
    _unknown_fields(entry, _RULE_FIELDS, path, problems)
    resources = _parse_resource_names(entry.get("resources"), f"{path}.resources", problems)
    providers_path = f"{path}.providers"
    raw_providers = entry.get("providers")
    providers: list[ProviderSpec] = []
    if raw_providers is None or raw_providers == []:
        problems.append(
            f"{providers_path}: Required value: at least one {providers_path} is required"
        )
    elif not isinstance(raw_providers, list):
        problems.append(f"{providers_path}: must be a list")
    else:
        for index, raw in enumerate(raw_providers):
            provider = _parse_provider(raw, f"{providers_path}[{index}]", problems)
            if provider is not None:
                providers.append(provider)
    return ResourceRule(resources=resources, providers=tuple(providers))


def _parse_resource_names(raw: Any, path: str, problems: list[str]) -> tuple[str, ...]:
    if raw is None or raw == []:
        problems.append(f"{path}: Required value: at least one {path} is required")
        return ()
    if not isinstance(raw, list) or not all(isinstance(item, str) for item in raw):
        problems.append(f"{path}: must be a list of strings")
        return ()
    for overlap in list_problems(raw):
        problems.append(f"{path}: Invalid value: {_show_list(raw)}: {overlap}")
    for index, text in enumerate(raw):
        problem = name_problem(text)
        if problem is not None:
            problems.append(f'{path}[{index}]: Invalid value: "{text}": {problem}')
    return tuple(raw)


def _parse_provider(raw: Any, path: str, problems: list[str]) -> ProviderSpec | None:
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be an object naming one provider")
        return None
    unknown = [name for name in raw if name not in PROVIDER_FIELDS]
    for name in unknown:
        problems.append(f'strict decoding error: unknown field "{path}.{name}"')
    # Like upstream, a provider field set to null does not count as a provider.
    present = [name for name in PROVIDER_FIELDS if raw.get(name) is not None]
    if not present:
        if not unknown:
            problems.append(
                f"{path}: Invalid value: {{}}: provider does not contain any of the expected "
                "providers: KMS, AESGCM, AESCBC, Secretbox, Identity"
            )
        return None
    if len(present) > 1:
        problems.append(
            f"{path}: Invalid value: {_show_list(present)}: more than one provider specified "
            "in a single element, should split into different list elements"
        )
        return None
    kind = present[0]
    body = raw[kind]
    if kind == KMS:
        problems.append(
            f"{path}.kms: kms providers are not supported by securekube yet; "
            "use aescbc, aesgcm or secretbox"
        )
        return None
    if not isinstance(body, dict):
        problems.append(f"{path}.{kind}: must be an object")
        return None
    if kind == IDENTITY:
        _unknown_fields(body, (), f"{path}.{kind}", problems)
        return ProviderSpec(type=IDENTITY)
    _unknown_fields(body, _KEYED_FIELDS, f"{path}.{kind}", problems)
    keys = _parse_keys(body.get("keys"), f"{path}.{kind}.keys", KEY_SIZES[kind], problems)
    return ProviderSpec(type=kind, keys=keys)


def _parse_keys(
    raw: Any, path: str, sizes: tuple[int, ...], problems: list[str]
) -> tuple[KeySpec, ...]:
    if raw is None or raw == []:
        problems.append(f"{path}: Required value: at least one keys is required")
        return ()
    if not isinstance(raw, list):
        problems.append(f"{path}: must be a list")
        return ()
    keys = []
    for index, item in enumerate(raw):
        key = _parse_key(item, f"{path}[{index}]", sizes, problems)
        if key is not None:
            keys.append(key)
    return tuple(keys)


def _parse_key(raw: Any, path: str, sizes: tuple[int, ...], problems: list[str]) -> KeySpec | None:
    if not isinstance(raw, dict):
        problems.append(f"{path}: must be an object with name and secret")
        return None
    _unknown_fields(raw, _KEY_FIELDS, path, problems)
    name, secret_text = raw.get("name"), raw.get("secret")
    usable = True
    if name is None or name == "":
        problems.append(f"{path}.name: Required value: name is a mandatory field for a key")
        usable = False
    elif not isinstance(name, str):
        problems.append(f"{path}.name: must be a string")
        usable = False
    if secret_text is None or secret_text == "":
        problems.append(f"{path}.secret: Required value: secret is a mandatory field for a key")
        return None
    if not isinstance(secret_text, str):
        problems.append(f'{path}.secret: Invalid value: "REDACTED": must be a string')
        return None
    secret = _decode_secret(secret_text)
    if secret is None:
        problems.append(f'{path}.secret: Invalid value: "REDACTED": secrets must be base64 encoded')
        return None
    if len(secret) not in sizes:
        expected = " ".join(str(size) for size in sizes)
        problems.append(
            f'{path}.secret: Invalid value: "REDACTED": secret is not of the expected length, '
            f"got {len(secret)}, expected one of [{expected}]"
        )
        return None
    if not usable or not isinstance(name, str):
        return None
    return KeySpec(name=name, secret=secret)


def _decode_secret(text: str) -> bytes | None:
    # Go's StdEncoding skips CR and LF but nothing else; keep the same leniency.
    try:
        return base64.b64decode(text.replace("\r", "").replace("\n", ""), validate=True)
    except (binascii.Error, ValueError):
        return None


def _check_masking(rules: tuple[ResourceRule, ...], problems: list[str]) -> None:
    seen: set[GroupResource] = set()
    for rule in rules:
        for text in rule.resources:
            candidate = parse_group_resource(text)
            wildcard = masking_rule(candidate, seen)
            if wildcard is not None:
                problems.append(f'resource "{candidate}" is masked by earlier rule "{wildcard}"')
        seen.update(parse_group_resource(text) for text in rule.resources)


def _unknown_fields(
    raw: dict[Any, Any], allowed: tuple[str, ...], path: str, problems: list[str]
) -> None:
    for name in raw:
        if name not in allowed:
            where = f"{path}.{name}" if path else str(name)
            problems.append(f'strict decoding error: unknown field "{where}"')


def _show_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{item}"' for item in items) + "]"
