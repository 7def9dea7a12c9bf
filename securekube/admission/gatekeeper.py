"""Gatekeeper's policy objects: ConstraintTemplates, Constraints, their `match`, and the inventory.

A ConstraintTemplate (templates.gatekeeper.sh/v1, also v1beta1/v1alpha1) carries Rego for the
target `admission.k8s.gatekeeper.sh`, either in `spec.targets[0].rego` (+ `libs`) or in
`spec.targets[0].code[]` with `engine: Rego` and `source.rego` (+ `source.libs`). The Rego
defines `violation` as a set of `{"msg": ..., "details": ...}` and reads `input.review` (the
admission request) and `input.parameters` (the Constraint's `spec.parameters`). Libraries are
packages under `lib.`; templates may read `data.inventory` (referential data) and their
libraries, nothing else of `data`.

The embedded engine is OPA v1: Rego must be v1 syntax (`violation contains {...} if {...}`).
A template still in v0 syntax is refused with that hint (`opa fmt --v0-v1` converts it).

A Constraint (constraints.gatekeeper.sh/v1beta1, kind = the template's kind) selects objects
with `spec.match` and says what a violation does with `spec.enforcementAction`: deny (the
default), warn (a warning, the request goes through) or dryrun (recorded only).

Match semantics are Gatekeeper's: every matcher given must match, an empty one matches all;
`kinds` entries match when the group and the kind are listed ("*" for any); `namespaces`,
`excludedNamespaces` and `name` take exact names or one "*" at the start or the end; a
Namespace is matched by its own name and labels; cluster-scoped objects are not filtered by
the namespace matchers (use `scope: Namespaced` to leave them out); `labelSelector` matches
the object's labels (or, for a DELETE, the old object's).
"""
from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from securekube.api.errors import ApiError
from securekube.api.selectors import Requirement, label_selector_from_object, labels_match
from securekube.policy.admission_input import group_version
from securekube.policy.interfaces import PolicyCompileError, PolicyEngine
from securekube.policy.loader import RegoModule, parse_module
from securekube.registry.kinds.gatekeeper import (CONSTRAINT_GROUP, DENY, DRYRUN, ENFORCEMENT_ACTIONS, TEMPLATE_GROUP,
                                                  WARN)

__all__ = [
    "DENY",
    "DRYRUN",
    "WARN",
    "CONSTRAINT_GROUP",
    "ENFORCEMENT_ACTIONS",
    "GATEKEEPER_TARGET",
    "TEMPLATE_GROUP",
    "Constraint",
    "ConstraintTemplate",
    "GatekeeperError",
    "Match",
    "MatchTarget",
    "build_inventory",
    "is_constraint",
    "is_template",
    "parse_constraint",
    "parse_template",
]

_VERSIONS = ("v1", "v1beta1", "v1alpha1")
GATEKEEPER_TARGET = "admission.k8s.gatekeeper.sh"
VIOLATION_RULE = "violation"
_RESERVED_PACKAGE = "securekube"
_LIB_PACKAGE = "lib"
_V0_HINT = ("Rego v0 syntax is not supported (the embedded engine is OPA v1); convert the template with "
            "`opa fmt --v0-v1` or write `violation contains {...} if {...}`")
_V0_MARKERS = ("`if` keyword is required", "`contains` keyword is required")


class GatekeeperError(ValueError):
    """A ConstraintTemplate or Constraint that cannot be used; the message names it."""


def is_template(obj: Mapping[str, Any]) -> bool:
    group, version = group_version(str(obj.get("apiVersion", "")))
    return group == TEMPLATE_GROUP and obj.get("kind") == "ConstraintTemplate"


def is_constraint(obj: Mapping[str, Any]) -> bool:
    group, _ = group_version(str(obj.get("apiVersion", "")))
    return group == CONSTRAINT_GROUP


# ------------------------------------------------------------------------------------ templates


@dataclass(frozen=True)
class ConstraintTemplate:
    """A checked ConstraintTemplate: its Constraint kind and its parsed Rego."""

    name: str
    kind: str
    module: RegoModule
    libs: tuple[RegoModule, ...]
    parameters_schema: Mapping[str, Any] | None

    @property
    def modules(self) -> tuple[RegoModule, ...]:
        return (self.module, *self.libs)

    @property
    def uses_inventory(self) -> bool:
        return any(m.mentions("data.inventory") for m in self.modules)


