"""The OPA authorizer: denies what a policy denies, abstains otherwise, and never allows.

Fail closed: an engine error, a timeout or an answer of the wrong shape is a DENY.
"""
from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pytest

from securekube.authn.interfaces import UserInfo
from securekube.authz.interfaces import Attributes, Decision, Verdict
from securekube.authz.opa import OPAAuthorizer, OPAAuthorizerConfig, subject_access_review
from securekube.authz.union import UnionAuthorizer
from securekube.policy.embedded import EmbeddedOpaEngine, embedded_engine_available
from securekube.policy.interfaces import PolicyError, PolicyTimeout, QueryResult
from securekube.policy.loader import Policy, RegoModule, load_policies
from tests.conftest import require

POLICIES = Path(__file__).resolve().parents[3] / "policies"
SIDECAR = "system:serviceaccount:audit-system:detection-sidecar"
ADMIN = UserInfo(username="admin", groups=("system:masters", "system:authenticated"))


def policy(name: str, package: str | None = None) -> Policy:
    package = package or "securekube.authz." + name.replace("-", "_")
    module = RegoModule(path=Path(f"{name}/policy.rego"), source="", package=tuple(package.split(".")),
                        rules=("deny",))
    return Policy(name=name, directory=Path(name), module=module, tests=None, allowed_samples=(),
                  disallowed_samples=())


def read_secret(user: UserInfo, namespace: str = "audit-system") -> Attributes:
    return Attributes(user=user, verb="get", resource_request=True, namespace=namespace, api_version="v1",
                      resource="secrets", name="checkpoint-signing-key")


class FakeEngine:
    """An engine that answers every query with `answer()` and remembers what it was asked."""

    def __init__(self, answer: Callable[[], QueryResult]) -> None:
        self._answer = answer
        self.asked: list[tuple[str, Any, float]] = []

    def load(self, modules: Mapping[str, str]) -> None:
        raise AssertionError("the authorizer never loads modules")

    def set_data(self, data: Mapping[str, Any]) -> None:
        raise AssertionError("the authorizer never sets data")

    def evaluate(self, query: str, input_doc: Any = None, *, timeout: float) -> QueryResult:
        self.asked.append((query, input_doc, timeout))
        return self._answer()


def decide(answer: Callable[[], QueryResult], *names: str) -> Decision:
    authorizer = OPAAuthorizer(FakeEngine(answer), [policy(n) for n in names or ("a",)])
    return authorizer.authorize(read_secret(ADMIN))


def raise_(exc: Exception) -> Callable[[], QueryResult]:
    def answer() -> QueryResult:
        raise exc
    return answer


# ------------------------------------------------------------------ decisions (no engine needed)


def test_messages_deny_with_the_policy_name() -> None:
    decision = decide(lambda: ({"deny": {"a": ["no", "never"], "b": []}},), "a", "b")
    assert decision == Decision(Verdict.DENY, "a: no; a: never")


def test_no_messages_is_no_opinion() -> None:
    assert decide(lambda: ({"deny": {"a": [], "b": []}},), "a", "b") == Decision(Verdict.NO_OPINION)


@pytest.mark.parametrize("error", [PolicyError("eval_error: boom"), PolicyTimeout("did not finish within 0.1s")])
def test_an_engine_failure_denies(error: PolicyError) -> None:
    decision = decide(raise_(error))
    assert decision == Decision(Verdict.DENY, f"opa: policy evaluation failed: {error}")


def test_an_engine_that_breaks_its_contract_denies() -> None:
    assert decide(raise_(RuntimeError("bug"))) == Decision(Verdict.DENY, "opa: policy evaluation failed: RuntimeError")


@pytest.mark.parametrize("answer, reason", [
    ((), "opa: the policies gave no answer"),
    (({"deny": None},), "opa: the policies gave no answer"),
    (({"deny": {"a": []}}, {"deny": {"a": []}}), "opa: the policies gave no answer"),
    (({"deny": {}},), "a: 'deny' is undefined"),
    (({"deny": {"a": True}},), "a: 'deny' is not a set of messages"),
    (({"deny": {"a": "no"}},), "a: 'deny' is not a set of messages"),
])
def test_an_undefined_or_malformed_answer_denies(answer: QueryResult, reason: str) -> None:
    assert decide(lambda: answer) == Decision(Verdict.DENY, reason)


