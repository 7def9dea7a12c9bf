"""Audit timeline: the story of one object or one identity, in time order, with any KIND spelling."""
from __future__ import annotations

import pytest

from securekube.audit.review.problems import ReadProblems
from securekube.audit.review.query import QueryError
from securekube.audit.review.timeline import ObjectTarget, plural_candidates, timeline


def story(paths, **target) -> list[tuple[str, str, str, int | None, str]]:
    entries = timeline([str(p) for p in paths], ReadProblems(), **target)
    return [(e.time[11:19], e.user, e.verb, e.code, e.decision) for e in entries]


@pytest.mark.parametrize("kind", ["pods", "Pod", "pod"])
def test_object_story_with_subresources_in_time_order(fixtures, kind):
    assert story([fixtures / "upstream-kube-apiserver.log"], target=ObjectTarget.parse(f"{kind}/team-a/web-1")) == [
        ("10:07:00", "carol", "create", 101, "allow"),  # the exec session (still open)
        ("10:09:00", "system:serviceaccount:ci:deployer", "delete", 200, "allow"),
    ]


def test_secret_story_shows_the_denial(fixtures):
    secret = ObjectTarget.parse("Secret/team-a/db-password")
    assert story([fixtures / "upstream-kube-apiserver.log"], target=secret) == [
        ("10:00:01", "alice", "get", 200, "allow"), ("10:01:00", "bob", "get", 403, "forbid")]


def test_cluster_scoped_and_grouped_objects(fixtures):
    log = [fixtures / "upstream-kube-apiserver.log"]
    assert story(log, target=ObjectTarget.parse("clusterrolebindings/ci-admin")) == [
        ("10:05:00", "dave", "create", 201, "allow")]
    assert story(log, target=ObjectTarget.parse("deployments.apps/team-a/web")) == [
        ("10:10:00", "system:serviceaccount:ci:deployer", "patch", 200, "allow")]
    assert story(log, target=ObjectTarget.parse("Deployment.extensions/team-a/web")) == []


def test_user_story_includes_impersonation(fixtures):
    entries = timeline([str(fixtures / "upstream-kube-apiserver.log")], ReadProblems(), user="alice")
    assert [(e.user, e.verb, e.object) for e in entries] == [
        ("alice", "get", "secrets team-a/db-password"), ("kubernetes-admin (as alice)", "list", "pods team-a/*")]


def test_story_is_sorted_by_time_across_files_given_in_any_order(make_event, write_log):
    late = write_log("b.log", make_event("2", user="eve", time="2024-05-01T10:00:09Z"))
    early = write_log("a.log", make_event("1", user="eve", time="2024-05-01T10:00:01Z"),
                      make_event("3", user="eve", time="2024-05-01T10:00:05Z"))
    assert [t for t, *_ in story([late, early], user="eve")] == ["10:00:01", "10:00:05", "10:00:09"]


@pytest.mark.parametrize("kind, expected", [
    ("NetworkPolicy", {"networkpolicy", "networkpolicies"}),
    ("Ingress", {"ingress", "ingresses"}),
    ("endpoints", {"endpoints", "endpointses"}),
    ("Secret", {"secret", "secrets"}),
])
def test_kind_spellings(kind, expected):
    assert plural_candidates(kind) == expected


@pytest.mark.parametrize("bad", ["pods", "pods/a/b/c", "pods//web", "po ds/ns/web"])
def test_bad_object_forms_are_refused(bad):
    with pytest.raises(QueryError, match="cannot read"):
        ObjectTarget.parse(bad)


def test_exactly_one_target():
    with pytest.raises(QueryError, match="exactly one"):
        timeline(["-"], ReadProblems())
