"""Field validation with upstream's messages (apimachinery's validation package, by behaviour)."""
from __future__ import annotations

import json
import re
from typing import Any

from securekube.api.errors import Cause

DNS1123_LABEL = r"[a-z0-9]([-a-z0-9]*[a-z0-9])?"
DNS1123_SUBDOMAIN = rf"{DNS1123_LABEL}(\.{DNS1123_LABEL})*"
_QUALIFIED_NAME = r"([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]"
_LABEL_VALUE = r"(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?"
TOTAL_ANNOTATION_SIZE_LIMIT = 256 * 1024


def required(field: str, detail: str = "") -> Cause:
    return Cause("FieldValueRequired", f"Required value{': ' + detail if detail else ''}", field)


def invalid(field: str, value: Any, detail: str) -> Cause:
    return Cause("FieldValueInvalid", f"Invalid value: {json.dumps(value)}: {detail}", field)


def unsupported(field: str, value: Any, allowed: list[str]) -> Cause:
    options = ", ".join(f'"{a}"' for a in allowed)
    return Cause("FieldValueNotSupported", f"Unsupported value: {json.dumps(value)}: supported values: {options}", field)


def forbidden(field: str, detail: str) -> Cause:
    return Cause("FieldValueForbidden", f"Forbidden: {detail}", field)


def type_error(field: str, value: Any, expected: str) -> Cause:
    return Cause("FieldValueTypeInvalid", f"Invalid value: {json.dumps(value)}: must be {expected}", field)


def dns1123_subdomain(field: str, value: Any) -> list[Cause]:
    if not isinstance(value, str):
        return [type_error(field, value, "a string")]
    causes = []
    if len(value) > 253:
        causes.append(invalid(field, value, "must be no more than 253 characters"))
    if not re.fullmatch(DNS1123_SUBDOMAIN, value):
        causes.append(invalid(field, value,
                              "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                              "'-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', "
                              f"regex used for validation is '{DNS1123_SUBDOMAIN}')"))
    return causes


def dns1123_label(field: str, value: Any) -> list[Cause]:
    if not isinstance(value, str):
        return [type_error(field, value, "a string")]
    causes = []
    if len(value) > 63:
        causes.append(invalid(field, value, "must be no more than 63 characters"))
    if not re.fullmatch(DNS1123_LABEL, value):
        causes.append(invalid(field, value,
                              "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                              "and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', "
                              f"regex used for validation is '{DNS1123_LABEL}')"))
    return causes


def qualified_name(field: str, key: Any) -> list[Cause]:
    """A label or annotation key: an optional DNS subdomain prefix, '/', and a name of at most 63 characters."""
    if not isinstance(key, str):
        return [type_error(field, key, "a string")]
    prefix, _, name = key.rpartition("/")
    causes = []
    if "/" in key and (not prefix or not re.fullmatch(DNS1123_SUBDOMAIN, prefix) or len(prefix) > 253):
        causes.append(invalid(field, key, "prefix part must be a lowercase RFC 1123 subdomain"))
    if not name or len(name) > 63 or not re.fullmatch(_QUALIFIED_NAME, name):
        causes.append(invalid(field, key,
                              "name part must consist of alphanumeric characters, '-', '_' or '.', and must start and "
                              "end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex "
                              f"used for validation is '{_QUALIFIED_NAME}') with at most 63 characters"))
    return causes


def string_map(field: str, value: Any) -> list[Cause]:
    if value is None:
        return []
    if not isinstance(value, dict):
        return [type_error(field, value, "an object of strings")]
    return [type_error(f"{field}[{k}]", v, "a string") for k, v in value.items() if not isinstance(v, str)]


def labels(field: str, value: Any) -> list[Cause]:
    causes = string_map(field, value)
    for k, v in (value or {}).items() if isinstance(value, dict) else ():
        causes += qualified_name(field, k)
        if isinstance(v, str) and (len(v) > 63 or not re.fullmatch(_LABEL_VALUE, v)):
            causes.append(invalid(field, v,
                                  "a valid label must be an empty string or consist of alphanumeric characters, '-', "
                                  "'_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  "
                                  f"or 'my_value',  or '12345', regex used for validation is '{_LABEL_VALUE}') with at most 63 characters"))
    return causes


def annotations(field: str, value: Any) -> list[Cause]:
    causes = string_map(field, value)
    if isinstance(value, dict):
        for k in value:
            causes += qualified_name(field, k)
        size = sum(len(k) + len(v) for k, v in value.items() if isinstance(v, str))
        if size > TOTAL_ANNOTATION_SIZE_LIMIT:
            causes.append(Cause("FieldValueTooLong", f"Too long: must have at most {TOTAL_ANNOTATION_SIZE_LIMIT} bytes", field))
    return causes


def typed(field: str, value: Any, expected: type | tuple[type, ...], name: str) -> list[Cause]:
    """A type check for an optional field (None passes)."""
    if value is None or (isinstance(value, expected) and not (expected is int and isinstance(value, bool))):
        return []
    return [type_error(field, value, name)]


def path_segment_name(field: str, value: Any) -> list[Cause]:
    """Names that need only be usable in a URL path (upstream's rule for RBAC objects)."""
    if not isinstance(value, str):
        return [type_error(field, value, "a string")]
    if value in (".", ".."):
        return [invalid(field, value, f"may not be '{value}'")]
    bad = [c for c in ("/", "%") if c in value]
    return [invalid(field, value, f"may not contain '{c}'") for c in bad]
