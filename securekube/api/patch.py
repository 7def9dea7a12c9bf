"""The three PATCH formats of the Kubernetes API.

- JSON merge patch (RFC 7386): `application/merge-patch+json`.
- JSON patch (RFC 6902): `application/json-patch+json`.
- Strategic merge patch: `application/strategic-merge-patch+json`, the one `kubectl apply` and
  `kubectl label/annotate/patch` send for built-in kinds. Lists whose Go type declares a
  `patchMergeKey` are merged element by element on that key; other lists are replaced. We keep
  the merge keys of the built-in kinds we serve in one table below (by field name, which is
  unambiguous for those kinds).

Every function returns a new object and leaves its inputs untouched; a malformed patch raises
a 400/422 ApiError before anything is stored.
"""
from __future__ import annotations

import copy
import re
from typing import Any

from securekube.api.errors import ApiError, bad_request

# field name -> the patchMergeKey upstream declares for it (core/v1 and meta/v1 types).
MERGE_KEYS: dict[str, str] = {
    "containers": "name",
    "initContainers": "name",
    "ephemeralContainers": "name",
    "volumes": "name",
    "imagePullSecrets": "name",
    "env": "name",
    "ports": "containerPort",
    "volumeMounts": "mountPath",
    "volumeDevices": "devicePath",
    "conditions": "type",
    "addresses": "type",
    "ownerReferences": "uid",
    "hostAliases": "ip",
}
# Primitive lists with patchStrategy "merge" (union rather than replace).
MERGED_PRIMITIVE_LISTS = frozenset({"finalizers"})


def json_merge_patch(target: Any, patch: Any) -> Any:
    """Applies an RFC 7386 merge patch."""
    if not isinstance(patch, dict):
        return copy.deepcopy(patch)
    result = copy.deepcopy(target) if isinstance(target, dict) else {}
    for key, value in patch.items():
        if value is None:
            result.pop(key, None)
        else:
            result[key] = json_merge_patch(result.get(key), value)
    return result


def _pointer(path: Any) -> list[str]:
    if not isinstance(path, str):
        raise bad_request(f"json patch path must be a string, not {type(path).__name__}")
    if path == "":
        return []
    if not path.startswith("/"):
        raise bad_request(f"json patch path {path!r} must start with '/'")
    return [p.replace("~1", "/").replace("~0", "~") for p in path[1:].split("/")]


def _container(doc: Any, tokens: list[str], path: str) -> Any:
    node = doc
    for tok in tokens:
        if isinstance(node, dict) and tok in node:
            node = node[tok]
        elif isinstance(node, list) and _is_array_index(tok) and int(tok) < len(node):
            node = node[int(tok)]
        else:
            raise ApiError(422, "Invalid", f"the server rejected our request due to an error in our request: json patch path {path!r} does not exist")
    return node


def _is_array_index(tok: str) -> bool:
    # ASCII digits only: str.isdigit() also accepts e.g. "²", which int() then refuses.
    return re.fullmatch(r"[0-9]+", tok) is not None


def _index(node: list, tok: str, path: str, allow_end: bool) -> int:
    if tok == "-" and allow_end:
        return len(node)
    if not _is_array_index(tok) or int(tok) > len(node) - (0 if allow_end else 1):
        raise ApiError(422, "Invalid", f"json patch index {tok!r} out of range at {path!r}")
    return int(tok)


