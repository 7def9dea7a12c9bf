"""Every folder in policies/: its Rego tests pass in the real engine and its samples behave.

As in gatekeeper-library's CI, a folder without tests or samples fails. The samples are also
run through the stage that serves them - the OPA authorizer for authorization policies, the Rego
admission stage for admission policies - so a policy cannot pass here on an input shape that
stage never sends.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from securekube.admission.interfaces import AdmissionError
from securekube.admission.opa import RegoAdmission, RegoAdmissionConfig
from securekube.admission.review import request_from_review
from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes, Verdict
from securekube.authz.opa import OPAAuthorizer, OPAAuthorizerConfig
from securekube.policy.embedded import EmbeddedOpaEngine
from securekube.policy.admission_input import as_admission_review
from securekube.policy.loader import Policy, load_policies, read_policies, read_policy
from securekube.policy.testing import check_policy

POLICIES = Path(__file__).resolve().parents[3] / "policies"
FOLDERS = sorted(p.name for p in POLICIES.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
# A decision on the request path must come well inside the authorizer's default 100 ms; a
# generous timeout here keeps a loaded test machine from failing the sample checks.
SAMPLE_TIMEOUT = 5.0


def the_policy(engine: EmbeddedOpaEngine, name: str, root: Path = POLICIES) -> Policy:
    return read_policy(root / name, engine)


def attributes_from_review(review: dict[str, Any]) -> Attributes:
    """The request a SubjectAccessReview sample describes, as the authorizers see it."""
    spec = review["spec"]
    user = UserInfo(username=spec.get("user", ""), uid=spec.get("uid", ""), groups=tuple(spec.get("groups", ())),
                    extra={k: tuple(v) for k, v in spec.get("extra", {}).items()})
    if "nonResourceAttributes" in spec:
        attrs = spec["nonResourceAttributes"]
        return Attributes(user=user, verb=attrs.get("verb", ""), resource_request=False, path=attrs.get("path", ""))
    attrs = spec["resourceAttributes"]
    return Attributes(user=user, verb=attrs.get("verb", ""), resource_request=True,
                      namespace=attrs.get("namespace", ""), api_group=attrs.get("group", ""),
                      api_version=attrs.get("version", ""), resource=attrs.get("resource", ""),
                      subresource=attrs.get("subresource", ""), name=attrs.get("name", ""))


SHIPPED_ADMISSION_POLICIES = {
    "allowed-image-registries", "no-latest-tag", "resource-limits-required", "no-host-access", "run-as-non-root",
    "seccomp-not-unconfined", "no-exec-in-protected-namespaces", "protect-audit-namespace",
}


def test_policies_are_shipped(engine: EmbeddedOpaEngine) -> None:
    assert len(FOLDERS) >= 2
    admission = {p.name for p in read_policies(POLICIES, engine) if p.is_admission}
    assert SHIPPED_ADMISSION_POLICIES <= admission


def test_every_folder_is_an_authorization_or_an_admission_policy(engine: EmbeddedOpaEngine) -> None:
    stray = [p.name for p in read_policies(POLICIES, engine) if not (p.is_authorization or p.is_admission)]
    assert stray == []


def test_the_loader_loads_every_folder(engine: EmbeddedOpaEngine) -> None:
    policies = load_policies(POLICIES, engine)
    assert [p.name for p in policies] == FOLDERS
    authorizer = OPAAuthorizer(engine, [p for p in policies if p.is_authorization])
    authorizer.verify()


def test_the_admission_stage_takes_every_admission_policy_at_once(engine: EmbeddedOpaEngine) -> None:
    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=SAMPLE_TIMEOUT))
    admission.set_policies([p for p in read_policies(POLICIES, engine) if p.is_admission])
    admission.verify()


@pytest.mark.parametrize("name", FOLDERS)
def test_policy_passes_its_tests_and_samples(engine: EmbeddedOpaEngine, name: str) -> None:
    report = check_policy(the_policy(engine, name), engine)
    assert report.passed, "\n".join(report.failures())
    assert any(case.name.startswith("test_") for case in report.cases)


@pytest.mark.parametrize("name", FOLDERS)
def test_samples_decide_the_same_through_the_authorizer(engine: EmbeddedOpaEngine, name: str) -> None:
    policy = the_policy(engine, name)
    if not policy.is_authorization:
        pytest.skip(f"{name} is not an authorization policy")
    engine.load({policy.module.module_name: policy.module.source})
    authorizer = OPAAuthorizer(engine, [policy], OPAAuthorizerConfig(eval_timeout=SAMPLE_TIMEOUT))
    for path, expected in [(p, Verdict.NO_OPINION) for p in policy.allowed_samples] + \
                          [(p, Verdict.DENY) for p in policy.disallowed_samples]:
        decision = authorizer.authorize(attributes_from_review(yaml.safe_load(path.read_text())))
        assert decision.verdict is expected, f"{path.name}: {decision}"
        if expected is Verdict.DENY:
            assert decision.reason.startswith(f"{name}: ")


@pytest.mark.parametrize("name", FOLDERS)
def test_samples_decide_the_same_through_the_admission_stage(engine: EmbeddedOpaEngine, name: str) -> None:
    policy = the_policy(engine, name)
    if not policy.is_admission:
        pytest.skip(f"{name} is not an admission policy")
    admission = RegoAdmission(engine, RegoAdmissionConfig(eval_timeout=SAMPLE_TIMEOUT))
    admission.set_policies([policy])
    for path, expect_denied in [(p, False) for p in policy.allowed_samples] + \
                               [(p, True) for p in policy.disallowed_samples]:
        request = request_from_review(as_admission_review(yaml.safe_load(path.read_text())))
        try:
            admission.validating.validate(request)
        except AdmissionError as denial:
            assert expect_denied, f"{path.name}: {denial.message}"
            assert (denial.code, denial.reason) == (403, "Forbidden")
            assert f"is forbidden: {name}: " in denial.message or denial.message.startswith("forbidden: ")
        else:
            assert not expect_denied, f"{path.name} was allowed"


@pytest.mark.parametrize("name", FOLDERS)
def test_a_policy_that_denies_nothing_fails_its_own_checks(engine: EmbeddedOpaEngine, tmp_path: Path,
                                                           name: str) -> None:
    """The tests and samples of each folder are able to fail: a gutted policy does not pass them."""
    shutil.copytree(POLICIES / name, tmp_path / name)
    package = the_policy(engine, name).module.package_name
    (tmp_path / name / "policy.rego").write_text(f'package {package}\n\ndeny contains "never" if false\n')
    gutted = the_policy(engine, name, tmp_path)
    report = check_policy(gutted, engine)
    assert not report.passed
    failed = {case.name for case in report.cases if not case.passed}
    assert {str(p.relative_to(gutted.directory)) for p in gutted.disallowed_samples} <= failed
    assert any(case.startswith("test_") for case in failed)
