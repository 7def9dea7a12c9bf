"""Gatekeeper objects: ConstraintTemplates and Constraints are checked, `match` selects as Gatekeeper's does."""
from __future__ import annotations

import copy
from typing import Any

import pytest

from securekube.admission.gatekeeper import (
    GatekeeperError,
    Match,
    MatchTarget,
    build_inventory,
    parse_constraint,
    parse_template,
    templates_by_kind,
)
from securekube.api.selectors import label_selector_from_object
from securekube.policy.embedded import EmbeddedOpaEngine
from securekube.policy.interfaces import PolicyCompileError

REGO = 'package k8sdemo\n\nviolation contains {"msg": "no"} if input.review.object.bad\n'


def template(rego: str = REGO, **spec: Any) -> dict[str, Any]:
    base = {"apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate", "metadata": {"name": "k8sdemo"},
            "spec": {"crd": {"spec": {"names": {"kind": "K8sDemo"}, "validation": {"openAPIV3Schema": {
                "type": "object", "properties": {"limit": {"type": "integer"},
                                                 "names": {"type": "array", "items": {"type": "string"}}}}}}},
                     "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": rego}]}}
    base["spec"].update(spec)
    return base


def test_a_template_is_read_from_rego_or_code(engine: EmbeddedOpaEngine) -> None:
    parsed = parse_template(template(), engine)
    assert (parsed.name, parsed.kind, parsed.module.package) == ("k8sdemo", "K8sDemo", ("k8sdemo",))
    code = template(targets=[{"target": "admission.k8s.gatekeeper.sh", "code": [
        {"engine": "K8sNativeValidation", "source": {"validations": []}},
        {"engine": "Rego", "source": {"version": "v1", "rego": REGO.replace("input.review.object.bad",
                                                                            "lib.helpers.bad(input.review.object)")
                                      .replace("violation", "import data.lib.helpers\n\nviolation", 1),
                                      "libs": ["package lib.helpers\n\nbad(obj) if obj.bad\n"]}}]}])
    parsed = parse_template(code, engine)
    assert [m.package for m in parsed.libs] == [("lib", "helpers")]
    assert str(parsed.module.path) == "ConstraintTemplate/k8sdemo/spec.targets[0].code[1].source.rego"


@pytest.mark.parametrize(("change", "message"), [
    (lambda t: t["metadata"].update(name="other"), "the name must be the lowercase of spec.crd.spec.names.kind"),
    (lambda t: t["spec"]["targets"][0].update(target="audit.example"), "target must be 'admission.k8s.gatekeeper.sh'"),
    (lambda t: t["spec"]["targets"].append(t["spec"]["targets"][0]), "exactly one target is supported, got 2"),
    (lambda t: t["spec"]["targets"][0].update(rego='package securekube.x\n\nviolation contains 1 if true\n'),
     "package securekube.x is reserved"),
    (lambda t: t["spec"]["targets"][0].update(rego='package k8sdemo\n\ndeny contains 1 if true\n'),
     "the Rego does not define 'violation'"),
    (lambda t: t["spec"]["targets"][0].update(
        rego='package k8sdemo\n\nviolation contains 1 if data.securekube.internal.admission.parameters\n'),
     "templates may read only data.inventory and their libraries, not data.securekube"),
    (lambda t: t["spec"]["targets"][0].update(libs=["package helpers\n\nx := 1\n"]),
     "library package helpers must start with 'lib'"),
    (lambda t: t["spec"]["targets"][0].pop("rego") and t["spec"]["targets"][0].update(
        code=[{"engine": "K8sNativeValidation", "source": {}}]), "only Rego templates are supported"),
])
def test_malformed_templates_are_refused(engine: EmbeddedOpaEngine, change: Any, message: str) -> None:
    broken = template()
    change(broken)
    with pytest.raises(GatekeeperError, match=message.replace("(", r"\(").replace(")", r"\)").replace(".", r"\.")):
        parse_template(broken, engine)


def test_rego_v0_templates_get_a_conversion_hint(engine: EmbeddedOpaEngine) -> None:
    v0 = 'package k8sdemo\n\nviolation[{"msg": msg}] {\n  msg := "no"\n}\n'
    with pytest.raises(PolicyCompileError) as refused:
        parse_template(template(v0), engine)
    assert "`if` keyword is required" in str(refused.value)
    assert "opa fmt --v0-v1" in str(refused.value)
    code_v0 = template(targets=[{"target": "admission.k8s.gatekeeper.sh",
                                 "code": [{"engine": "Rego", "source": {"version": "v0", "rego": v0}}]}])
    with pytest.raises(GatekeeperError, match="Rego v0 is not supported"):
        parse_template(code_v0, engine)


def constraint_object(**spec: Any) -> dict[str, Any]:
    return {"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sDemo", "metadata": {"name": "demo"},
            "spec": spec}


