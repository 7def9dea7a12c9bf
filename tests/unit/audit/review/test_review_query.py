"""Audit queries: each filter on real-format upstream events, one row per request, and the raw-line
pre-filter giving exactly what the full check gives."""
from __future__ import annotations

import io
import json
import random
from datetime import datetime, timezone

import pytest

from securekube.audit.review.problems import ReadProblems
from securekube.audit.review.query import CodeRange, QueryError, QueryFilter, ResourceSpec, select
from securekube.audit.review.reader import read_events
from securekube.audit.review.stages import one_per_request

# The requests of upstream-kube-apiserver.log by the last hex digits of their auditIDs.
ALICE_SECRET, WATCH, BOB_DENIED, FAILED_AUTHN, HEALTHZ, CRB_CREATE = "01", "02", "03", "04", "05", "06"
IMPERSONATED, EXEC, POD_DELETE, DEPLOY_PATCH, NODES_DENIED, VERSION = "07", "08", "09", "10", "11", "12"


def requests(fixtures, all_stages: bool = False, **filters) -> list[str]:
    records = select([str(fixtures / "upstream-kube-apiserver.log")], QueryFilter(**filters), ReadProblems(),
                     all_stages=all_stages)
    return [r.event["auditID"][-2:] for r in records]


@pytest.mark.parametrize("filters, expected", [
    ({}, [ALICE_SECRET, BOB_DENIED, FAILED_AUTHN, HEALTHZ, CRB_CREATE, IMPERSONATED, POD_DELETE, DEPLOY_PATCH,
          NODES_DENIED, VERSION, WATCH, EXEC]),  # unfinished requests (a watch, an exec session) last
    ({"users": ("alice",)}, [ALICE_SECRET, IMPERSONATED]),  # also when impersonated
    ({"users": ("kubernetes-admin",)}, [IMPERSONATED]),
    ({"groups": ("sre",)}, [CRB_CREATE, EXEC]),
    ({"verbs": ("get",), "resources": (ResourceSpec("secrets"),)}, [ALICE_SECRET, BOB_DENIED]),
    ({"verbs": ("get", "list")},
     [ALICE_SECRET, BOB_DENIED, FAILED_AUTHN, HEALTHZ, IMPERSONATED, NODES_DENIED, VERSION]),
    ({"resources": (ResourceSpec("pods"),)}, [IMPERSONATED, POD_DELETE, WATCH, EXEC]),
    ({"resources": (ResourceSpec("pods", subresource="exec"),)}, [EXEC]),
    ({"subresources": ("exec",)}, [EXEC]),
    ({"resources": (ResourceSpec("deployments", group="apps"),)}, [DEPLOY_PATCH]),
    ({"resources": (ResourceSpec("deployments", group="extensions"),)}, []),
    ({"namespaces": ("kube-system",)}, [FAILED_AUTHN, WATCH]),
    ({"names": ("web-1",)}, [POD_DELETE, EXEC]),
    ({"codes": (CodeRange.parse("4xx"),)}, [BOB_DENIED, FAILED_AUTHN, NODES_DENIED]),
    ({"codes": (CodeRange.parse("401"), CodeRange.parse("201"))}, [FAILED_AUTHN, CRB_CREATE]),
    ({"codes": (CodeRange.parse("5xx"),)}, []),
    ({"decisions": ("forbid",)}, [BOB_DENIED, NODES_DENIED]),
    ({"source_ips": ("203.0.113.7",)}, [FAILED_AUTHN]),
    ({"user_agent": "curl/"}, [FAILED_AUTHN]),
    ({"user_agent": "darwin"}, [BOB_DENIED]),
    ({"since": datetime(2024, 5, 1, 10, 6, tzinfo=timezone.utc),
      "until": datetime(2024, 5, 1, 10, 10, tzinfo=timezone.utc)}, [IMPERSONATED, POD_DELETE, EXEC]),
])
def test_filters_on_upstream_events(fixtures, filters, expected):
    assert requests(fixtures, **filters) == expected


def test_all_stages_gives_every_matching_event(fixtures):
    assert requests(fixtures, all_stages=True, users=("alice",)) == [ALICE_SECRET, ALICE_SECRET, IMPERSONATED,
                                                                      IMPERSONATED]


def test_a_request_is_shown_by_its_final_event(fixtures):
    [record] = select([str(fixtures / "upstream-kube-apiserver.log")], QueryFilter(users=("bob",)), ReadProblems())
    assert record.event["stage"] == "ResponseComplete" and record.event["responseStatus"]["code"] == 403


@pytest.mark.parametrize("text, spec", [
    ("pods", ResourceSpec("pods")),
    ("pods/exec", ResourceSpec("pods", None, "exec")),
    ("deployments.apps", ResourceSpec("deployments", "apps")),
    ("deployments.apps/scale", ResourceSpec("deployments", "apps", "scale")),
    ("widgets.example.com", ResourceSpec("widgets", "example.com")),
])
def test_resource_forms(text, spec):
    assert ResourceSpec.parse(text) == spec


