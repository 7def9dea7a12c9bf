"""Gatekeeper's kinds: templates.gatekeeper.sh/v1 ConstraintTemplate and the Constraint kinds templates define.

These are custom resources upstream, so, as in a CRD's schema, nested objects are described inline
(no shared names) and the top-level schema is named after the reversed group
(`sh.gatekeeper.templates.v1.ConstraintTemplate`). What a constraint's `parameters` may hold is
the template's own schema, checked by admission; here it is free-form.
"""
from __future__ import annotations

from securekube.api.schema import (BOOLEAN, STRING, GroupVersionKind, Object, array, field, free_form, obj,
                                   string)
from securekube.api.schemas.meta import LABEL_SELECTOR, kind_object


def crd_schema_name(group: str, version: str, kind: str) -> str:
    """The name upstream publishes a custom resource's schema under: reversed group, version, kind."""
    return ".".join((*reversed(group.split(".")), version, kind))


_NAMES = obj("", "The names of the Constraint kind the template defines.",
             field("kind", STRING, "Kind of the constraints, in upper camel case."),
             field("shortNames", array(STRING), "Short names for kubectl."))

_VALIDATION = obj("", "The schema of the constraints' parameters.",
                  field("legacySchema", BOOLEAN, "Whether the schema is converted the pre-v1 way."),
                  field("openAPIV3Schema", free_form("", "A structural OpenAPI v3 schema."),
                        "Schema that spec.parameters of each constraint must follow."))

_CODE = obj("", "Policy source code for one engine.",
            field("engine", STRING, "The engine the code is for, such as Rego.", required=True),
            field("source", free_form("", "Engine-specific source."), "The code; for Rego, rego and libs.",
                  required=True))

_TARGET = obj("", "The policy code for one enforcement target.",
              field("code", array(_CODE), "Code per engine; Rego here or in the rego field, not both."),
              field("libs", array(STRING), "Extra Rego modules the policy imports."),
              field("rego", STRING, "The Rego module that defines violations."),
              field("target", STRING, "Enforcement target, admission.k8s.gatekeeper.sh."))

CONSTRAINT_TEMPLATE = kind_object(
    crd_schema_name("templates.gatekeeper.sh", "v1", "ConstraintTemplate"),
    "A Rego policy plus the schema of the Constraint kind that applies it.",
    GroupVersionKind("templates.gatekeeper.sh", "v1", "ConstraintTemplate"),
    field("spec", obj("", "The desired state of a ConstraintTemplate.",
                      field("crd", obj("", "The Constraint kind the template defines.",
                                       field("spec", obj("", "Names and schema of the Constraint kind.",
                                                         field("names", _NAMES, "Names of the kind."),
                                                         field("validation", _VALIDATION,
                                                               "Schema of the constraints' parameters.")),
                                             "Names and schema of the kind.")),
                            "The Constraint kind the template defines."),
                      field("targets", array(_TARGET), "Policy code per enforcement target.")),
          "The policy and the kind it defines."),
    field("status", obj("", "The observed state of a ConstraintTemplate.",
                        field("byPod", array(free_form("", "Status reported by one Gatekeeper pod.")),
                              "Status per Gatekeeper pod."),
                        field("created", BOOLEAN, "Whether the Constraint kind is being served.")),
          "Whether the kind is served, and errors per pod."),
)

_MATCH_KIND = obj("", "API groups and kinds an object must have.",
                  field("apiGroups", array(STRING), "API groups; \"*\" for any."),
                  field("kinds", array(STRING), "Kinds; \"*\" for any."))

MATCH = obj(
    "", "Which objects the constraint applies to; every matcher given must match.",
    field("excludedNamespaces", array(STRING), "Namespaces left out; a \"*\" at the start or end is a wildcard."),
    field("kinds", array(_MATCH_KIND), "Groups and kinds in scope; one entry must match."),
    field("labelSelector", LABEL_SELECTOR, "Labels the object must have."),
    field("name", STRING, "Name of the object; a \"*\" at the start or end is a wildcard."),
    field("namespaceSelector", LABEL_SELECTOR, "Labels the object's namespace (or the Namespace itself) must have."),
    field("namespaces", array(STRING), "Namespaces in scope; a \"*\" at the start or end is a wildcard."),
    field("processes", array(string("audit", "webhook", "sync", "mutation-webhook", "*")),
          "Gatekeeper processes excludedNamespaces applies to."),
    field("scope", STRING, "*, Cluster or Namespaced: which scopes of object match."),
    field("source", string("All", "Generated", "Original"), "Whether generated or original objects match."),
)


def constraint_schema(group: str, version: str, kind: str) -> Object:
    """The schema of a Constraint kind defined by a template: enforcementAction, match, parameters."""
    return kind_object(
        crd_schema_name(group, version, kind), f"A constraint that applies the {kind} policy.",
        GroupVersionKind(group, version, kind),
        field("spec", obj("", "Where the policy applies, with which parameters, and what a violation does.",
                          field("enforcementAction", string("deny", "dryrun", "warn"),
                                "What a violation does: deny (the default), warn or dryrun."),
                          field("match", MATCH, "Which objects the constraint applies to."),
                          field("parameters", free_form("", "Parameters in the template's schema."),
                                "Values the policy reads, following the template's schema.")),
              "The constraint's settings."),
        field("status", free_form("", "Status written by Gatekeeper."), "Status of the constraint."),
    )
