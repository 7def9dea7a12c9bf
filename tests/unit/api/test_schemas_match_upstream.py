"""Every described object has exactly upstream's field names and types.

The official Python client (a test dependency, generated from upstream's OpenAPI) is the
reference: for each object described under an upstream name, its fields must be the client
model's, with the same shape (scalar kind, list, map, object of the same type name). Objects
described free-form on purpose (legacy volume plugins, FieldsV1) are left out.
"""
from __future__ import annotations

import re

import kubernetes.client.models as upstream_models
import pytest

from securekube.api.schema import (BYTES, INT_OR_STRING, MICRO_TIME, QUANTITY, TIME, Array, Map, Node, Object,
                                   Scalar, walk_objects)
from securekube.api.schemas import BUILT_IN_KINDS
from securekube.api.schemas.meta import list_object

# The client prefixes a few model names with their group to tell same-named types apart.
_GROUP_PREFIXES = {"core": "Core", "rbac": "Rbac"}


def _described_objects() -> dict[str, Object]:
    found: dict[str, Object] = {}
    for kind in BUILT_IN_KINDS:
        for o in walk_objects(list_object(kind)):
            if o.name.startswith("io.k8s.") and not o.free_form:
                found.setdefault(o.name, o)
    return found


def _client_model(schema_name: str) -> type:
    parts = schema_name.split(".")
    group = parts[3] if schema_name.startswith("io.k8s.api.") else ""
    for prefix in (_GROUP_PREFIXES.get(group, ""), ""):
        model = getattr(upstream_models, f"{prefix}V1{parts[-1]}", None)
        if model is not None:
            return model
    raise AssertionError(f"the client has no model for {schema_name}")


def _same_shape(node: Node, client_type: str) -> bool:
    """Whether `node` has the shape the client's type string (e.g. 'List[V1Container]') names."""
    if client_type.startswith("List["):
        return isinstance(node, Array) and _same_shape(node.items, client_type[5:-1])
    if client_type.startswith("Dict[str, "):
        return isinstance(node, Map) and _same_shape(node.values, client_type[10:-1])
    scalars = {"str": lambda n: n is QUANTITY or (isinstance(n, Scalar) and n.type == "string" and n is not BYTES),
               "bytes": lambda n: n is BYTES,
               "int": lambda n: isinstance(n, Scalar) and n.type == "integer",
               "bool": lambda n: isinstance(n, Scalar) and n.type == "boolean",
               "datetime": lambda n: n in (TIME, MICRO_TIME),
               "object": lambda n: n is INT_OR_STRING or (isinstance(n, Object) and n.free_form)}
    if client_type in scalars:
        return scalars[client_type](node)
    model = re.fullmatch(r"[A-Za-z]*V1(\w+)", client_type)
    return bool(model) and isinstance(node, Object) and node.name.endswith("." + model.group(1))


DESCRIBED = _described_objects()


def test_the_described_objects_cover_the_issue_list():
    short = {name.rsplit(".", 1)[1] for name in DESCRIBED}
    assert {"PodSpec", "Container", "SecurityContext", "PodSecurityContext", "SeccompProfile", "AppArmorProfile",
            "Capabilities", "ResourceRequirements", "Probe", "EnvVar", "VolumeMount", "Volume", "Toleration",
            "ContainerPort", "PodStatus", "ContainerStatus", "PodCondition", "NodeStatus", "NodeCondition",
            "NodeAddress", "NodeDaemonEndpoints", "NodeSystemInfo", "ContainerImage", "Taint", "PolicyRule",
            "Subject", "RoleRef", "AggregationRule", "CertificateSigningRequestSpec", "LeaseSpec", "ObjectMeta",
            "ListMeta"} <= short


@pytest.mark.parametrize("name", sorted(DESCRIBED))
def test_fields_and_types_are_upstreams(name):
    model = _client_model(name)
    expected = {model.attribute_map[attr]: client_type for attr, client_type in model.openapi_types.items()}
    described = {f.name: f.type for f in DESCRIBED[name].fields}
    assert sorted(described) == sorted(expected)
    wrong = [f"{field}: described {described[field]!r:.60}, upstream {client_type}"
             for field, client_type in expected.items() if not _same_shape(described[field], client_type)]
    assert wrong == []
