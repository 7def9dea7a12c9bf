"""Label and field selectors: the query-string syntax kubectl sends, and what each one matches."""
from __future__ import annotations

import pytest

from securekube.api.errors import ApiError
from securekube.api.selectors import (
    fields_match,
    label_selector_from_object,
    labels_match,
    parse_field_selector,
    parse_label_selector,
)

WEB_PROD = {"app": "web", "env": "prod"}
WEB_QA = {"app": "web", "env": "qa"}
DB_NO_ENV = {"app": "db"}
NO_LABELS: dict[str, str] = {}
ALL = {"web-prod": WEB_PROD, "web-qa": WEB_QA, "db": DB_NO_ENV, "none": NO_LABELS}


def matching(selector: str) -> set[str]:
    reqs = parse_label_selector(selector)
    return {name for name, labels in ALL.items() if labels_match(reqs, labels)}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("app=web", {"web-prod", "web-qa"}),
        ("app==web", {"web-prod", "web-qa"}),
        ("app = web", {"web-prod", "web-qa"}),
        ("env in (prod,qa)", {"web-prod", "web-qa"}),
        ("env in (prod, staging)", {"web-prod"}),
        ("env in(prod)", {"web-prod"}),
        ("env", {"web-prod", "web-qa"}),
        ("!env", {"db", "none"}),
        ("! env", {"db", "none"}),
        ("app=web,env=qa", {"web-qa"}),
        ("app=web,env notin (prod)", {"web-qa"}),
        ("env in (prod,qa),app", {"web-prod", "web-qa"}),
        ("app=nothing", set()),
        # An empty value selects objects whose label is present and empty (none here).
        ("env=", set()),
    ],
)
def test_label_selector_syntax_selects_the_expected_objects(selector: str, expected: set[str]) -> None:
    assert matching(selector) == expected


@pytest.mark.parametrize("selector", ["env!=prod", "env notin (prod)", "env notin (prod,staging)"])
def test_negative_operators_match_objects_that_lack_the_key(selector: str) -> None:
    # Upstream: "!=" and "notin" are true for an object without the label at all.
    assert matching(selector) == {"web-qa", "db", "none"}


@pytest.mark.parametrize("selector", [None, "", "   "])
def test_an_empty_selector_matches_everything(selector: str | None) -> None:
    assert parse_label_selector(selector) == ()
    assert matching(selector or "") == set(ALL)


def test_prefixed_keys_and_empty_values_are_accepted() -> None:
    reqs = parse_label_selector("app.kubernetes.io/name=web,team in (a,)")
    assert labels_match(reqs, {"app.kubernetes.io/name": "web", "team": ""})
    assert not labels_match(reqs, {"app.kubernetes.io/name": "web", "team": "b"})


@pytest.mark.parametrize(
    "selector",
    [
        "a b",  # two words, no operator
        "a in (x",  # unclosed set
        "=x",  # no key
        "!",  # no key after "!"
        "a=b=c",  # "=" is not a value character
        "a=b c",
        "a!",
        "-a=b",  # key must start alphanumeric
        "a/b/c=x",  # at most one "/" in a key
        "/a=x",  # empty prefix
        "Example.com/a=x",  # a key's prefix is a lowercase DNS subdomain
        "a=" + "v" * 64,  # values are at most 63 characters
        "k" * 64,  # so are key names
        "a in (x y)",
        "a,",  # upstream refuses empty terms
        ",a",
        "a,,b",
        "a>1",  # numeric comparisons are not supported: refused, never ignored
    ],
)
def test_invalid_label_selectors_are_a_400(selector: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_label_selector(selector)
    assert info.value.code == 400
    assert info.value.reason == "BadRequest"
    assert info.value.status()["status"] == "Failure"


def test_label_selector_objects_become_the_same_requirements() -> None:
    reqs = label_selector_from_object({
        "matchLabels": {"app": "web"},
        "matchExpressions": [
            {"key": "env", "operator": "In", "values": ["prod", "qa"]},
            {"key": "tier", "operator": "NotIn", "values": ["cache"]},
            {"key": "app", "operator": "Exists"},
            {"key": "legacy", "operator": "DoesNotExist"},
        ],
    })
    assert labels_match(reqs, {"app": "web", "env": "qa"})
    assert not labels_match(reqs, {"app": "web", "env": "qa", "legacy": "1"})
    assert not labels_match(reqs, {"app": "web", "env": "qa", "tier": "cache"})
    assert not labels_match(reqs, {"app": "db", "env": "qa"})
    assert label_selector_from_object(None) == ()


def test_label_selector_object_with_an_unknown_operator_is_a_400() -> None:
    with pytest.raises(ApiError) as info:
        label_selector_from_object({"matchExpressions": [{"key": "a", "operator": "Gt", "values": ["1"]}]})
    assert info.value.code == 400


# -- field selectors --------------------------------------------------------------------------

SUPPORTED = {
    "metadata.name": lambda o: o["metadata"]["name"],
    "metadata.namespace": lambda o: o["metadata"].get("namespace", ""),
    "status.phase": lambda o: (o.get("status") or {}).get("phase", ""),
}
RUNNING = {"metadata": {"name": "a", "namespace": "ns"}, "status": {"phase": "Running"}}
PENDING = {"metadata": {"name": "b", "namespace": "ns"}, "status": {"phase": "Pending"}}
NO_STATUS = {"metadata": {"name": "c", "namespace": "other"}}


def fields_matching(selector: str) -> set[str]:
    reqs = parse_field_selector(selector, SUPPORTED)
    return {o["metadata"]["name"] for o in (RUNNING, PENDING, NO_STATUS) if fields_match(reqs, o, SUPPORTED)}


@pytest.mark.parametrize(
    ("selector", "expected"),
    [
        ("metadata.name=a", {"a"}),
        ("metadata.name==a", {"a"}),
        ("metadata.name!=a", {"b", "c"}),
        ("status.phase=Running,metadata.namespace=ns", {"a"}),
        ("status.phase!=Running,metadata.namespace=ns", {"b"}),
        ("status.phase=", {"c"}),  # an absent field compares as ""
        ("metadata.name=a,", {"a"}),  # upstream skips empty field-selector terms
        ("", {"a", "b", "c"}),
    ],
)
def test_field_selectors_on_supported_paths(selector: str, expected: set[str]) -> None:
    assert fields_matching(selector) == expected


def test_an_unsupported_field_path_is_a_400_naming_the_field() -> None:
    with pytest.raises(ApiError) as info:
        parse_field_selector("spec.nodeName=n1", SUPPORTED)
    assert info.value.code == 400
    assert info.value.message == "field label not supported: spec.nodeName"


@pytest.mark.parametrize("selector", ["metadata.name", "metadata.name~a", "=a"])
def test_a_field_selector_without_an_operator_is_a_400(selector: str) -> None:
    with pytest.raises(ApiError) as info:
        parse_field_selector(selector, SUPPORTED)
    assert info.value.code == 400
    assert info.value.reason == "BadRequest"
