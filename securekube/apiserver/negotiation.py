"""Content negotiation: what the client sent (JSON or YAML, patch types) and what it accepts (object or Table)."""
from __future__ import annotations

import datetime as dt
import json
from typing import Any

import yaml

from securekube.api import errors, protobuf
from securekube.registry.resource import Strategy

PATCH_TYPES = {
    "application/json-patch+json": "json",
    "application/merge-patch+json": "merge",
    "application/strategic-merge-patch+json": "strategic",
    "application/apply-patch+yaml": "apply",
}


def media_type(content_type: str | None) -> str:
    return (content_type or "").split(";", 1)[0].strip().lower()


def decode_body(body: bytes, content_type: str | None) -> Any:
    """Parses a request body; malformed input is a 400 that names the problem, never echoing values."""
    kind = media_type(content_type)
    if not body:
        raise errors.bad_request("the request body is empty")
    try:
        if kind in ("application/yaml", "application/apply-patch+yaml"):
            # safe_load: no object construction, anchors allowed as in upstream's YAML.
            docs = list(yaml.safe_load_all(body))
            if len(docs) != 1:
                raise errors.bad_request("the request body must hold exactly one YAML document")
            return docs[0]
        if kind in ("", "application/json") or kind in PATCH_TYPES:
            return json.loads(body)
        if kind == protobuf.CONTENT_TYPE:
            # What client-go's typed clients (kubectl create <kind>) send for built-in kinds.
            return protobuf.decode(body)
    except protobuf.ProtobufDecodeError as exc:
        raise errors.bad_request(f"the request body is not a valid Kubernetes protobuf object: {exc}") from None
    except (ValueError, yaml.YAMLError) as exc:
        line = getattr(exc, "lineno", None) or getattr(getattr(exc, "problem_mark", None), "line", None)
        where = f" (line {line})" if line else ""
        raise errors.bad_request(f"the request body is not valid {'YAML' if 'yaml' in kind else 'JSON'}{where}") from None
    raise errors.unsupported_media_type(kind)


def wants_table(accept: str | None) -> bool:
    """True when the client's first acceptable type is a meta.k8s.io Table (what `kubectl get` asks for)."""
    for part in (accept or "").split(","):
        params = dict(p.strip().split("=", 1) for p in part.split(";")[1:] if "=" in p)
        if params.get("as") == "Table" and params.get("g") == "meta.k8s.io":
            return True
        if media_type(part) in ("application/json", "*/*", "application/*"):
            return False
    return False


def check_acceptable(accept: str | None) -> None:
    """Refuses clients that accept nothing we can write (we speak JSON only)."""
    if not accept:
        return
    for part in accept.split(","):
        if media_type(part) in ("application/json", "*/*", "application/*", "application/yaml"):
            return
    raise errors.not_acceptable("only the following media types are accepted: application/json, application/yaml")


def to_table(strategy: Strategy, objects: list[dict], list_meta: dict, include_object: str,
             with_headers: bool = True) -> dict:
    """A meta.k8s.io/v1 Table with the kind's columns; rows carry the object as asked (Metadata by default)."""
    now = dt.datetime.now(dt.timezone.utc)
    columns = [{"name": c.name, "type": c.type, "format": c.format, "description": c.description,
                "priority": c.priority} for c in strategy.columns]
    rows = []
    for obj in objects:
        row: dict[str, Any] = {"cells": [c.render(obj, now) for c in strategy.columns]}
        if include_object == "Object":
            row["object"] = obj
        elif include_object != "None":
            row["object"] = {"kind": "PartialObjectMetadata", "apiVersion": "meta.k8s.io/v1",
                             "metadata": obj.get("metadata", {})}
        rows.append(row)
    return {"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": list_meta,
            "columnDefinitions": columns if with_headers else [], "rows": rows}
