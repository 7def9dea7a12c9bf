"""Rego admission in the real engine: deny/warn/patch, Gatekeeper constraints, fail closed, atomic updates."""
from __future__ import annotations

import re
import threading
from pathlib import Path
from typing import Any

import pytest

from securekube.admission.chain import AdmissionChain, standard_chain
from securekube.admission.gatekeeper import GatekeeperError
from securekube.admission.interfaces import AdmissionError
from securekube.admission.noderestriction import NodeRestriction
from securekube.admission.opa import ANNOTATION_PREFIX, RegoAdmission, RegoAdmissionConfig
from securekube.admission.podsecurity import PodSecurityAdmission
from securekube.admission.policy_objects import PolicyObjects
from securekube.policy.embedded import EmbeddedOpaEngine
from securekube.policy.interfaces import PolicyCompileError
from securekube.policy.loader import Policy, read_policies
from securekube.registry.registry import Registry
from securekube.storage.sqlite import SqliteStorage
from securekube.storage.transform.identity import IdentityTransformer
from tests.unit.admission.admission_requests import namespace, pod, pod_request, request

NO_LATEST = """package securekube.admission.no_latest

deny contains msg if {
	some c in input.request.object.spec.containers
	endswith(c.image, ":latest")
	msg := sprintf("container %q uses :latest", [c.name])
}

warn contains "pods should have labels" if {
	input.request.kind.kind == "Pod"
	not input.request.object.metadata.labels
}
"""

DEFAULT_TEAM = """package securekube.admission.default_team

# Adds a team label to pods without one; refuses the reserved team.
patch contains {"op": "add", "path": "/metadata/labels", "value": {"team": input.parameters.team}} if {
	input.request.kind.kind == "Pod"
	not input.request.object.metadata.labels
}

deny contains "team root is reserved" if input.request.object.metadata.labels.team == "root"
"""

TEMPLATE = {
    "apiVersion": "templates.gatekeeper.sh/v1", "kind": "ConstraintTemplate", "metadata": {"name": "k8srequiredlabels"},
    "spec": {"crd": {"spec": {"names": {"kind": "K8sRequiredLabels"}}},
             "targets": [{"target": "admission.k8s.gatekeeper.sh", "rego": """package k8srequiredlabels

violation contains {"msg": msg, "details": {"missing": missing}} if {
	provided := {l | some l, _ in object.get(input.review.object.metadata, "labels", {})}
	required := {l | some l in input.parameters.labels}
	missing := required - provided
	count(missing) > 0
	msg := sprintf("you must provide labels: %v", [missing])
}
"""}]}}


def constraint(name: str, action: str = "deny", **match: Any) -> dict[str, Any]:
    return {"apiVersion": "constraints.gatekeeper.sh/v1beta1", "kind": "K8sRequiredLabels", "metadata": {"name": name},
            "spec": {"enforcementAction": action, "match": {"kinds": [{"apiGroups": [""], "kinds": ["Pod"]}], **match},
                     "parameters": {"labels": ["owner"]}}}


def policies(engine: EmbeddedOpaEngine, root: Path, **sources: str) -> tuple[Policy, ...]:
    for name, source in sources.items():
        folder = root / name.replace("_", "-")
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "policy.rego").write_text(source)
    return read_policies(root, engine)


@pytest.fixture
def rego(engine: EmbeddedOpaEngine, tmp_path: Path) -> RegoAdmission:
    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5))
    admission.set_policies(policies(engine, tmp_path, no_latest=NO_LATEST, default_team=DEFAULT_TEAM),
                           {"default-team": {"team": "platform"}})
    return admission


def latest_pod() -> dict[str, Any]:
    return pod(containers=[{"name": "web", "image": "localhost/web:latest"}])


def test_a_denial_names_the_policy_in_a_forbidden_status(rego: RegoAdmission) -> None:
    with pytest.raises(AdmissionError) as denied:
        rego.validating.validate(pod_request(latest_pod()))
    error = denied.value
    assert (error.code, error.reason) == (403, "Forbidden")
    assert error.message == 'pods "web" is forbidden: no-latest: container "web" uses :latest'
    assert error.audit_annotations[ANNOTATION_PREFIX + "decision"] == "denied"
    assert error.audit_annotations[ANNOTATION_PREFIX + "denied-by"] == "no-latest"
    assert error.audit_annotations[ANNOTATION_PREFIX + "evaluated"] == "2 policies, 0 constraints"