@pytest.mark.parametrize("bad", ["", "pods/", "/exec", "pods/exec/extra", "po ds"])
def test_bad_resource_forms_are_refused(bad):
    with pytest.raises(QueryError, match="cannot read resource"):
        ResourceSpec.parse(bad)


@pytest.mark.parametrize("bad", ["4x", "600", "abc", "40"])
def test_bad_codes_are_refused(bad):
    with pytest.raises(QueryError, match="cannot read response code"):
        CodeRange.parse(bad)


def test_unknown_decision_and_empty_values_are_refused():
    with pytest.raises(QueryError, match="unknown decision"):
        QueryFilter(decisions=("deny",))
    with pytest.raises(QueryError, match="empty value"):
        QueryFilter(users=("",))


# ----------------------------------------------------------------------------- pre-filter exactness


def tricky_corpus(make_event) -> list[str]:
    """Lines where the literal value is absent although the event matches, or present although it does not."""
    escaped_user = make_event("e1", user="alice").replace('"username":"alice"', '"username":"\\u0061lice"')
    escaped_verb = make_event("e2").replace('"verb":"get"', '"verb":"g\\u0065t"')
    slash_agent = make_event("e3", agent="kubectl/v1.30").replace("kubectl/v1.30", "kubectl\\/v1.30")
    return [
        make_event("p1"),
        make_event("p2", user="bob"),
        make_event("p3", user="alice", verb="list"),
        make_event("p4", user="bob", extra={"requestObject": {"note": "alice get secrets"}}),  # values only in a body
        make_event("p5", user="alice", resource="configmaps", name="secrets"),  # "secrets" as a name
        make_event("p6", user="alice", impersonated="carol"),
        make_event("p7", user="carol", impersonated="alice", decision="forbid", code=403),
        make_event("p8", separators=(", ", ": ")),  # json.dumps default spacing
        make_event("p9", user="m\u00fcller", ensure_ascii=True),  # non-ASCII written as \u escapes
        make_event("p10", user="m\u00fcller", ensure_ascii=False),  # ... or raw UTF-8
        make_event("p11", stage="RequestReceived", code=None, decision=None),
        make_event("p12", agent="kubectl/v1.30 \"quoted\""),
        escaped_user, escaped_verb, slash_agent,
    ]


FILTERS = [
    QueryFilter(users=("alice",)),
    QueryFilter(users=("alice",), verbs=("get",), resources=(ResourceSpec("secrets"),)),
    QueryFilter(users=("m\u00fcller",)),
    QueryFilter(users=("alice", "bob"), verbs=("get",)),
    QueryFilter(decisions=("forbid",), users=("alice",)),
    QueryFilter(names=("secrets",)),
    QueryFilter(user_agent="kubectl/v1.30"),
    QueryFilter(user_agent='"quoted"'),
    QueryFilter(verbs=("get",), codes=(CodeRange.parse("2xx"),)),
]


@pytest.mark.parametrize("query", FILTERS, ids=lambda q: ",".join(f"{k}" for k, v in vars(q).items() if v))
def test_pre_filter_selects_exactly_what_the_full_check_selects(tmp_path, make_event, query):
    lines = tricky_corpus(make_event)
    shuffler = random.Random(5)
    # Several orders, so the block-level search meets matches at the start, the end and in between.
    for _ in range(6):
        shuffler.shuffle(lines)
        path = tmp_path / "audit.log"
        path.write_text("\n".join(lines) + "\n")
        exact = query.predicate()
        everything = [r.event["auditID"] for r in read_events([str(path)], ReadProblems()) if exact(r.event)]
        filtered = [r.event["auditID"] for r in read_events([str(path)], ReadProblems(), query.line_filter())
                    if exact(r.event)]
        assert filtered == everything


def test_pre_filter_finds_escaped_values(tmp_path, make_event):
    path = tmp_path / "audit.log"
    path.write_text("\n".join(tricky_corpus(make_event)) + "\n")
    found = select([str(path)], QueryFilter(users=("alice",), verbs=("get",)), ReadProblems())
    assert {r.event["auditID"] for r in found} == {"p1", "p5", "p6", "p7", "p8", "p11", "p12", "e1", "e2", "e3"}


def test_one_per_request_and_stages(make_event):
    lines = [make_event("a", stage="RequestReceived", code=None, decision=None),
             make_event("b", stage="RequestReceived", code=None, decision=None),
             make_event("a", stage="ResponseComplete"),
             make_event("c", stage="ResponseStarted", code=401, decision=None, user=""),
             json.dumps({"kind": "Event", "apiVersion": "audit.k8s.io/v1", "stage": "ResponseComplete", "verb": "get"})]

    records = list(one_per_request(read_events(["-"], ReadProblems(), stdin=io.BytesIO("\n".join(lines).encode())),
                                   ReadProblems()))
    assert [(r.event.get("auditID"), r.event["stage"]) for r in records] == [
        ("a", "ResponseComplete"), ("c", "ResponseStarted"), (None, "ResponseComplete"), ("b", "RequestReceived")]
