"""Audit summary over the upstream fixture: identities, denials, sensitive actions, failed authn, sources."""
from __future__ import annotations

import json

from securekube.audit.review.problems import ReadProblems
from securekube.audit.review.stages import requests
from securekube.audit.review.summary import (
    DenialCount,
    IdentityCount,
    SecretReadCount,
    SourceCount,
    Summary,
    summarize,
)

DEPLOYER = "system:serviceaccount:ci:deployer"


def summary_of(*paths, top: int = 10) -> Summary:
    problems = ReadProblems()
    return summarize((r.event for r in requests([str(p) for p in paths], problems)), top)


def test_counts_requests_not_lines(fixtures):
    summary = summary_of(fixtures / "upstream-kube-apiserver.log")
    assert summary.requests == 12
    assert (summary.first, summary.last) == ("2024-05-01T10:00:01.000100Z", "2024-05-01T10:11:30.000000Z")


def test_top_users_and_service_accounts(fixtures):
    summary = summary_of(fixtures / "upstream-kube-apiserver.log")
    assert summary.service_accounts == (IdentityCount(DEPLOYER, 4, 1),)
    assert summary.users == (
        IdentityCount("alice", 1, 0), IdentityCount("bob", 1, 1), IdentityCount("carol", 1, 0),
        IdentityCount("dave", 1, 0), IdentityCount("kubernetes-admin (as alice)", 1, 0),
        IdentityCount("system:anonymous", 1, 0), IdentityCount("system:kube-controller-manager", 1, 0))
    assert summary.identities == 8
    assert summary.most_denied == (IdentityCount("bob", 1, 1), IdentityCount(DEPLOYER, 4, 1))


def test_denials_secret_reads_exec_and_policy_changes(fixtures):
    summary = summary_of(fixtures / "upstream-kube-apiserver.log")
    assert summary.denials_total == 2
    assert set(summary.denials) == {DenialCount("bob", "get", "secrets", "team-a", 1),
                                    DenialCount(DEPLOYER, "list", "nodes", "", 1)}
    # The unauthenticated list of secrets is a failed authentication, not a read.
    assert summary.secret_reads_total == 2
    assert set(summary.secret_reads) == {SecretReadCount("alice", "team-a", ("get",), 1, 0),
                                         SecretReadCount("bob", "team-a", ("get",), 1, 1)}
    [session] = summary.exec_attach
    assert (session.user, session.verb, session.resource, session.namespace, session.name) == (
        "carol", "create", "pods/exec", "team-a", "web-1")
    [change] = summary.policy_changes
    assert (change.user, change.verb, change.resource, change.name, change.code) == (
        "dave", "create", "clusterrolebindings.rbac.authorization.k8s.io", "ci-admin", 201)


def test_failed_authentication_and_sources(fixtures):
    summary = summary_of(fixtures / "upstream-kube-apiserver.log")
    assert summary.failed_authentication_total == 1
    [failed] = summary.failed_authentication
    assert (failed.ip, failed.count, failed.user_agents) == ("203.0.113.7", 1, ("curl/8.5.0",))
    assert summary.source_ips[0] == SourceCount("10.244.1.17", 4, 1, 0)
    assert SourceCount("203.0.113.7", 1, 0, 1) in summary.source_ips


def test_rankings_are_cut_at_top(fixtures):
    summary = summary_of(fixtures / "upstream-kube-apiserver.log", top=2)
    assert len(summary.users) == 2 and len(summary.source_ips) == 2


def test_activity_per_minute_by_outcome(fixtures):
    activity = summary_of(fixtures / "upstream-kube-apiserver.log").activity
    by_minute = {b.start.strftime("%H:%M"): (b.allowed, b.denied, b.failed_authentication, b.errors) for b in activity}
    assert by_minute["10:01"] == (0, 1, 0, 0)
    assert by_minute["10:02"] == (1, 0, 1, 0)
    assert sum(b.total for b in activity) == 12


def test_json_form_is_plain_data(fixtures):
    data = summary_of(fixtures / "upstream-kube-apiserver.log").as_dict()
    assert "activity" not in data
    assert json.loads(json.dumps(data))["denials_total"] == 2


def test_securekube_log_summary_skips_checkpoints(fixtures):
    summary = summary_of(fixtures / "securekube.log")
    assert summary.requests == 3
    assert [u.name for u in summary.users] == ["heidi"]
    assert summary.denials_total == 1