def test_warnings_reach_the_client_and_the_audit_event(rego: RegoAdmission) -> None:
    result = rego.validating.validate(pod_request(pod()))
    assert result.warnings == ["no-latest: pods should have labels"]
    assert result.audit_annotations[ANNOTATION_PREFIX + "warned-by"] == "no-latest"
    assert result.audit_annotations[ANNOTATION_PREFIX + "decision"] == "allowed"


def test_patches_apply_with_parameters_and_validation_sees_the_result(rego: RegoAdmission) -> None:
    chain = AdmissionChain([rego.mutating], [rego.validating])
    result = chain.admit(pod_request(pod()))
    assert result.object["metadata"]["labels"] == {"team": "platform"}
    assert result.warnings == []  # the label the patch added silences the warning
    assert result.audit_annotations[ANNOTATION_PREFIX + "mutated-by"] == "default-team"


def test_a_patch_may_produce_what_the_policies_then_deny(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5))
    admission.set_policies(policies(engine, tmp_path, default_team=DEFAULT_TEAM), {"default-team": {"team": "root"}})
    with pytest.raises(AdmissionError, match="default-team: team root is reserved"):
        AdmissionChain([admission.mutating], [admission.validating]).admit(pod_request(pod()))


@pytest.mark.parametrize(("operation", "why"), [
    ('{"op": "replace", "path": "/metadata/name", "value": "other"}', "changes the object's apiVersion, kind, name"),
    ('{"op": "remove", "path": "/spec/nothing"}', "its patch does not apply"),
])
def test_a_bad_patch_denies(engine: EmbeddedOpaEngine, tmp_path: Path, operation: str, why: str) -> None:
    source = f"package securekube.admission.bad_patch\n\ndeny := set()\n\npatch contains {operation} if true\n"
    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5))
    admission.set_policies(policies(engine, tmp_path, bad_patch=source))
    with pytest.raises(AdmissionError) as denied:
        admission.mutating.admit(pod_request(pod()))
    assert "admission policy bad-patch could not decide" in denied.value.message
    assert why in denied.value.message


def test_an_evaluation_error_denies_without_quoting_the_input(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    source = ('package securekube.admission.regex_check\n\ndeny contains "bad" if {\n'
              '\tregex.match(input.request.object.data.pattern, "x")\n}\n')
    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5))
    admission.set_policies(policies(engine, tmp_path, regex_check=source))
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "team-a"},
              "data": {"pattern": "[z-a]SECRET-VALUE"}}
    with pytest.raises(AdmissionError) as denied:
        admission.validating.validate(request("secrets", obj=secret, name="db", namespace_name="team-a"))
    message = denied.value.message
    assert message == ('secrets "db" is forbidden: admission policy regex-check could not decide '
                       "(eval_builtin_error at policy.rego:4); the request is denied")
    assert "SECRET" not in str(denied.value.audit_annotations)


def test_a_slow_policy_denies_at_the_timeout(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    slow = ("package securekube.admission.slow\n\ndeny contains \"many\" if {\n"
            "\tcount([x | some x in numbers.range(1, 400000); x % 7 == 0]) < 0\n}\n")
    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=0.02))
    admission.set_policies(policies(engine, tmp_path, slow=slow))
    with pytest.raises(AdmissionError, match=r"admission policy slow could not decide \(no decision within 0.02s\)"):
        admission.validating.validate(pod_request(pod()))


def test_an_undefined_deny_denies(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    source = "package securekube.admission.partial\n\ndeny := {\"x\"} if input.never\n"
    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5))
    admission.set_policies(policies(engine, tmp_path, partial=source))
    with pytest.raises(AdmissionError, match="admission policy partial could not decide \\('deny' is undefined\\)"):
        admission.validating.validate(pod_request(pod()))


@pytest.mark.parametrize(("source", "reason"), [
    ('deny := "no"\n', "'deny' is not a set of messages"),
    ('deny contains "x" if input.never\n\nwarn := {"w"} if input.never\n', "'warn' is undefined"),
    ('deny contains "x" if input.never\n\nwarn := "w"\n', "'warn' is not a set of messages"),
])
def test_a_malformed_answer_denies(engine: EmbeddedOpaEngine, tmp_path: Path, source: str, reason: str) -> None:
    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5))
    admission.set_policies(policies(engine, tmp_path, odd="package securekube.admission.odd\n\n" + source,
                                    no_latest=NO_LATEST))
    with pytest.raises(AdmissionError, match=f"admission policy odd could not decide \\({reason}\\)"):
        admission.validating.validate(pod_request(pod()))