@pytest.mark.parametrize("answer", [
    ({"deny": {"a": []}, "allow": True},), ({"deny": {"a": [], "allow": True}},), ({"allow": True},),
    ({"deny": {"a": [False]}},), ({"deny": {"a": [{"allowed": True}]}},),
])
def test_no_answer_ever_allows(answer: QueryResult) -> None:
    assert decide(lambda: answer).verdict is not Verdict.ALLOW


def test_non_string_and_unprintable_messages_are_quoted() -> None:
    decision = decide(lambda: ({"deny": {"a": [{"code": 7}, "bad\nname"]}},))
    assert decision == Decision(Verdict.DENY, 'a: {"code": 7}; a: "bad\\nname"')


def test_the_timeout_is_passed_to_the_engine() -> None:
    engine = FakeEngine(lambda: ({"deny": {"a": []}},))
    OPAAuthorizer(engine, [policy("a")]).authorize(read_secret(ADMIN))
    OPAAuthorizer(engine, [policy("a")], OPAAuthorizerConfig(eval_timeout=0.25)).authorize(read_secret(ADMIN))
    assert [timeout for _, _, timeout in engine.asked] == [0.1, 0.25]


def test_only_authorization_policies_are_accepted() -> None:
    with pytest.raises(ValueError, match="not authorization policies"):
        OPAAuthorizer(FakeEngine(tuple), [policy("a"), policy("pods", "securekube.admission.pods")])
    with pytest.raises(ValueError, match="not authorization policies"):
        OPAAuthorizer(FakeEngine(tuple), [policy("deep", "securekube.authz.x.deep")])
    with pytest.raises(ValueError, match="at least one"):
        OPAAuthorizer(FakeEngine(tuple), [])


def test_the_input_is_a_subject_access_review_without_empty_fields() -> None:
    user = UserInfo(username="jane", uid="u-1", groups=("dev",), extra={"scopes": ("a", "b")})
    resource = Attributes(user=user, verb="list", resource_request=True, api_group="apps", api_version="v1",
                          resource="deployments")
    assert subject_access_review(resource) == {
        "apiVersion": "authorization.k8s.io/v1",
        "kind": "SubjectAccessReview",
        "spec": {"user": "jane", "uid": "u-1", "groups": ["dev"], "extra": {"scopes": ["a", "b"]},
                 "resourceAttributes": {"verb": "list", "group": "apps", "version": "v1", "resource": "deployments"}},
    }
    non_resource = Attributes(user=UserInfo(username="jane"), verb="get", resource_request=False, path="/version")
    assert subject_access_review(non_resource)["spec"] == {
        "user": "jane", "nonResourceAttributes": {"path": "/version", "verb": "get"},
    }


# ------------------------------------------------------------------ with the real engine


@pytest.fixture
def engine() -> Iterator[EmbeddedOpaEngine]:
    require(embedded_engine_available(),
            "the embedded OPA engine needs opa-golib-python-bindings (module opa_bindings): "
            ".venv/bin/pip install --ignore-requires-python opa-golib-python-bindings")
    with EmbeddedOpaEngine() as opa:
        yield opa


@pytest.fixture
def shipped(engine: EmbeddedOpaEngine) -> OPAAuthorizer:
    policies = [p for p in load_policies(POLICIES, engine) if p.is_authorization]
    authorizer = OPAAuthorizer(engine, policies)
    authorizer.verify()
    return authorizer


def test_system_masters_cannot_read_audit_system_secrets(shipped: OPAAuthorizer) -> None:
    decision = shipped.authorize(read_secret(ADMIN))
    assert decision == Decision(
        Verdict.DENY, f"audit-system-secrets: only {SIDECAR} may read secrets in namespace audit-system"
    )


