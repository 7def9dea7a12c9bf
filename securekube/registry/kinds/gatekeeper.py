"""Gatekeeper's kinds: ConstraintTemplate (templates.gatekeeper.sh/v1) and the Constraint kinds it defines.

As in Gatekeeper, a ConstraintTemplate named `k8srequiredlabels` with `spec.crd.spec.names.kind:
K8sRequiredLabels` makes the cluster serve a cluster-scoped kind `K8sRequiredLabels` in
constraints.gatekeeper.sh/v1beta1 (resource `k8srequiredlabels`), so a user's existing template
and constraint YAML applies unchanged. Both are stored like custom resources, under
/registry/<group>/<resource>/.

These strategies check only the shape the store relies on; whether the Rego compiles and the
constraint's parameters fit the template's schema is decided by admission
(securekube/admission/policy_objects.py), with the real engine, before anything is stored.
"""
from __future__ import annotations

import re

from securekube.api import validation as v
from securekube.api.errors import Cause
from securekube.api.fieldcheck import field_paths
from securekube.api.schemas.gatekeeper import CONSTRAINT_TEMPLATE, constraint_schema
from securekube.registry.resource import AGE_COLUMN, NAME_COLUMN, Column, ResourceType, Strategy

TEMPLATE_GROUP = "templates.gatekeeper.sh"
CONSTRAINT_GROUP = "constraints.gatekeeper.sh"
CONSTRAINT_VERSION = "v1beta1"
CONSTRAINT_CATEGORIES = ("constraint", "constraints")
DENY, WARN, DRYRUN = "deny", "warn", "dryrun"
ENFORCEMENT_ACTIONS = (DENY, WARN, DRYRUN)
# A CRD kind: upper camel case, as Kubernetes requires of kind names.
_KIND = re.compile(r"[A-Z][A-Za-z0-9]{0,62}")


def template_kind(template: dict) -> str:
    """The Constraint kind a template defines (spec.crd.spec.names.kind), "" when missing."""
    names = ((((template.get("spec") or {}).get("crd") or {}).get("spec") or {}).get("names") or {})
    kind = names.get("kind") if isinstance(names, dict) else None
    return kind if isinstance(kind, str) else ""


class ConstraintTemplateStrategy(Strategy):
    type = ResourceType(TEMPLATE_GROUP, "v1", "ConstraintTemplate", "constrainttemplates", "constrainttemplate",
                        False, custom=True)
    schema = field_paths(CONSTRAINT_TEMPLATE)

    def validate(self, obj: dict) -> list[Cause]:
        spec = obj.get("spec")
        if not isinstance(spec, dict):
            return [v.required("spec")]
        kind = template_kind(obj)
        if not kind:
            return [v.required("spec.crd.spec.names.kind")]
        causes = []
        if not _KIND.fullmatch(kind):
            causes.append(v.invalid("spec.crd.spec.names.kind", kind, "must be an upper camel case kind name"))
        name = (obj.get("metadata") or {}).get("name")
        if name and name != kind.lower():
            causes.append(v.invalid("metadata.name", name, f"must be the lowercase of spec.crd.spec.names.kind "
                                                            f"({kind.lower()})"))
        if not isinstance(spec.get("targets"), list) or not spec["targets"]:
            causes.append(v.required("spec.targets"))
        return causes

    def validate_update(self, new: dict, old: dict) -> list[Cause]:
        if template_kind(new) != template_kind(old):
            return [v.forbidden("spec.crd.spec.names.kind", "field is immutable")]
        return []


def _enforcement_action(obj: dict, now: object) -> str:
    return str((obj.get("spec") or {}).get("enforcementAction") or "deny")


class ConstraintStrategy(Strategy):
    """The kind one ConstraintTemplate defines; one instance per template."""

    schema = field_paths(constraint_schema(CONSTRAINT_GROUP, CONSTRAINT_VERSION, "Constraint"))
    columns = (NAME_COLUMN, Column("Enforcement-Action", "string", _enforcement_action), AGE_COLUMN)

    def __init__(self, kind: str) -> None:
        self.type = ResourceType(CONSTRAINT_GROUP, CONSTRAINT_VERSION, kind, kind.lower(), kind.lower(), False,
                                 categories=CONSTRAINT_CATEGORIES, custom=True)

    def validate(self, obj: dict) -> list[Cause]:
        spec = obj.get("spec", {})
        if spec is None:
            return []
        if not isinstance(spec, dict):
            return [v.type_error("spec", spec, "an object")]
        causes = []
        action = spec.get("enforcementAction")
        if action is not None and action not in ENFORCEMENT_ACTIONS:
            causes.append(v.unsupported("spec.enforcementAction", action, list(ENFORCEMENT_ACTIONS)))
        for field in ("match", "parameters"):
            if spec.get(field) is not None and not isinstance(spec[field], dict):
                causes.append(v.type_error(f"spec.{field}", spec[field], "an object"))
        return causes