def test_every_policy_answers_in_one_evaluation(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    # Two denying, one warning, one silent, one with parameters: each gets its own messages.
    sources = {
        "first": 'deny contains "first says no" if true\n',
        "second": 'deny contains msg if {\n\tsome msg in ["second says no", "and again"]\n}\n',
        "warner": 'deny contains "never" if input.never\n\nwarn contains "careful" if true\n',
        "quiet": 'deny contains "never" if input.never\n',
        "limit": 'deny contains sprintf("over %d", [input.parameters.max]) if input.parameters.max < 3\n',
    }
    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5))
    admission.set_policies(policies(engine, tmp_path, **{name: f"package securekube.admission.{name}\n\n{rego}"
                                                         for name, rego in sources.items()}), {"limit": {"max": 2}})
    decision = admission.decide(pod_request(pod()))
    assert sorted((f.name, f.action, f.message) for f in decision.findings) == [
        ("first", "deny", "first says no"), ("limit", "deny", "over 2"), ("second", "deny", "and again"),
        ("second", "deny", "second says no"), ("warner", "warn", "careful")]
    assert sorted(decision.policies) == ["first", "limit", "quiet", "second", "warner"]


def test_invalid_rego_is_refused_with_file_line_column_and_nothing_changes(
        rego: RegoAdmission, engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    broken_root = tmp_path / "broken"
    bad = "package securekube.admission.typo\n\ndeny contains msg if {\n\tmsg := countt(input)\n}\n"
    broken = policies(engine, broken_root, typo=bad)
    before = rego.policies
    with pytest.raises(PolicyCompileError, match=r"typo/policy\.rego:4: rego_type_error: undefined function countt"):
        rego.set_policies(broken)
    assert rego.policies == before
    with pytest.raises(AdmissionError, match="no-latest"):
        rego.validating.validate(pod_request(latest_pod()))
    broken_rego = "package k8srequiredlabels\n\nviolation contains x if {\n\tx := [1,\n}\n"
    template = {**TEMPLATE, "spec": {**TEMPLATE["spec"], "targets": [{"target": "admission.k8s.gatekeeper.sh",
                                                                       "rego": broken_rego}]}}
    with pytest.raises(PolicyCompileError) as refused:
        rego.set_templates([template])
    assert re.search(r"ConstraintTemplate/k8srequiredlabels/spec\.targets\[0\]\.rego:5:1: rego_parse_error",
                     str(refused.value))
    assert rego.templates == ()


def test_updates_swap_atomically_under_load(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    first = policies(engine, tmp_path / "a", alpha='package securekube.admission.alpha\n\ndeny contains "A" if true\n')
    second = policies(engine, tmp_path / "b", beta='package securekube.admission.beta\n\ndeny contains "B" if true\n')
    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5))
    admission.set_policies(first)
    messages: set[str] = set()
    stop = threading.Event()

    def ask() -> None:
        while not stop.is_set():
            try:
                admission.validating.validate(pod_request(pod()))
            except AdmissionError as denial:
                messages.add(denial.message)

    threads = [threading.Thread(target=ask) for _ in range(4)]
    for thread in threads:
        thread.start()
    for index in range(10):
        admission.set_policies(second if index % 2 == 0 else first)
    stop.set()
    for thread in threads:
        thread.join()
    assert messages <= {'pods "web" is forbidden: alpha: A', 'pods "web" is forbidden: beta: B'}


# ----------------------------------------------------------------------------- constraints


@pytest.fixture
def gatekeeper(engine: EmbeddedOpaEngine) -> RegoAdmission:
    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5))
    admission.set_templates([TEMPLATE])
    return admission


def test_a_deny_constraint_denies_with_gatekeepers_wording(gatekeeper: RegoAdmission) -> None:
    gatekeeper.set_constraints([constraint("must-have-owner")])
    with pytest.raises(AdmissionError) as denied:
        gatekeeper.validating.validate(pod_request(pod()))
    assert denied.value.message == 'pods "web" is forbidden: [must-have-owner] you must provide labels: {"owner"}'
    assert denied.value.audit_annotations[ANNOTATION_PREFIX + "denied-by"] == "K8sRequiredLabels/must-have-owner"


