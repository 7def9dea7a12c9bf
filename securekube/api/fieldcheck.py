"""Unknown-field detection for `fieldValidation` (Ignore | Warn | Strict), as upstream names the fields.

A kind's known fields are a map from path to the keys known there (`""` for the top level,
`"spec.containers[]"` for every element of a list), derived from the kind's typed description
(securekube/api/schemas/) by `field_paths`. Paths the map does not list are not checked: the
values of free-key maps (labels, resource lists) and free-form objects (Gatekeeper parameters).
"""
from __future__ import annotations

from typing import Any, Mapping

from securekube.api.errors import bad_request
from securekube.api.schema import Array, Map, Node, Object, walk_objects
from securekube.api.schemas.meta import OBJECT_META


def field_paths(root: Object) -> dict[str, frozenset[str]]:
    """The known-field map of `root`: the keys of every described object, by path from the root."""
    paths: dict[str, frozenset[str]] = {}

    def visit(node: Node, path: str) -> None:
        if isinstance(node, Array):
            visit(node.items, f"{path}[]")
        elif isinstance(node, Map):
            # A map's keys are data, so its values have no path of their own in this format; a described
            # object in there would go unchecked, which must not happen silently.
            if any(not inner.free_form for inner in walk_objects(node.values)):
                raise ValueError(f"{path}: described objects inside a map cannot be checked")
        elif isinstance(node, Object) and not node.free_form:
            paths[path] = frozenset(f.name for f in node.fields)
            for f in node.fields:
                visit(f.type, f"{path}.{f.name}" if path else f.name)

    visit(root, "")
    return paths


OBJECT_META_FIELDS = field_paths(OBJECT_META)[""]
TYPE_META_FIELDS = frozenset({"apiVersion", "kind", "metadata"})
FIELD_VALIDATION = ("Ignore", "Warn", "Strict")


def unknown_fields(obj: Any, schema: Mapping[str, frozenset[str]], path: str = "", shown: str = "") -> list[str]:
    """The paths of keys that `schema` does not know, in document order (list indexes shown, as upstream)."""
    found: list[str] = []
    allowed = schema.get(path)
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key.startswith("$"):
                continue  # strategic-merge-patch directives
            child, child_shown = (f"{path}.{key}", f"{shown}.{key}") if path else (key, key)
            if allowed is not None and key not in allowed:
                found.append(child_shown)
                continue
            found += unknown_fields(value, schema, child, child_shown)
    elif isinstance(obj, list):
        for i, value in enumerate(obj):
            found += unknown_fields(value, schema, f"{path}[]", f"{shown}[{i}]")
    return found


def prune(obj: Any, schema: Mapping[str, frozenset[str]], path: str = "") -> Any:
    """A copy without the unknown keys (upstream drops them when it decodes into its types)."""
    allowed = schema.get(path)
    if isinstance(obj, dict):
        return {k: prune(v, schema, f"{path}.{k}" if path else k) for k, v in obj.items()
                if allowed is None or k in allowed or k.startswith("$")}
    if isinstance(obj, list):
        return [prune(v, schema, f"{path}[]") for v in obj]
    return obj


def check(obj: Any, schema: Mapping[str, frozenset[str]], mode: str) -> tuple[Any, list[str]]:
    """Applies a fieldValidation mode: Strict raises 400; Warn and Ignore drop unknown fields, Warn says which."""
    if mode not in FIELD_VALIDATION:
        raise bad_request(f'fieldValidation: Unsupported value: "{mode}": supported values: "Ignore", "Strict", "Warn"')
    if not schema:
        return obj, []
    unknown = unknown_fields(obj, schema)
    if not unknown:
        return obj, []
    if mode == "Strict":
        raise bad_request("strict decoding error: " + ", ".join(f'unknown field "{u}"' for u in unknown))
    return prune(obj, schema), ([f'unknown field "{u}"' for u in unknown] if mode == "Warn" else [])
