"""A typed description of an API object's fields: the one source for OpenAPI and fieldValidation.

Each kind is described once (securekube/api/schemas/) with these nodes; the OpenAPI v3 document
that `kubectl explain` reads (apiserver/openapi.py) and the known-field map that fieldValidation
checks (api/fieldcheck.py) are both derived from that description, so they cannot disagree.

Names, types and nesting follow upstream's API; an `Object` carries upstream's schema name
(`io.k8s.api.core.v1.PodSpec`) so it is served under that name. Objects of custom resources
(Gatekeeper's) have no shared name upstream and are described inline, as a CRD schema is.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Union

SCALAR_TYPES = ("string", "integer", "number", "boolean")


@dataclass(frozen=True)
class Scalar:
    """A JSON scalar: a string, integer, number or boolean, or a union of them (Quantity, IntOrString)."""

    type: str = ""  # one of SCALAR_TYPES; "" for a union, whose member types are in `one_of`
    format: str = ""
    enum: tuple[str, ...] = ()
    one_of: tuple[str, ...] = ()
    # Upstream shares some scalars by name (Time, Quantity, IntOrString); those are served once and referenced.
    name: str = ""
    description: str = ""

    def __post_init__(self) -> None:
        if self.type and self.type not in SCALAR_TYPES:
            raise ValueError(f"unknown scalar type {self.type!r}")
        if not self.type and not self.one_of:
            raise ValueError("a scalar needs a type or the types of its union")
        if any(t not in SCALAR_TYPES for t in self.one_of):
            raise ValueError(f"unknown scalar type in {self.one_of!r}")
        if self.name and not self.description:
            raise ValueError(f"the named scalar {self.name} needs a description")


@dataclass(frozen=True)
class Array:
    """A JSON array whose elements all have one type."""

    items: Node


@dataclass(frozen=True)
class Map:
    """A JSON object with free keys (labels, resource lists) whose values all have one type."""

    values: Node


@dataclass(frozen=True)
class Field:
    """One property of an object: its name, its type and a one-sentence description."""

    name: str
    type: Node
    description: str
    required: bool = False

    def __post_init__(self) -> None:
        if not self.name or not self.description:
            raise ValueError(f"field {self.name!r} needs a name and a description")


@dataclass(frozen=True)
class GroupVersionKind:
    group: str
    version: str
    kind: str


@dataclass(frozen=True)
class Object:
    """A JSON object with named fields; `free_form` when it keeps keys nobody describes (preserve-unknown-fields)."""

    name: str  # upstream's schema name; "" for an object described inline (custom resources)
    description: str
    fields: tuple[Field, ...] = ()
    free_form: bool = False
    gvk: GroupVersionKind | None = None  # set on the top-level object of a kind

    def __post_init__(self) -> None:
        if not self.description:
            raise ValueError(f"object {self.name or '(inline)'} needs a description")
        names = [f.name for f in self.fields]
        duplicates = sorted({n for n in names if names.count(n) > 1})
        if duplicates:
            raise ValueError(f"object {self.name or '(inline)'} lists {duplicates} twice")
        if self.free_form and self.fields:
            raise ValueError(f"free-form object {self.name or '(inline)'} cannot also list fields")

    @property
    def required(self) -> tuple[str, ...]:
        return tuple(f.name for f in self.fields if f.required)

    def field(self, name: str) -> Field:
        """The field called `name` (KeyError when there is none)."""
        for f in self.fields:
            if f.name == name:
                return f
        raise KeyError(name)


Node = Union[Scalar, Array, Map, Object]

STRING = Scalar("string")
BOOLEAN = Scalar("boolean")
INT32 = Scalar("integer", "int32")
INT64 = Scalar("integer", "int64")
BYTES = Scalar("string", "byte")  # base64 in JSON
TIME = Scalar("string", "date-time", name="io.k8s.apimachinery.pkg.apis.meta.v1.Time",
              description="A point in time, serialized as an RFC 3339 timestamp with seconds.")
MICRO_TIME = Scalar("string", "date-time", name="io.k8s.apimachinery.pkg.apis.meta.v1.MicroTime",
                    description="A point in time with microseconds, serialized as an RFC 3339 timestamp.")
QUANTITY = Scalar(one_of=("string", "number"), name="io.k8s.apimachinery.pkg.api.resource.Quantity",
                  description="A fixed-point amount such as 100m, 64Mi or 2, as used for CPU, memory and storage.")
INT_OR_STRING = Scalar(format="int-or-string", one_of=("integer", "string"),
                       name="io.k8s.apimachinery.pkg.util.intstr.IntOrString",
                       description="Either a whole number or a string, such as a port number or a port name.")


def string(*enum: str) -> Scalar:
    """A string, restricted to `enum` when any values are given."""
    return Scalar("string", enum=enum)


def array(items: Node) -> Array:
    return Array(items)


def map_of(values: Node) -> Map:
    return Map(values)


def field(name: str, type_: Node, description: str, *, required: bool = False) -> Field:
    return Field(name, type_, description, required)


def obj(name: str, description: str, *fields: Field) -> Object:
    """A described object (upstream's schema `name`, or "" for an inline one)."""
    return Object(name, description, tuple(fields))


def free_form(name: str, description: str) -> Object:
    """An object whose content is not described: any keys are kept and none is reported unknown."""
    return Object(name, description, free_form=True)


def walk_objects(node: Node) -> list[Object]:
    """Every object reachable from `node` (itself included), each once, parents before children."""
    found: list[Object] = []
    seen: set[int] = set()
    pending: list[Node] = [node]
    while pending:
        current = pending.pop()
        if isinstance(current, Array):
            pending.append(current.items)
        elif isinstance(current, Map):
            pending.append(current.values)
        elif isinstance(current, Object) and id(current) not in seen:
            seen.add(id(current))
            found.append(current)
            pending.extend(f.type for f in reversed(current.fields))
    return found