def _get(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    return copy.deepcopy(_container(doc, tokens, path))


def _remove(doc: Any, path: str) -> Any:
    tokens = _pointer(path)
    if not tokens:
        raise bad_request("json patch cannot remove the whole document")
    parent = _container(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if last not in parent:
            raise ApiError(422, "Invalid", f"json patch: cannot remove {path!r}: it does not exist")
        return parent.pop(last)
    if isinstance(parent, list):
        return parent.pop(_index(parent, last, path, allow_end=False))
    raise ApiError(422, "Invalid", f"json patch: cannot remove {path!r}")


def _add(doc: Any, path: str, value: Any, replace: bool = False) -> Any:
    tokens = _pointer(path)
    if not tokens:
        return copy.deepcopy(value)
    parent = _container(doc, tokens[:-1], path)
    last = tokens[-1]
    if isinstance(parent, dict):
        if replace and last not in parent:
            raise ApiError(422, "Invalid", f"json patch: cannot replace {path!r}: it does not exist")
        parent[last] = copy.deepcopy(value)
    elif isinstance(parent, list):
        if replace:
            parent[_index(parent, last, path, allow_end=False)] = copy.deepcopy(value)
        else:
            parent.insert(_index(parent, last, path, allow_end=True), copy.deepcopy(value))
    else:
        raise ApiError(422, "Invalid", f"json patch: cannot add at {path!r}")
    return doc


def json_patch(target: Any, operations: Any) -> Any:
    """Applies an RFC 6902 JSON patch; a failed `test` or a bad path is a 422 and changes nothing."""
    if not isinstance(operations, list):
        raise bad_request("json patch must be a JSON array of operations")
    doc = copy.deepcopy(target)
    for op in operations:
        if not isinstance(op, dict) or "op" not in op or "path" not in op:
            raise bad_request("each json patch operation needs 'op' and 'path'")
        kind, path = op["op"], op["path"]
        if kind in ("add", "replace", "test") and "value" not in op:
            raise bad_request(f"json patch operation {kind!r} needs a 'value'")
        if kind in ("move", "copy") and "from" not in op:
            raise bad_request(f"json patch operation {kind!r} needs a 'from'")
        if kind == "add":
            doc = _add(doc, path, op["value"])
        elif kind == "replace":
            doc = _add(doc, path, op["value"], replace=True)
        elif kind == "remove":
            _remove(doc, path)
        elif kind == "move":
            doc = _add(doc, path, _remove(doc, op["from"]))
        elif kind == "copy":
            doc = _add(doc, path, _get(doc, op["from"]))
        elif kind == "test":
            if not _json_equal(_get(doc, path), op["value"]):
                raise ApiError(422, "Invalid", f"json patch test operation failed at {path!r}")
        else:
            raise bad_request(f"unknown json patch operation {kind!r}")
    return doc


def _json_equal(a: Any, b: Any) -> bool:
    """Equality as JSON defines it (RFC 6902 4.6): unlike Python's ==, true is not 1 and false is not 0."""
    if isinstance(a, bool) or isinstance(b, bool):
        return isinstance(a, bool) and isinstance(b, bool) and a == b
    if isinstance(a, dict) and isinstance(b, dict):
        return a.keys() == b.keys() and all(_json_equal(a[k], b[k]) for k in a)
    if isinstance(a, list) and isinstance(b, list):
        return len(a) == len(b) and all(_json_equal(x, y) for x, y in zip(a, b))
    if isinstance(a, (dict, list)) or isinstance(b, (dict, list)):
        return False
    return a == b


def strategic_merge_patch(target: Any, patch: Any) -> Any:
    """Applies a strategic merge patch with the merge keys of the built-in kinds."""
    if not isinstance(patch, dict):
        raise bad_request("strategic merge patch must be a JSON object")
    return _merge_map(target if isinstance(target, dict) else {}, patch)


def _merge_map(original: dict, patch: dict) -> dict:
    directive = patch.get("$patch")
    if directive == "replace":
        return {k: copy.deepcopy(v) for k, v in patch.items() if k != "$patch"}
    if directive == "delete":
        return {}
    if directive is not None:
        # Upstream refuses a directive it does not know rather than guessing what was meant.
        raise bad_request(f"unknown patch type: {directive!r} in map")
    result = copy.deepcopy(original)
    retain = patch.get("$retainKeys")
    for key, value in patch.items():
        if key in ("$patch", "$retainKeys") or key.startswith("$setElementOrder/"):
            continue  # element order is cosmetic for us; retainKeys handled below
        if key.startswith("$deleteFromPrimitiveList/"):
            field = key.split("/", 1)[1]
            if isinstance(result.get(field), list):
                result[field] = [v for v in result[field] if v not in (value or [])]
            continue
        if value is None:
            result.pop(key, None)
        elif isinstance(value, dict):
            current = result.get(key)
            result[key] = _merge_map(current if isinstance(current, dict) else {}, value)
        elif isinstance(value, list):
            result[key] = _merge_list(key, result.get(key), value)
        else:
            result[key] = copy.deepcopy(value)
    if isinstance(retain, list):
        result = {k: v for k, v in result.items() if k in retain}
    return result


def _merge_list(field: str, original: Any, patch: list) -> list:
    original = original if isinstance(original, list) else []
    if field in MERGED_PRIMITIVE_LISTS:
        return original + [v for v in patch if v not in original]
    key = MERGE_KEYS.get(field)
    if key is None or not all(isinstance(v, dict) for v in patch):
        return [v for v in copy.deepcopy(patch) if not (isinstance(v, dict) and v.get("$patch"))]
    if any(v.get("$patch") == "replace" for v in patch):
        return [copy.deepcopy(v) for v in patch if v.get("$patch") != "replace"]
    result = copy.deepcopy(original)
    for item in patch:
        if key not in item:
            raise bad_request(f"strategic merge patch: an element of {field!r} lacks its merge key {key!r}")
        pos = next((i for i, cur in enumerate(result) if isinstance(cur, dict) and cur.get(key) == item[key]), None)
        if item.get("$patch") == "delete":
            if pos is not None:
                result.pop(pos)
        elif pos is None:
            result.append(_merge_map({}, item))
        else:
            result[pos] = _merge_map(result[pos], item)
    return result