def test_warn_and_dryrun_constraints_allow(gatekeeper: RegoAdmission) -> None:
    gatekeeper.set_constraints([constraint("owner-warn", "warn"), constraint("owner-dryrun", "dryrun")])
    result = gatekeeper.validating.validate(pod_request(pod()))
    assert result.warnings == ['[owner-warn] you must provide labels: {"owner"}']
    assert result.audit_annotations[ANNOTATION_PREFIX + "dryrun-violations"] == (
        '[{"constraint": "K8sRequiredLabels/owner-dryrun", "message": "you must provide labels: {\\"owner\\"}"}]')


def test_dryrun_messages_about_secrets_are_not_recorded(engine: EmbeddedOpaEngine) -> None:
    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5))
    admission.set_templates([TEMPLATE])
    secret_constraint = constraint("secret-owner", "dryrun")
    secret_constraint["spec"]["match"]["kinds"] = [{"apiGroups": [""], "kinds": ["Secret"]}]
    admission.set_constraints([secret_constraint])
    secret = {"apiVersion": "v1", "kind": "Secret", "metadata": {"name": "db", "namespace": "team-a"}}
    result = admission.validating.validate(request("secrets", obj=secret, name="db", namespace_name="team-a",
                                                   kind="Secret"))
    assert "message not recorded for secrets" in result.audit_annotations[ANNOTATION_PREFIX + "dryrun-violations"]


def test_constraints_see_creates_and_updates_but_not_status_or_deletes(gatekeeper: RegoAdmission) -> None:
    gatekeeper.set_constraints([constraint("must-have-owner")])
    assert gatekeeper.validating.validate(pod_request(pod(), operation="UPDATE", old=pod(), sub_resource="status"))
    assert gatekeeper.validating.validate(pod_request(None, operation="DELETE", old=pod()))
    with pytest.raises(AdmissionError):
        gatekeeper.validating.validate(pod_request(pod(), operation="UPDATE", old=pod(),
                                                   sub_resource="ephemeralcontainers"))


def test_match_selects_by_namespace_and_namespace_labels(gatekeeper: RegoAdmission) -> None:
    gatekeeper.set_constraints([constraint("prod-only", namespaceSelector={"matchLabels": {"env": "prod"}},
                                           excludedNamespaces=["kube-*"])])
    assert gatekeeper.validating.validate(pod_request(pod(), namespace_labels={"env": "dev"}))
    with pytest.raises(AdmissionError):
        gatekeeper.validating.validate(pod_request(pod(), namespace_labels={"env": "prod"}))
    system = pod(ns="kube-system")
    assert gatekeeper.validating.validate(pod_request(system, namespace_labels={"env": "prod"}))


def test_templates_cannot_be_removed_under_their_constraints(gatekeeper: RegoAdmission) -> None:
    gatekeeper.set_constraints([constraint("must-have-owner")])
    with pytest.raises(GatekeeperError,
                       match="constraints would lose their template: K8sRequiredLabels/must-have-owner"):
        gatekeeper.set_templates([])
    assert [t.kind for t in gatekeeper.templates] == ["K8sRequiredLabels"]
    gatekeeper.replace(templates=[], constraints=[])
    assert gatekeeper.validating.validate(pod_request(pod())).warnings == []


def test_inventory_is_fetched_only_when_a_policy_reads_it(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    calls: list[int] = []

    def inventory() -> dict[str, Any]:
        calls.append(1)
        return {"namespace": {"team-a": {"v1": {"ServiceAccount": {"worker": {}}}}}}

    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5), inventory=inventory)
    admission.set_policies(policies(engine, tmp_path / "plain", no_latest=NO_LATEST))
    admission.validating.validate(pod_request(pod()))
    assert calls == []
    referential = """package securekube.admission.sa_exists

deny contains msg if {
	account := object.get(input.request.object.spec, "serviceAccountName", "default")
	not data.inventory.namespace[input.request.namespace]["v1"]["ServiceAccount"][account]
	msg := sprintf("service account %s does not exist", [account])
}
"""
    admission.set_policies(policies(engine, tmp_path / "ref", sa_exists=referential))
    assert admission.validating.validate(pod_request(pod(serviceAccountName="worker")))
    with pytest.raises(AdmissionError, match="service account default does not exist"):
        admission.validating.validate(pod_request(pod()))
    assert len(calls) == 2


