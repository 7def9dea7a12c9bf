"""core/v1 Secret: base64 data, stringData folded into data on write, type-specific required keys."""
from __future__ import annotations

import base64
import binascii

from securekube.api import validation as v
from securekube.api.errors import Cause
from securekube.api.fieldcheck import field_paths
from securekube.api.schemas.core import SECRET
from securekube.registry.kinds.configmaps import MAX_SIZE, validate_data_keys, validate_immutable
from securekube.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, ResourceType, Strategy

REDACTED = '"<secret contents redacted>"'
# type -> keys upstream requires in data
REQUIRED_KEYS = {
    "kubernetes.io/tls": ("tls.crt", "tls.key"),
    "kubernetes.io/dockerconfigjson": (".dockerconfigjson",),
    "kubernetes.io/dockercfg": (".dockercfg",),
    "kubernetes.io/ssh-auth": ("ssh-privatekey",),
}


class SecretStrategy(Strategy):
    type = ResourceType("", "v1", "Secret", "secrets", "secret", True)
    schema = field_paths(SECRET)
    columns = (NAME_COLUMN,
               Column("Type", "string", lambda o, now: o.get("type", "")),
               Column("Data", "integer", lambda o, now: len(o.get("data") or {})),
               AGE_COLUMN)
    extra_field_selectors = {"type": lambda o: o.get("type", "")}

    def default(self, obj: dict) -> None:
        obj.setdefault("type", "Opaque")
        string_data = obj.get("stringData")
        if isinstance(string_data, dict) and isinstance(obj.get("data", {}), (dict, type(None))):
            obj.pop("stringData")
            data = obj.setdefault("data", {}) or {}
            obj["data"] = data
            for key, value in string_data.items():
                if isinstance(value, str):
                    data[key] = base64.b64encode(value.encode()).decode()
                else:
                    # Put it back so validation reports it; never guess a conversion.
                    obj.setdefault("stringData", {})[key] = value

    def validate(self, obj: dict) -> list[Cause]:
        data = obj.get("data")
        # Type errors here must never quote the value: it is a secret.
        for field in ("data", "stringData"):
            value = obj.get(field)
            if value is not None and not isinstance(value, dict):
                return [Cause("FieldValueTypeInvalid", f"Invalid value: {REDACTED}: must be an object", field)]
        bad = [k for k, val in (obj.get("stringData") or {}).items() if not isinstance(val, str)]
        if bad:
            return [Cause("FieldValueTypeInvalid", f"Invalid value: {REDACTED}: must be a string", f"stringData[{k}]")
                    for k in bad]
        causes = validate_data_keys("data", data)
        size = 0
        for key, value in (data or {}).items() if isinstance(data, dict) else ():
            try:
                size += len(base64.b64decode(value, validate=True))
            except (binascii.Error, TypeError, ValueError):
                # Never echo the value: it is a secret.
                causes.append(Cause("FieldValueInvalid", f"Invalid value: {REDACTED}: must be base64-encoded", f"data[{key}]"))
        if size > MAX_SIZE:
            causes.append(Cause("FieldValueTooLong", f"Too long: must have at most {MAX_SIZE} bytes", "data"))
        causes += v.typed("type", obj.get("type"), str, "a string")
        for key in REQUIRED_KEYS.get(obj.get("type", ""), ()):
            if key not in (data or {}):
                causes.append(v.required(f"data[{key}]"))
        return causes

    def validate_update(self, new: dict, old: dict) -> list[Cause]:
        causes = validate_immutable(new, old, ("data",))
        if new.get("type") != old.get("type"):
            causes.append(v.Cause("FieldValueInvalid", f"Invalid value: \"{new.get('type')}\": field is immutable", "type"))
        return causes
