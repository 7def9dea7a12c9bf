"""Every folder in policies/: its Rego tests pass in the real engine and its samples behave.

As in gatekeeper-library's CI, a folder without tests or samples fails. The samples are also
run through the OPA authorizer itself, so a policy cannot pass here on an input shape the
authorizer never sends.
"""
from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest
import yaml

from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes, Verdict
from securekube.authz.opa import OPAAuthorizer, OPAAuthorizerConfig
from securekube.policy.embedded import EmbeddedOpaEngine
from securekube.policy.loader import Policy, load_policies, read_policies
from securekube.policy.testing import check_policy

POLICIES = Path(__file__).resolve().parents[3] / "policies"
FOLDERS = sorted(p.name for p in POLICIES.iterdir() if p.is_dir() and not p.name.startswith((".", "_")))
# A decision on the request path must come well inside the authorizer's default 100 ms; a
# generous timeout here keeps a loaded test machine from failing the sample checks.
SAMPLE_TIMEOUT = 5.0


def the_policy(engine: EmbeddedOpaEngine, name: str, root: Path = POLICIES) -> Policy:
    return next(p for p in read_policies(root, engine) if p.name == name)


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


def test_policies_are_shipped() -> None:
    assert len(FOLDERS) >= 2


def test_the_loader_loads_every_folder(engine: EmbeddedOpaEngine) -> None:
    policies = load_policies(POLICIES, engine)
    assert [p.name for p in policies] == FOLDERS
    authorizer = OPAAuthorizer(engine, [p for p in policies if p.is_authorization])
    authorizer.verify()


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