def test_a_failing_inventory_denies(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    def broken() -> dict[str, Any]:
        raise ConnectionError("store down")

    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5), inventory=broken)
    admission.set_policies(policies(engine, tmp_path, uses=(
        "package securekube.admission.uses\n\ndeny contains \"x\" if data.inventory.nothing\n")))
    with pytest.raises(AdmissionError, match=r"admission policy inventory could not decide \(the inventory is "
                                             r"unavailable \(ConnectionError\)\)"):
        admission.validating.validate(pod_request(pod()))


def test_decide_reports_everything_for_tools(rego: RegoAdmission) -> None:
    decision = rego.decide(pod_request(latest_pod()))
    assert decision.denied
    assert [(f.name, f.action) for f in decision.findings] == [("no-latest", "deny")]
    assert decision.patches == (("default-team", ({"op": "add", "path": "/metadata/labels",
                                                   "value": {"team": "platform"}},)),)


def test_verify_passes_for_answering_policies(rego: RegoAdmission) -> None:
    rego.verify()


def test_authorization_policies_are_refused(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    authz = policies(engine, tmp_path, no_bob='package securekube.authz.no_bob\n\ndeny contains "x" if false\n')
    with pytest.raises(ValueError, match="no-bob is an authorization policy"):
        RegoAdmission(engine).set_policies(authz)


def test_parameters_for_unknown_policies_are_refused(rego: RegoAdmission, engine: EmbeddedOpaEngine,
                                                    tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="parameters for unknown admission policies: nope"):
        rego.set_policies(rego.policies, {"nope": {}})


def test_an_empty_set_allows_without_asking_the_engine(engine: EmbeddedOpaEngine) -> None:
    result = RegoAdmission(engine).validating.validate(pod_request(pod(), namespace_object=namespace("team-a")))
    assert result.warnings == [] and result.audit_annotations == {}


def test_an_engine_shared_by_two_stages_fails_closed(engine: EmbeddedOpaEngine, tmp_path: Path) -> None:
    first = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5))
    first.set_policies(policies(engine, tmp_path, no_latest=NO_LATEST))
    second = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=5))
    second.set_templates([TEMPLATE])  # replaces the engine's modules behind the first stage's back
    with pytest.raises(AdmissionError, match="the policy engine holds other policies"):
        first.validating.validate(pod_request(pod()))


def test_check_refuses_what_replace_would_without_installing(gatekeeper: RegoAdmission) -> None:
    type_error = {**TEMPLATE, "spec": {**TEMPLATE["spec"], "targets": [{
        "target": "admission.k8s.gatekeeper.sh",
        "rego": 'package k8srequiredlabels\n\nviolation contains {"msg": countt(input)} if true\n'}]}}
    with pytest.raises(PolicyCompileError, match=r"spec\.targets\[0\]\.rego:3: rego_type_error: undefined function "
                                                 r"countt"):
        gatekeeper.check(templates=[type_error])
    gatekeeper.check(constraints=[constraint("must-have-owner")])
    assert gatekeeper.constraints == ()  # checked, not installed
    with pytest.raises(GatekeeperError, match="no ConstraintTemplate defines kind 'K8sOther'"):
        gatekeeper.check(constraints=[{**constraint("x"), "kind": "K8sOther"}])


def test_the_standard_chain_patches_before_pod_security_and_policies_judge(rego: RegoAdmission,
                                                                          tmp_path: Path) -> None:
    registry = Registry(SqliteStorage(tmp_path / "state.db"), lambda resource, group: IdentityTransformer())
    chain = standard_chain(rego=rego, pod_security=PodSecurityAdmission(), node_restriction=NodeRestriction(),
                           policy_objects=PolicyObjects(registry, rego))
    assert chain.stage_names == ("OPAMutation", "NodeRestriction", "PodSecurity", "PolicyObjects", "OPAValidation")
    result = chain.admit(pod_request(pod(), namespace_labels={"pod-security.kubernetes.io/warn": "baseline"}))
    assert result.object["metadata"]["labels"] == {"team": "platform"}
    assert result.audit_annotations["pod-security.kubernetes.io/enforce-policy"] == "privileged:latest"
    with pytest.raises(AdmissionError, match="no-latest: container \"web\" uses :latest"):
        chain.admit(pod_request(latest_pod()))