def test_constraints_are_checked_against_their_template(engine: EmbeddedOpaEngine) -> None:
    templates = templates_by_kind([parse_template(template(), engine)])
    parsed = parse_constraint(constraint_object(parameters={"limit": 3}), templates)
    assert (parsed.id, parsed.enforcement_action, parsed.parameters) == ("K8sDemo/demo", "deny", {"limit": 3})
    with pytest.raises(GatekeeperError, match="no ConstraintTemplate defines kind 'K8sOther'"):
        parse_constraint({**constraint_object(), "kind": "K8sOther"}, templates)
    with pytest.raises(GatekeeperError, match="spec.enforcementAction must be one of deny, warn, dryrun"):
        parse_constraint(constraint_object(enforcementAction="scoped"), templates)
    with pytest.raises(GatekeeperError) as invalid:
        parse_constraint(constraint_object(parameters={"limit": "3", "names": ["a", 1]}), templates)
    assert str(invalid.value) == (
        'The K8sDemo "demo" is invalid: spec.parameters.limit: Invalid value: "string": spec.parameters.limit in body '
        'must be of type integer: "string"; spec.parameters.names[1]: Invalid value: "number": '
        'spec.parameters.names[1] in body must be of type string: "number"')
    with pytest.raises(GatekeeperError, match="invalid selector"):
        parse_constraint(constraint_object(match={"labelSelector": {"matchExpressions": [
            {"key": "a", "operator": "Near"}]}}), templates)


def test_two_templates_for_one_kind_are_refused(engine: EmbeddedOpaEngine) -> None:
    parsed = parse_template(template(), engine)
    with pytest.raises(GatekeeperError, match="kind K8sDemo is defined twice"):
        templates_by_kind([parsed, copy.deepcopy(parsed)])


def target(kind: str = "Pod", namespace: str = "team-a", name: str = "web", labels: dict[str, str] | None = None,
           namespace_labels: dict[str, str] | None = None, group: str = "") -> MatchTarget:
    return MatchTarget(group, kind, namespace, name, (labels or {},), namespace_labels or {})


def selector(**labels: str) -> Any:
    return label_selector_from_object({"matchLabels": labels})


@pytest.mark.parametrize(("match", "item", "expected"), [
    (Match(), target(), True),
    (Match(kinds=((frozenset({""}), frozenset({"Pod"})),)), target(), True),
    (Match(kinds=((frozenset({"apps"}), frozenset({"Pod"})),)), target(), False),
    (Match(kinds=((frozenset({"*"}), frozenset({"*"})),)), target(group="apps", kind="Deployment"), True),
    (Match(namespaces=("team-*",)), target(), True),
    (Match(namespaces=("*-system",)), target(), False),
    (Match(excluded_namespaces=("team-a",)), target(), False),
    (Match(namespaces=("team-b",)), target(kind="Node", namespace=""), True),  # cluster-scoped: not filtered
    (Match(namespaces=("team-b",)), target(kind="Namespace", namespace="", name="team-b"), True),
    (Match(namespaces=("team-b",)), target(kind="Namespace", namespace="", name="team-c"), False),
    (Match(scope="Namespaced"), target(kind="Node", namespace=""), False),
    (Match(scope="Cluster"), target(), False),
    (Match(name="web-*"), target(name="web-1"), True),
    (Match(name="web-*"), target(name="api"), False),
    (Match(label_selector=selector(app="web")), target(labels={"app": "web"}), True),
    (Match(label_selector=selector(app="web")), target(labels={}), False),
    (Match(namespace_selector=selector(env="prod")), target(namespace_labels={"env": "prod"}), True),
    (Match(namespace_selector=selector(env="prod")), target(namespace_labels={}), False),
    (Match(namespace_selector=selector(env="prod")), target(kind="Namespace", namespace="", name="p",
                                                            namespace_labels={"env": "prod"}), True),
])
def test_match_semantics(match: Match, item: MatchTarget, expected: bool) -> None:
    assert match.matches(item) is expected


def test_the_inventory_has_gatekeepers_layout() -> None:
    objects = [{"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "team-a"}},
               {"apiVersion": "v1", "kind": "ServiceAccount", "metadata": {"name": "worker", "namespace": "team-a"}},
               {"apiVersion": "apps/v1", "kind": "Deployment", "metadata": {"name": "web", "namespace": "team-a"}},
               {"kind": "Broken"}]
    inventory = build_inventory(objects)
    assert set(inventory["cluster"]["v1"]["Namespace"]) == {"team-a"}
    assert set(inventory["namespace"]["team-a"]["v1"]["ServiceAccount"]) == {"worker"}
    assert set(inventory["namespace"]["team-a"]["apps/v1"]["Deployment"]) == {"web"}
