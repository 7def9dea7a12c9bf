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
_DNS1123_LABEL_MSG = ("a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', "
                      "and must start and end with an alphanumeric character")
_DNS1123_SUBDOMAIN_MSG = ("a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, "
                          "'-' or '.', and must start and end with an alphanumeric character")
_QUALIFIED_NAME_MSG = ("must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an "
                       "alphanumeric character")
_LABEL_VALUE_MSG = ("a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', "
                    "and must start and end with an alphanumeric character")


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


def regex_error(message: str, regex: str, *examples: str) -> str:
    """Upstream's RegexError text: the rule, examples (each followed by ", ", joined by " or "), the regex."""
    if not examples:
        return f"{message} (regex used for validation is '{regex}')"
    shown = " or ".join(f"'{e}', " for e in examples)
    return f"{message} (e.g. {shown}regex used for validation is '{regex}')"


def max_len_error(limit: int, unit: str = "characters") -> str:
    return f"must be no more than {limit} {unit}"


def dns1123_subdomain_errors(value: str, unit: str = "characters") -> list[str]:
    """Upstream's IsDNS1123Subdomain messages (object names say characters, label-key prefixes bytes)."""
    errors = []
    if len(value) > 253:
        errors.append(max_len_error(253, unit))
    if not re.fullmatch(DNS1123_SUBDOMAIN, value):
        errors.append(regex_error(_DNS1123_SUBDOMAIN_MSG, DNS1123_SUBDOMAIN, "example.com"))
    return errors


def dns1123_subdomain(field: str, value: Any) -> list[Cause]:
    if not isinstance(value, str):
        return [type_error(field, value, "a string")]
    return [invalid(field, value, msg) for msg in dns1123_subdomain_errors(value)]


def dns1123_label(field: str, value: Any) -> list[Cause]:
    if not isinstance(value, str):
        return [type_error(field, value, "a string")]
    causes = []
    if len(value) > 63:
        causes.append(invalid(field, value, max_len_error(63)))
    if not re.fullmatch(DNS1123_LABEL, value):
        # A valid subdomain that is not a valid label (length was checked above) can only have dots.
        detail = ("must not contain dots" if re.fullmatch(DNS1123_SUBDOMAIN, value)
                  else regex_error(_DNS1123_LABEL_MSG, DNS1123_LABEL, "my-name", "123-abc"))
        causes.append(invalid(field, value, detail))
    return causes


def label_key_errors(key: str) -> list[str]:
    """Upstream's IsLabelKey (a.k.a. IsQualifiedName) messages: optional DNS subdomain prefix, '/', name."""
    parts = key.split("/")
    errors: list[str] = []
    if len(parts) > 2:
        return ["a valid label key " + regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME, "MyName", "my.name", "123-abc")
                + " with an optional DNS subdomain prefix and '/' (e.g. 'example.com/MyName')"]
    name = parts[-1]
    if len(parts) == 2:
        prefix = parts[0]
        if not prefix:
            errors.append("prefix part must be non-empty")
        else:
            errors += ["prefix part " + msg for msg in dns1123_subdomain_errors(prefix, "bytes")]
    if not name:
        errors.append("name part must be non-empty")
    elif len(name) > 63:
        errors.append("name part " + max_len_error(63, "bytes"))
    if not re.fullmatch(_QUALIFIED_NAME, name):
        errors.append("name part " + regex_error(_QUALIFIED_NAME_MSG, _QUALIFIED_NAME, "MyName", "my.name", "123-abc"))
    return errors


def label_value_errors(value: str) -> list[str]:
    """Upstream's IsLabelValue messages."""
    errors = []
    if len(value) > 63:
        errors.append(max_len_error(63, "bytes"))
    if not re.fullmatch(_LABEL_VALUE, value):
        errors.append(regex_error(_LABEL_VALUE_MSG, _LABEL_VALUE, "MyValue", "my_value", "12345"))
    return errors


def qualified_name(field: str, key: Any) -> list[Cause]:
    """A label or annotation key: an optional DNS subdomain prefix, '/', and a name of at most 63 characters."""
    if not isinstance(key, str):
        return [type_error(field, key, "a string")]
    return [invalid(field, key, msg) for msg in label_key_errors(key)]


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
        if isinstance(v, str):
            causes += [invalid(field, v, msg) for msg in label_value_errors(v)]
    return causes


def too_long(field: str, limit: int) -> Cause:
    """Upstream's field.TooLong: the value itself is never echoed."""
    return Cause("FieldValueTooLong", f"Too long: may not be more than {limit} bytes", field)


def annotations(field: str, value: Any) -> list[Cause]:
    causes = string_map(field, value)
    if isinstance(value, dict):
        for k in value:
            if isinstance(k, str):
                # Upstream's rule: a label key, except that case does not matter (checked lowercased).
                causes += [invalid(field, k, msg) for msg in label_key_errors(k.lower())]
            else:
                causes.append(type_error(field, k, "a string"))
        size = sum(len(k) + len(v) for k, v in value.items() if isinstance(k, str) and isinstance(v, str))
        if size > TOTAL_ANNOTATION_SIZE_LIMIT:
            causes.append(too_long(field, TOTAL_ANNOTATION_SIZE_LIMIT))
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