def _map(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _list(value: Any) -> list[Any]:
    return value if isinstance(value, list) else []


def parse_template(obj: Mapping[str, Any], engine: PolicyEngine) -> ConstraintTemplate:
    """Check a ConstraintTemplate and parse its Rego with OPA's parser (the engine's modules are untouched).

    Raises GatekeeperError for a malformed object and PolicyCompileError for Rego that does not
    parse; both name the template, the Rego's place in it, and the line (and column when OPA
    marks it).
    """
    if not is_template(obj):
        raise GatekeeperError(f"not a ConstraintTemplate ({obj.get('apiVersion')!s} {obj.get('kind')!s})")
    name = str(_map(obj.get("metadata")).get("name") or "")
    what = f"ConstraintTemplate {name!r}" if name else "ConstraintTemplate"
    if group_version(str(obj.get("apiVersion")))[1] not in _VERSIONS:
        raise GatekeeperError(f"{what}: apiVersion {obj.get('apiVersion')} is not supported")
    if not name:
        raise GatekeeperError(f"{what}: metadata.name is required")
    spec = _map(obj.get("spec"))
    crd_spec = _map(_map(spec.get("crd")).get("spec"))
    kind = str(_map(crd_spec.get("names")).get("kind") or "")
    if not kind:
        raise GatekeeperError(f"{what}: spec.crd.spec.names.kind is required")
    if kind.lower() != name:
        raise GatekeeperError(f"{what}: the name must be the lowercase of spec.crd.spec.names.kind ({kind.lower()!r})")
    targets = _list(spec.get("targets"))
    if len(targets) != 1:
        raise GatekeeperError(f"{what}: exactly one target is supported, got {len(targets)}")
    target = _map(targets[0])
    if target.get("target") != GATEKEEPER_TARGET:
        raise GatekeeperError(f"{what}: target must be {GATEKEEPER_TARGET!r}")
    rego, libs, where = _rego_source(what, target)
    base = f"ConstraintTemplate/{name}/spec.targets[0].{where}"
    module = _parse(engine, Path(f"{base}rego"), rego)
    lib_modules = tuple(_parse(engine, Path(f"{base}libs[{i}]"), text) for i, text in enumerate(libs))
    if module.package[0] == _RESERVED_PACKAGE:
        raise GatekeeperError(f"{what}: package {module.package_name} is reserved")
    if VIOLATION_RULE not in module.rules:
        raise GatekeeperError(f"{what}: the Rego does not define {VIOLATION_RULE!r}")
    for lib in lib_modules:
        if lib.package[0] != _LIB_PACKAGE:
            raise GatekeeperError(f"{what}: library package {lib.package_name} must start with {_LIB_PACKAGE!r}")
    allowed_data = {"inventory", _LIB_PACKAGE, module.package[0]}
    for rego_module in (module, *lib_modules):
        outside = sorted(r for r in rego_module.references
                         if r.startswith("data.") and r.split(".")[1] not in allowed_data and r.count(".") == 1)
        if outside:
            raise GatekeeperError(f"{rego_module.module_name}: templates may read only data.inventory and their "
                                  f"libraries, not {', '.join(outside)}")
    schema = _map(_map(crd_spec.get("validation")).get("openAPIV3Schema")) or None
    return ConstraintTemplate(name, kind, module, lib_modules, schema)


def _rego_source(what: str, target: Mapping[str, Any]) -> tuple[str, list[str], str]:
    """(rego, libs, where) from `rego`/`libs` or from the `code` entry with engine Rego."""
    rego_code = [c for c in _list(target.get("code")) if _map(c).get("engine") == "Rego"]
    if rego_code:
        index = _list(target.get("code")).index(rego_code[0])
        source = _map(_map(rego_code[0]).get("source"))
        version = source.get("version")
        if version not in (None, "", "v1"):
            raise GatekeeperError(f"{what}: Rego {version} is not supported; {_V0_HINT}")
        rego, libs = source.get("rego"), source.get("libs")
        where = f"code[{index}].source."
    else:
        rego, libs, where = target.get("rego"), target.get("libs"), ""
    if not isinstance(rego, str) or not rego.strip():
        if _list(target.get("code")):
            raise GatekeeperError(f"{what}: only Rego templates are supported (no code entry with engine Rego)")
        raise GatekeeperError(f"{what}: the target has no Rego")
    lib_texts = _list(libs)
    if not all(isinstance(lib, str) for lib in lib_texts):
        raise GatekeeperError(f"{what}: libs must be strings of Rego")
    return rego, lib_texts, where


def _parse(engine: PolicyEngine, path: Path, source: str) -> RegoModule:
    try:
        return parse_module(engine, path, source)
    except PolicyCompileError as exc:
        message = str(exc)
        if any(marker in message for marker in _V0_MARKERS):
            raise PolicyCompileError(f"{message}\n{path}: {_V0_HINT}") from None
        raise


# ---------------------------------------------------------------------------------- constraints


@dataclass(frozen=True)
class MatchTarget:
    """What `match` looks at in a request (or a stored object)."""

    group: str
    kind: str
    namespace: str  # the object's namespace; "" when cluster-scoped
    name: str
    labels: tuple[Mapping[str, Any], ...]  # of the object and/or the old object
    namespace_labels: Mapping[str, Any]  # of its namespace (for a Namespace, its own); {} when unknown

    @property
    def is_namespace(self) -> bool:
        return self.group == "" and self.kind == "Namespace"


@dataclass(frozen=True)
class Match:
    """A Constraint's `spec.match`."""

    kinds: tuple[tuple[frozenset[str], frozenset[str]], ...] = ()  # (apiGroups, kinds)
    scope: str = "*"
    namespaces: tuple[str, ...] = ()
    excluded_namespaces: tuple[str, ...] = ()
    label_selector: tuple[Requirement, ...] | None = None
    namespace_selector: tuple[Requirement, ...] | None = None
    name: str = ""

    def matches(self, target: MatchTarget) -> bool:
        if self.kinds and not any(_listed(target.group, groups) and _listed(target.kind, kinds)
                                  for groups, kinds in self.kinds):
            return False
        cluster_scoped = target.is_namespace or not target.namespace
        if self.scope == "Cluster" and not cluster_scoped:
            return False
        if self.scope == "Namespaced" and cluster_scoped:
            return False
        namespace = target.name if target.is_namespace else target.namespace
        # Cluster-scoped objects other than Namespaces are not filtered by namespace (Gatekeeper).
        namespaced_view = target.is_namespace or bool(target.namespace)
        if self.namespaces and namespaced_view and not any(_glob(p, namespace) for p in self.namespaces):
            return False
        if self.excluded_namespaces and namespaced_view and any(_glob(p, namespace)
                                                                for p in self.excluded_namespaces):
            return False
        if self.name and not _glob(self.name, target.name):
            return False
        if self.label_selector is not None and not any(labels_match(self.label_selector, labels)
                                                       for labels in target.labels or ({},)):
            return False
        if self.namespace_selector is not None and namespaced_view and \
                not labels_match(self.namespace_selector, dict(target.namespace_labels)):
            return False
        return True


def _listed(value: str, listed: frozenset[str]) -> bool:
    return not listed or "*" in listed or value in listed


def _glob(pattern: str, value: str) -> bool:
    if pattern.endswith("*"):
        return value.startswith(pattern[:-1])
    if pattern.startswith("*"):
        return value.endswith(pattern[1:])
    return pattern == value


@dataclass(frozen=True)
class Constraint:
    """A checked Constraint."""

    kind: str
    name: str
    match: Match
    parameters: Mapping[str, Any]
    enforcement_action: str

    @property
    def id(self) -> str:
        return f"{self.kind}/{self.name}"


def parse_constraint(obj: Mapping[str, Any], templates: Mapping[str, ConstraintTemplate]) -> Constraint:
    """Check a Constraint against the templates (by kind); GatekeeperError names what is wrong."""
    kind = str(obj.get("kind") or "")
    name = str(_map(obj.get("metadata")).get("name") or "")
    what = f"{kind} {name!r}"
    if not is_constraint(obj):
        raise GatekeeperError(f"{what}: not a constraint (apiVersion must be {CONSTRAINT_GROUP}/<version>)")
    if not name:
        raise GatekeeperError(f"{what}: metadata.name is required")
    template = templates.get(kind)
    if template is None:
        raise GatekeeperError(f"{what}: no ConstraintTemplate defines kind {kind!r}")
    spec = _map(obj.get("spec"))
    action = spec.get("enforcementAction") or DENY
    if action not in ENFORCEMENT_ACTIONS:
        raise GatekeeperError(f"{what}: spec.enforcementAction must be one of {', '.join(ENFORCEMENT_ACTIONS)}, "
                              f"not {action!r}")
    parameters = spec.get("parameters", {})
    if parameters is None:
        parameters = {}
    if not isinstance(parameters, Mapping):
        raise GatekeeperError(f'The {kind} "{name}" is invalid: spec.parameters: Invalid value: '
                              f'"{_json_type(parameters)}": spec.parameters in body must be of type object')
    if template.parameters_schema:
        problems = _schema_problems(parameters, template.parameters_schema, "spec.parameters")
        if problems:
            raise GatekeeperError(f'The {kind} "{name}" is invalid: {"; ".join(problems)}')
    return Constraint(kind, name, _parse_match(what, _map(spec.get("match"))), dict(parameters), str(action))


def _parse_match(what: str, match: Mapping[str, Any]) -> Match:
    kinds = []
    for entry in _list(match.get("kinds")):
        entry = _map(entry)
        kinds.append((frozenset(str(g) for g in _list(entry.get("apiGroups"))),
                      frozenset(str(k) for k in _list(entry.get("kinds")))))
    scope = str(match.get("scope") or "*")
    if scope not in ("*", "Cluster", "Namespaced"):
        raise GatekeeperError(f"{what}: spec.match.scope must be *, Cluster or Namespaced")
    try:
        label_selector = label_selector_from_object(match["labelSelector"]) if "labelSelector" in match else None
        namespace_selector = label_selector_from_object(match["namespaceSelector"]) \
            if "namespaceSelector" in match else None
    except (ApiError, AttributeError, TypeError) as exc:
        raise GatekeeperError(f"{what}: spec.match has an invalid selector: {exc}") from None
    return Match(
        kinds=tuple(kinds), scope=scope,
        namespaces=tuple(str(n) for n in _list(match.get("namespaces"))),
        excluded_namespaces=tuple(str(n) for n in _list(match.get("excludedNamespaces"))),
        label_selector=label_selector, namespace_selector=namespace_selector,
        name=str(match.get("name") or ""),
    )


_JSON_TYPES = {"object": Mapping, "array": list, "string": str, "boolean": bool}


def _json_type(value: Any) -> str:
    if isinstance(value, bool):
        return "boolean"
    if isinstance(value, (int, float)):
        return "number"
    if isinstance(value, str):
        return "string"
    if isinstance(value, list):
        return "array"
    if isinstance(value, Mapping):
        return "object"
    return "null"


def _type_ok(value: Any, expected: str) -> bool:
    if expected == "integer":
        return isinstance(value, int) and not isinstance(value, bool)
    if expected == "number":
        return isinstance(value, (int, float)) and not isinstance(value, bool)
    python_type = _JSON_TYPES.get(expected)
    if python_type is None:
        return True
    return isinstance(value, python_type) and (expected == "boolean" or not isinstance(value, bool))


def _schema_problems(value: Any, schema: Mapping[str, Any], path: str) -> list[str]:
    """Type errors of `value` against a structural OpenAPI schema (types, properties, items, enum)."""
    expected = schema.get("type")
    if isinstance(expected, str) and not _type_ok(value, expected):
        return [f'{path}: Invalid value: "{_json_type(value)}": {path} in body must be of type {expected}: '
                f'"{_json_type(value)}"']
    problems = []
    enum = schema.get("enum")
    if isinstance(enum, list) and value not in enum:
        problems.append(f"{path}: Unsupported value: {value!r}")
    if isinstance(value, Mapping):
        properties = _map(schema.get("properties"))
        for key, sub in properties.items():
            if key in value and isinstance(sub, Mapping):
                problems += _schema_problems(value[key], sub, f"{path}.{key}")
        extra = schema.get("additionalProperties")
        if isinstance(extra, Mapping):
            for key, item in value.items():
                if key not in properties:
                    problems += _schema_problems(item, extra, f"{path}.{key}")
    if isinstance(value, list) and isinstance(schema.get("items"), Mapping):
        for index, item in enumerate(value):
            problems += _schema_problems(item, schema["items"], f"{path}[{index}]")
    return problems


# ------------------------------------------------------------------------------------ inventory


def build_inventory(objects: Iterable[Mapping[str, Any]]) -> dict[str, Any]:
    """`data.inventory` as Gatekeeper lays it out, from stored objects (with apiVersion and kind):

        cluster[<apiVersion>][<kind>][<name>]                    cluster-scoped objects
        namespace[<namespace>][<apiVersion>][<kind>][<name>]     namespaced objects
    """
    inventory: dict[str, Any] = {"cluster": {}, "namespace": {}}
    for obj in objects:
        api_version, kind = str(obj.get("apiVersion", "")), str(obj.get("kind", ""))
        metadata = _map(obj.get("metadata"))
        name, namespace = str(metadata.get("name", "")), str(metadata.get("namespace", "") or "")
        if not (api_version and kind and name):
            continue
        place = inventory["namespace"].setdefault(namespace, {}) if namespace else inventory["cluster"]
        place.setdefault(api_version, {}).setdefault(kind, {})[name] = dict(obj)
    return inventory


def templates_by_kind(templates: Sequence[ConstraintTemplate]) -> dict[str, ConstraintTemplate]:
    """Templates by their Constraint kind; GatekeeperError when two claim one kind or one package."""
    by_kind: dict[str, ConstraintTemplate] = {}
    packages: dict[tuple[str, ...], str] = {}
    for template in templates:
        if template.kind in by_kind:
            raise GatekeeperError(f"ConstraintTemplate {template.name!r}: kind {template.kind} is defined twice")
        other = packages.setdefault(template.module.package, template.name)
        if other != template.name:
            raise GatekeeperError(f"ConstraintTemplate {template.name!r}: package {template.module.package_name} is "
                                  f"also the package of ConstraintTemplate {other!r}")
        by_kind[template.kind] = template
    return by_kind
