"""core/v1 ConfigMap: string data and binary data under valid keys, optionally immutable."""
from __future__ import annotations

import base64
import binascii
import re

from securekube.api import validation as v
from securekube.api.errors import Cause
from securekube.api.fieldcheck import field_paths
from securekube.api.schemas.core import CONFIG_MAP
from securekube.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, ResourceType, Strategy

CONFIG_KEY = r"[-._a-zA-Z0-9]+"
MAX_SIZE = 1024 * 1024


def validate_data_keys(field: str, data: object) -> list[Cause]:
    if data is None:
        return []
    if not isinstance(data, dict):
        return [v.type_error(field, data, "an object")]
    causes = []
    for key in data:
        if len(key) > 253 or not re.fullmatch(CONFIG_KEY, key):
            causes.append(v.invalid(field, key, f"a valid config key must consist of alphanumeric characters, '-', '_' or '.' (e.g. 'key.name',  or 'KEY_NAME',  or 'key-name', regex used for validation is '{CONFIG_KEY}')"))
    return causes


def validate_immutable(new: dict, old: dict, fields: tuple[str, ...]) -> list[Cause]:
    """Once `immutable: true`, data may not change and the flag may not be unset (upstream rule)."""
    if not old.get("immutable"):
        return []
    causes = []
    if not new.get("immutable"):
        causes.append(v.forbidden("immutable", "field is immutable when `immutable` is set"))
    if any(new.get(f) != old.get(f) for f in fields):
        causes.append(v.forbidden("data", "field is immutable when `immutable` is set"))
    return causes


def data_count(obj: dict) -> int:
    return len(obj.get("data") or {}) + len(obj.get("binaryData") or {})


class ConfigMapStrategy(Strategy):
    type = ResourceType("", "v1", "ConfigMap", "configmaps", "configmap", True, ("cm",))
    schema = field_paths(CONFIG_MAP)
    columns = (NAME_COLUMN, Column("Data", "integer", lambda o, now: data_count(o)), AGE_COLUMN)

    def validate(self, obj: dict) -> list[Cause]:
        causes = validate_data_keys("data", obj.get("data")) + validate_data_keys("binaryData", obj.get("binaryData"))
        if causes and any(c.reason == "FieldValueTypeInvalid" for c in causes):
            return causes  # the checks below need objects
        causes += v.string_map("data", obj.get("data"))
        for key, value in (obj.get("binaryData") or {}).items() if isinstance(obj.get("binaryData"), dict) else ():
            try:
                base64.b64decode(value, validate=True)
            except (binascii.Error, TypeError, ValueError):
                causes.append(v.invalid(f"binaryData[{key}]", "<binary>", "must be base64-encoded"))
        overlap = set(obj.get("data") or {}) & set(obj.get("binaryData") or {})
        causes += [v.invalid(f"data[{k}]", k, "duplicate of key present in binaryData") for k in sorted(overlap)]
        size = sum(len(str(x)) for x in (obj.get("data") or {}).values()) + sum(len(str(x)) for x in (obj.get("binaryData") or {}).values())
        if size > MAX_SIZE:
            causes.append(Cause("FieldValueTooLong", f"Too long: must have at most {MAX_SIZE} bytes", ""))
        return causes

    def validate_update(self, new: dict, old: dict) -> list[Cause]:
        return validate_immutable(new, old, ("data", "binaryData"))