def test_the_sidecar_is_left_to_rbac(shipped: OPAAuthorizer) -> None:
    sidecar = UserInfo(username=SIDECAR, groups=("system:serviceaccounts", "system:serviceaccounts:audit-system"))
    assert shipped.authorize(read_secret(sidecar)) == Decision(Verdict.NO_OPINION)


def test_ordinary_requests_are_left_to_rbac(shipped: OPAAuthorizer) -> None:
    assert shipped.authorize(read_secret(ADMIN, namespace="default")).verdict is Verdict.NO_OPINION
    healthz = Attributes(user=ADMIN, verb="get", resource_request=False, path="/healthz")
    assert shipped.authorize(healthz).verdict is Verdict.NO_OPINION


def test_a_policy_denial_wins_over_an_rbac_grant(shipped: OPAAuthorizer) -> None:
    class AllowAll:
        def authorize(self, attrs: Attributes) -> Decision:
            return Decision(Verdict.ALLOW, "rbac: allowed by ClusterRoleBinding cluster-admin")

    chain = UnionAuthorizer(shipped, AllowAll())
    impersonate_masters = Attributes(user=ADMIN, verb="impersonate", resource_request=True, resource="groups",
                                     name="system:masters")
    decision = chain.authorize(impersonate_masters)
    assert decision == Decision(Verdict.DENY, "deny-impersonating-masters: nobody may impersonate group system:masters")
    assert chain.authorize(read_secret(ADMIN, namespace="default")).verdict is Verdict.ALLOW


def test_policies_see_exactly_the_subject_access_review(engine: EmbeddedOpaEngine) -> None:
    echo = "package securekube.authz.echo\n\ndeny contains json.marshal(input)\n"
    engine.load({"echo.rego": echo})
    attrs = read_secret(UserInfo(username="jane", uid="u-1", groups=("dev",), extra={"k": ("v",)}))
    decision = OPAAuthorizer(engine, [policy("echo")]).authorize(attrs)
    assert decision.verdict is Verdict.DENY
    assert json.loads(decision.reason.removeprefix("echo: ")) == subject_access_review(attrs)


def test_a_slow_policy_denies_at_the_timeout(engine: EmbeddedOpaEngine) -> None:
    slow = ("package securekube.authz.slow\n\n"
            "deny contains \"many\" if count([x | some x in numbers.range(1, 150000); x % 7 == 0]) < 0\n")
    engine.load({"slow.rego": slow})
    authorizer = OPAAuthorizer(engine, [policy("slow")], OPAAuthorizerConfig(eval_timeout=0.02))
    started = time.monotonic()
    decision = authorizer.authorize(read_secret(ADMIN))
    assert time.monotonic() - started < 0.5
    assert decision == Decision(
        Verdict.DENY, "opa: policy evaluation failed: policy evaluation did not finish within 0.02s"
    )


def test_an_evaluation_error_denies_and_names_the_file(engine: EmbeddedOpaEngine) -> None:
    conflict = ("package securekube.authz.conflict\n\nlevel := 1\n\nlevel := 2 if input.spec.user == \"admin\"\n\n"
                "deny contains \"high\" if level > 1\n")
    engine.load({"policies/conflict/policy.rego": conflict})
    decision = OPAAuthorizer(engine, [policy("conflict")]).authorize(read_secret(ADMIN))
    assert decision.verdict is Verdict.DENY
    assert "policies/conflict/policy.rego:5: eval_conflict_error" in decision.reason


def test_a_policy_without_deny_in_the_engine_denies_and_fails_verification(engine: EmbeddedOpaEngine) -> None:
    engine.load({"other.rego": "package securekube.authz.other\n\nallow := true\n"})
    authorizer = OPAAuthorizer(engine, [policy("other"), policy("missing")])
    assert authorizer.authorize(read_secret(ADMIN)) == Decision(
        Verdict.DENY, "other: 'deny' is undefined; missing: 'deny' is undefined"
    )
    with pytest.raises(PolicyError, match="not loaded or without 'deny': other, missing"):
        authorizer.verify()
